"""Label assignment after the fit, compared on the same fits: the demo configuration (``tiny``,
16 views at 128 px, ``simulated:medium``), one fit per seed and labelling (``noisy`` input labels, or
``exact`` ones for the ceiling), then every ``semantic_lift`` variant applied to that same fitted
model and scored as the demo scores it (initial vs refined mIoU per |yaw| bin at the demo's novel
views), plus the input agreement (no ground truth: refined vs input labels at trusted input views).

    python -m research.assign_study --seeds 0 1 2 --lifts none vote --labels noisy exact

``--lifts`` also takes the research variants of :mod:`research.assign_variants` (``vote_hard`` ...).

One line of JSON per (seed, labelling, lift) is appended to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from benchmarks.refine_quality import parse_sets
from research.assign_variants import VARIANTS, VoteVariant


def _scene(root: Path, seed: int, labels: str) -> Path:
    """The demo's synthetic head for ``seed``; ``exact``: a copy whose labels are the exact ones."""
    from labelsplat.synth.scene import SynthConfig, synthesize

    noisy = root / f"s{seed}" / "input" / "head_000"
    if not noisy.is_dir():
        synthesize(root / f"s{seed}" / "input", SynthConfig(identities=1, views=16, rig="facescape", resolution=128,
                                                            noise="simulated:medium", seed=seed), overwrite=True)
    if labels == "noisy":
        return noisy
    exact = root / f"s{seed}" / "exact" / "head_000"
    if not exact.is_dir():
        shutil.copytree(noisy, exact)
        shutil.rmtree(exact / "labels")
        shutil.copytree(noisy / "gt_labels", exact / "labels")
    return exact


def _row(metrics: dict) -> dict:
    L = metrics["labellings"]
    row = {}
    for name in ("initial", "refined"):
        row[name] = {"overall": round(L[name]["overall"]["miou"], 4),
                     **{b: round((m or {}).get("miou") or 0.0, 4) for b, m in L[name]["by_yaw"].items()}}
    row["input_agreement"] = round(metrics["consistency"]["input_agreement"]["miou"], 4)
    return row


def run(root: Path, seed: int, labels: str, lifts: list[str], fit_over: dict, ref_over: dict, out_json: Path | None):
    import torch

    from labelsplat import pipeline
    from labelsplat.config import preset, with_overrides
    from labelsplat.splat.assign import make_assigner
    from labelsplat.splat.fit import FitLoop

    cfg = with_overrides(preset("tiny"), seed=seed, device="cpu", fit=fit_over, **ref_over)
    scene_dir = _scene(root, seed, labels)
    tag = "_".join(f"{k}={v}" for k, v in sorted(fit_over.items())) or "base"
    base = root / f"s{seed}" / f"{labels}_{tag}"
    if (base / "fit").exists():
        shutil.rmtree(base / "fit")
    t = time.perf_counter()
    loop = FitLoop(scene_dir, base / "fit", cfg.fit, device="cpu", backend=cfg.backend)
    torch.set_num_threads(1)
    loop.setup()
    while not loop.done:
        loop.step()
    loop._end_loop()
    fit_s = time.perf_counter() - t
    snap = {k: v.detach().clone() for k, v in loop.model.params.items()}
    for lift in lifts:
        with torch.no_grad():
            for k, v in snap.items():
                loop.model.params[k].copy_(v)
        research_variant = lift in VARIANTS
        fcfg = with_overrides(cfg, fit={"semantic_lift": "none" if research_variant else lift}).fit
        loop.assigner = VoteVariant(lift) if research_variant else make_assigner(fcfg, loop.num_classes)
        out = base / f"lift_{lift.replace(':', '_')}"
        if out.exists():
            shutil.rmtree(out)
        loop.out_dir = out / "scenes" / "head_000" / "run"
        t = time.perf_counter()
        res = loop.finish()
        lift_s = time.perf_counter() - t
        rcfg = with_overrides(cfg, fit={"semantic_lift": fcfg.semantic_lift})
        t = time.perf_counter()
        outcome = pipeline.refine_scene(scene_dir, out, rcfg, resume=True, progress=False, log=lambda s: None)
        row = {"seed": seed, "labels": labels, "lift": lift, "fit_overrides": fit_over, "fit_s": round(fit_s, 1),
               "lift_s": round(lift_s, 2), "export_s": round(time.perf_counter() - t, 1),
               "n_gaussians": int(loop.model.num_gaussians), "lift_summary": res.summary.get("semantic_lift"),
               **_row(outcome.metrics)}
        print(json.dumps(row), flush=True)
        if out_json:
            with open(out_json, "a") as fh:
                fh.write(json.dumps(row) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--labels", nargs="+", default=["noisy"], choices=["noisy", "exact"])
    ap.add_argument("--lifts", nargs="+", default=["none", "vote"])
    ap.add_argument("--root", type=Path, default=Path("/tmp/assign_study"))
    ap.add_argument("--fit-set", action="append")
    ap.add_argument("--refine-set", action="append")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    for seed in args.seeds:
        for labels in args.labels:
            run(args.root, seed, labels, args.lifts, parse_sets(args.fit_set), parse_sets(args.refine_set), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
