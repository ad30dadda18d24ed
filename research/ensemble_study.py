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
import shutil
import time

import numpy as np
import torch

from labelsplat.splat.run import render_cameras
from research.fixed_head import add_head_args, fixed_head, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    add_head_args(ap, "ensemble_study")
    ap.add_argument("--members", type=int, default=3)
    args = ap.parse_args(argv)
    from labelsplat.config import fit_preset
    from labelsplat.extract import extract_argmax
    from labelsplat.scene import load_scene
    from labelsplat.splat import fit, load_run

    for seed in args.seeds:
        h = fixed_head(args, seed)
        thr = h.rcfg.export.alpha_threshold
        row = {"seed": seed, "initial": h.score(h.initial), "members": []}
        probs, alphas = [], []
        for m in range(args.members):
            run_dir = args.work / f"run_s{seed}_m{m}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            t = time.perf_counter()
            fit(load_scene(h.noisy), run_dir, fit_preset(args.preset, seed=seed * 1000 + m), device="cpu",
                progress=False, write_outputs=False)
            t_fit = time.perf_counter() - t
            r = render_cameras(load_run(run_dir, "cpu"), h.cams, batch_size=h.rcfg.export.render_batch,
                               min_views=h.rcfg.export.min_views_seen)
            logits = torch.as_tensor(np.stack([v["logits"] for v in r]))
            alpha = torch.as_tensor(np.stack([v["alpha"] for v in r]))
            probs.append(torch.softmax(logits.float(), -1))
            alphas.append(alpha.float())
            raw = extract_argmax(logits, alpha, alpha_threshold=thr).labels
            row["members"].append({"fit_s": round(t_fit, 1), "raw": h.score(np.asarray(raw, dtype=np.uint8))})
            if m >= 1:
                p = torch.stack(probs).mean(0)
                raw_e = extract_argmax(torch.log(p.clamp_min(1e-8)), torch.stack(alphas).mean(0), alpha_threshold=thr)
                row[f"ensemble{m + 1}_raw"] = h.score(np.asarray(raw_e.labels, dtype=np.uint8))
            shutil.rmtree(run_dir, ignore_errors=True)
        report(row, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
