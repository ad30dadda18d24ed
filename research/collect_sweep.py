"""Collect refine_quality result files of a screening sweep into one compact JSON + a markdown table.

    python -m research.collect_sweep OUT.json NAME=FILE.json ...

Per run: settings (fit/refine overrides, label_max_yaw) and, per seed cell and labelling, mIoU
overall and by |yaw| bin, coverage and per-class IoU (the full confusion counts stay in the
original files).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def brief(L: dict) -> dict:
    return {"miou": L["overall"]["miou"], "coverage": L["overall"]["coverage"],
            "by_yaw_miou": {b: (m or {}).get("miou") for b, m in L["by_yaw"].items()},
            "per_class_iou": {c: v.get("iou") for c, v in L["per_class"].items() if v.get("iou") is not None}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", nargs="+", metavar="NAME=FILE.json")
    ap.add_argument("--what", default="screening sweep, tiny demo configuration",
                    help="what the sweep screened (recorded in OUT)")
    args = ap.parse_args(argv)
    out = args.out
    doc = {"schema_version": 1, "what": args.what, "runs": {}}
    rows = []
    for item in args.runs:
        name, path = item.split("=", 1)
        d = json.loads(Path(path).read_text())
        s = d["settings"]
        cells = {k: {"labellings": {n: brief(L) for n, L in c["labellings"].items()},
                     "fit_s": [f["fit_s"] for f in c.get("fits", [])],
                     "n_gaussians": [f.get("n_gaussians") for f in c.get("fits", [])],
                     "train_label_acc": [f["train_label_acc_last"] for f in c.get("fits", [])]}
                 for k, c in d["cells"].items()}
        doc["runs"][name] = {"settings": {k: s.get(k) for k in ("preset", "views", "resolution", "novel_views", "noise",
                                                                 "semantic_grad", "fit_overrides", "refine_overrides",
                                                                 "label_max_yaw")},
                             "machine": d["runs"][-1]["machine"], "cells": cells}
        for k, c in cells.items():
            L = c["labellings"]
            rows.append(f"| {name} | {k.split('/')[-1]} | {L['initial']['miou']:.3f} | {L['refined']['miou']:.3f} | "
                        f"{L['refined_raw']['miou']:.3f} | "
                        + (f"{L['ceiling_raw']['miou']:.3f}" if "ceiling_raw" in L else "-") + " |")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print("| run | seed | initial | refined | refined (raw argmax) | ceiling (raw) |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
