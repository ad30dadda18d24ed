"""Where the no-ground-truth check's threshold can sit (writes JSON; not a test).

``labelsplat refine`` compares the refined labels rendered at the trusted input views (|yaw| <= 30
degrees) with the input labels there and warns below ``min_input_agreement``. A perfect refine
does not score 1 on that check: the input labels carry the parser's errors. This script measures
what the exact labels of synthetic heads score against each noise model's labels at the trusted
views, through the refine's own function (``labelsplat.pipeline.input_agreement``), so that the
default threshold can be set below what correct labels get. ``--refined RUN ...`` adds the
agreement and the refined / initial mIoU that finished ``refine`` outputs recorded (synthetic
scenes), to set the threshold against real refines too.

Usage::

    python -m benchmarks.input_agreement --out benchmarks/results/input_agreement.json \\
        --refined /tmp/speed/run_none
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import machine_info

NOISES = ("simulated:low", "simulated:medium", "simulated:high")


def exact_label_agreement(work: Path, noise: str, seed: int, views: int, resolution: int) -> dict:
    """The agreement a refine that returned the exact labels would get on one synthetic head."""
    from labelsplat.config import preset
    from labelsplat.io import read_label
    from labelsplat.pipeline import input_agreement
    from labelsplat.scene import load_scene
    from labelsplat.synth import SynthConfig, synthesize

    out = work / f"{noise.replace(':', '-')}_v{views}_r{resolution}_s{seed}"
    if not (out / "head_000" / "transforms.json").is_file():
        synthesize(out, SynthConfig(identities=1, views=views, rig="facescape", resolution=resolution, noise=noise,
                                    seed=seed), overwrite=True)
    scene = load_scene(out / "head_000")
    inputs = [read_label(scene.path(fr.label_path)) for fr in scene.frames]
    exact = [read_label(scene.path(fr.gt_label_path)) for fr in scene.frames]
    doc = input_agreement(scene, inputs, exact, preset("fast"))
    return {"noise": noise, "seed": seed, "views": views, "resolution": resolution,
            "trusted_views": doc["views"], "agreement": round(doc["miou"], 4)}


def refined_agreement(run: Path) -> list[dict]:
    """Per scene of a finished refine output: its input agreement and its refined / initial mIoU."""
    doc = json.loads((run / "metrics.json").read_text())
    rows = []
    for name, cons in doc.get("consistency", {}).items():
        scene_metrics = json.loads((run / "scenes" / name / "metrics.json").read_text())
        lab = scene_metrics.get("labellings", {})
        rows.append({"run": str(run), "scene": name, "agreement": round(cons["input_agreement"]["miou"], 4),
                     "trusted_views": cons["input_agreement"]["views"],
                     **{k: round(lab[k]["overall"]["miou"], 4) for k in ("initial", "refined") if k in lab}})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--noises", nargs="+", default=list(NOISES))
    ap.add_argument("--views", type=int, default=32)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--refined", type=Path, nargs="*", default=[], help="finished refine outputs of synthetic scenes")
    ap.add_argument("--work", type=Path, default=Path("/tmp/input_agreement_work"))
    args = ap.parse_args(argv)
    exact = [exact_label_agreement(args.work, n, s, args.views, args.resolution)
             for n in args.noises for s in args.seeds]
    for row in exact:
        print(json.dumps(row), flush=True)
    refined = [row for run in args.refined for row in refined_agreement(run)]
    summary = {n: {"min": min(r["agreement"] for r in exact if r["noise"] == n),
                   "max": max(r["agreement"] for r in exact if r["noise"] == n)} for n in args.noises}
    doc = {"schema_version": 1, "benchmark": "input_agreement", "machine": machine_info("cpu"),
           "settings": {"seeds": args.seeds, "noises": args.noises, "views": args.views,
                        "resolution": args.resolution, "trusted_yaw": 30.0},
           "exact_labels": exact, "exact_labels_range": summary, "refines": refined}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
