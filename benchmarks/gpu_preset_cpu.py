"""The ``gpu`` preset on the CPU with its steps capped (writes JSON; not a test).

Without a GPU the ``gpu`` preset's quality can still be seen at part of its schedule: one synthetic
head (48 views at 512 px, ``simulated:medium``, facescape rig), refined on the CPU with the preset
and ``steps`` capped, 100 extreme novel views, scored as the demo scores it (initial vs refined
mIoU, overall and per |yaw| bin). ``--labels exact`` fits the exact labels of the same views
instead (the ceiling); ``--semantic-grad`` overrides the preset's, and ``--fit-set KEY=VALUE`` any
other fit setting. GPU time is not measured here.

Each run adds one row to ``--out`` (keyed by steps, semantic_grad, labels and the ``--fit-set``
settings; a row already there
is kept unless ``--overwrite``)::

    python -m benchmarks.gpu_preset_cpu --steps 1000 --out benchmarks/results/gpu_preset_cpu.json
    python -m benchmarks.gpu_preset_cpu --steps 1000 --semantic-grad none --out benchmarks/results/gpu_preset_cpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

from benchmarks import refine_quality as rq
from benchmarks.common import machine_info

WHAT = ("the gpu preset run on the CPU with its steps capped (one synthetic head, 48 views at 512 px, "
        "simulated:medium, 100 extreme novel views, seed 0), scored as the demo scores it (initial vs refined mIoU, "
        "overall and per |yaw| bin); GPU time not measured")


def _bins(labelling: dict) -> dict:
    return {"overall": labelling["overall"]["miou"],
            **{b: (m or {}).get("miou") for b, m in labelling["by_yaw"].items()}}


def _config(args):
    """The gpu preset with the run's steps, semantic_grad (the preset's unless given) and views."""
    from labelsplat.config import preset, with_overrides

    fit = {"steps": args.steps, **({"semantic_grad": args.semantic_grad} if args.semantic_grad else {}),
           **args.fit_set}
    return with_overrides(preset("gpu"), seed=args.seed, device="cpu", fit=fit, export={"novel_views": args.novel_views})


def run_row(args, cfg) -> dict:
    from labelsplat.pipeline import refine

    t0 = time.perf_counter()
    # the quality benchmark's synthetic head and its exact-label copy (cached under --work)
    heads = rq.synth_inputs(args.work, argparse.Namespace(views=args.views, resolution=args.resolution,
                                                          noise="simulated:medium", identities=1, label_max_yaw=None),
                            args.seed)
    noisy, exact = heads[0]
    scene = exact if args.labels == "exact" else noisy
    synth_s = time.perf_counter() - t0
    sets = "".join(f"_{k}{v}" for k, v in sorted(args.fit_set.items()))
    out = args.work / f"s{args.seed}_{args.labels}_{cfg.fit.semantic_grad.replace(':', '_')}_{args.steps}{sets}"
    t = time.perf_counter()
    pooled, _ = refine([scene], out, cfg, overwrite=True, progress=False, log=lambda s: None)
    refine_s = time.perf_counter() - t
    run_doc = json.loads((out / "scenes" / scene.name / "run" / "run.json").read_text())
    lab = pooled["labellings"]
    return {"preset": "gpu", "steps": args.steps, "semantic_grad": cfg.fit.semantic_grad, "views": args.views,
            "resolution": args.resolution, "novel_views": args.novel_views, "seed": args.seed,
            "fit_set": args.fit_set,
            "wall_s": round(time.perf_counter() - t0, 1), "timings": {"synth": synth_s, "refine": refine_s},
            "initial": _bins(lab["initial"]), "refined": _bins(lab["refined"]), "labels": args.labels,
            "fit_s": round(run_doc["summary"]["fit_time_s"], 1), "n_gaussians": run_doc["summary"]["n_gaussians"],
            "machine": machine_info("cpu")}


def _key(row: dict) -> tuple:
    # rows written before the semantic_grad field ran with the preset's scaled:0.1
    return (row["steps"], row.get("semantic_grad", "scaled:0.1"), row["labels"],
            json.dumps(row.get("fit_set", {}), sort_keys=True))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--semantic-grad", default=None, help="default: the preset's")
    ap.add_argument("--labels", choices=["noisy", "exact"], default="noisy")
    ap.add_argument("--fit-set", action="append", metavar="KEY=VALUE",
                    help="a fit setting over the preset's (repeatable; part of the row's key)")
    ap.add_argument("--views", type=int, default=48)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--novel-views", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gpu_preset_cpu"))
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    args.fit_set = rq.parse_sets(args.fit_set)  # {key: parsed value}
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {"schema_version": 1, "what": WHAT, "rows": []}
    cfg = _config(args)
    key = _key({"steps": args.steps, "semantic_grad": cfg.fit.semantic_grad, "labels": args.labels,
                "fit_set": args.fit_set})
    if any(_key(r) == key for r in doc["rows"]) and not args.overwrite:
        print(f"{key} is already in {args.out} (--overwrite replaces it)")
        return 0
    row = run_row(args, cfg)
    row["date"] = datetime.date.today().isoformat()
    doc["rows"] = [r for r in doc["rows"] if _key(r) != key] + [row]
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: row[k] for k in ("steps", "semantic_grad", "fit_set", "labels", "initial", "refined", "fit_s",
                                          "n_gaussians")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
