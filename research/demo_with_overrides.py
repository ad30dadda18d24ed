"""Run ``labelsplat.pipeline.demo`` with extra fit / RefineConfig settings.

The demo takes a whole RefineConfig: the ``tiny`` preset with ``--fit-set`` (fit settings) and
``--refine-set`` (any other setting by its flat name, as ``labelsplat config show`` lists them) over it.
Prints the wall time per stage and initial vs refined mIoU by yaw bin (the demo's own scoring:
views rejected by post-processing are left out of both).

    python -m research.demo_with_overrides --seed 0 --fit-set class_weights=1,1,2,... \
        --refine-set min_confidence=None
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.refine_quality import parse_sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/demo_overrides"))
    ap.add_argument("--fit-set", action="append")
    ap.add_argument("--refine-set", action="append")
    ap.add_argument("--json", type=Path, default=None, help="append a result line here")
    args = ap.parse_args(argv)
    fit_over, ref_over = parse_sets(args.fit_set), parse_sets(args.refine_set)

    from labelsplat import pipeline
    from labelsplat.config import preset, with_overrides

    cfg = with_overrides(preset("tiny"), seed=args.seed, device="cpu", fit=fit_over, **ref_over)
    t = time.perf_counter()
    pooled, timings = pipeline.demo(args.out, cfg, progress=False, log=lambda s: None)
    wall = time.perf_counter() - t
    L = pooled["labellings"]
    row = {"seed": args.seed, "wall_s": round(wall, 1), "timings": timings, "fit_overrides": fit_over,
           "refine_overrides": ref_over}
    for name in ("initial", "refined"):
        row[name] = {"overall": L[name]["overall"]["miou"],
                     **{b: (m or {}).get("miou") for b, m in L[name]["by_yaw"].items()}}
    print(json.dumps(row))
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
