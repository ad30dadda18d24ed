"""How much do the refined labels vary between fits of the same head, and does averaging fits help?

Per seed (one synthetic head, the demo's configuration by default), ``--members`` fits that differ
only in the fit's seed (camera order, random backgrounds) are scored alone and as ensembles (the
members' rendered class probabilities averaged at each novel view, then the usual extraction and
post-processing of the first member), at the same novel cameras drawn from the synthetic mesh
(as ``benchmarks.refine_quality``).

    python -m research.ensemble_study --seeds 0 1 2 --members 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import refine_quality as rq


def _render_probs(run, cams, rcfg):
    from labelsplat.splat.run import render_cameras

    rendered = render_cameras(run, cams, batch_size=rcfg.export.render_batch, min_views=rcfg.export.min_views_seen)
    return rendered


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--novel-views", type=int, default=24)
    ap.add_argument("--noise", default="simulated:medium")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ensemble_study"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from labelsplat.config import fit_preset, preset, with_overrides
    from labelsplat.eval import LabellingScores
    from labelsplat.extract import extract_argmax
    from labelsplat.scene import load_scene
    from labelsplat.schemes import get_scheme
    from labelsplat.splat import fit, load_run
    from labelsplat.synth import load_head, load_synth, render_views

    ns = argparse.Namespace(views=args.views, resolution=args.resolution, noise=args.noise, identities=1,
                            label_max_yaw=None)
    for seed in args.seeds:
        rcfg = with_overrides(preset(args.preset), seed=seed, device="cpu", novel_views=args.novel_views)
        ((noisy, _exact),) = rq.synth_inputs(args.work, ns, seed)
        scene, cams, yaws = rq.novel_cameras(noisy, args.novel_views, seed, rcfg.sampler)
        gt_views = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
        gt = np.stack([g.gt_labels for g in gt_views])
        scheme = get_scheme(scene.label_scheme)

        def score(pred):
            acc = LabellingScores.for_scheme(scheme)
            for k in range(len(cams)):
                acc.add(pred[k], gt[k], float(yaws[k]))
            d = acc.to_dict()
            return {"overall": round(d["overall"]["miou"], 4),
                    **{b: round((m or {}).get("miou") or 0.0, 4) for b, m in d["by_yaw"].items()}}

        row = {"seed": seed, "initial": score(np.stack([g.labels for g in gt_views])), "members": []}
        probs, alphas = [], []
        for m in range(args.members):
            run_dir = args.work / f"run_s{seed}_m{m}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            t = time.perf_counter()
            fit(load_scene(noisy), run_dir, fit_preset(args.preset, seed=seed * 1000 + m), device="cpu",
                progress=False, write_outputs=False)
            t_fit = time.perf_counter() - t
            run = load_run(run_dir, "cpu")
            r = _render_probs(run, cams, rcfg)
            logits = torch.as_tensor(np.stack([v["logits"] for v in r]))
            alpha = torch.as_tensor(np.stack([v["alpha"] for v in r]))
            probs.append(torch.softmax(logits.float(), -1))
            alphas.append(alpha.float())
            raw = extract_argmax(logits, alpha, alpha_threshold=rcfg.export.alpha_threshold).labels
            row["members"].append({"fit_s": round(t_fit, 1), "raw": score(np.asarray(raw, dtype=np.uint8))})
            if m >= 1:
                p = torch.stack(probs).mean(0)
                a = torch.stack(alphas).mean(0)
                raw_e = extract_argmax(torch.log(p.clamp_min(1e-8)), a, alpha_threshold=rcfg.export.alpha_threshold).labels
                row[f"ensemble{m + 1}_raw"] = score(np.asarray(raw_e, dtype=np.uint8))
            shutil.rmtree(run_dir, ignore_errors=True)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
