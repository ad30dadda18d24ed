"""Markdown tables of a refine_quality results file: per seed and mean over seeds, by |yaw| bin.

Rows: initial / refined / ceiling mIoU, refined - initial, ceiling - refined, and the ceiling's
boundary-excluded mean F1 (the quality targets), optionally the same for a second file as a
difference (``--against OLD.json``: this file minus OLD, per seed, for refined and ceiling).

    python -m benchmarks.quality_table benchmarks/results/refine_quality.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BINS = ("overall", "0-30", "30-60", "60-90", "90-180")


def _get(L: dict, b: str, metric: str = "miou", be: bool = False):
    src = L["boundary_excluded"] if be else L
    m = src["overall"] if b == "overall" else (src["by_yaw"].get(b) or {})
    return m.get(metric)


def rows_for(cell: dict) -> dict[str, list[float]]:
    """The rows of one seed's cell; the ceiling's rows only when the run fitted the exact labels."""
    L = cell["labellings"]
    r = {
        "initial mIoU": [_get(L["initial"], b) for b in BINS],
        "refined mIoU": [_get(L["refined"], b) for b in BINS],
    }
    r["refined - initial"] = [a - b for a, b in zip(r["refined mIoU"], r["initial mIoU"])]
    if "ceiling" in L:  # --no-ceiling runs have none
        r["ceiling mIoU"] = [_get(L["ceiling"], b) for b in BINS]
        r["ceiling - refined"] = [a - b for a, b in zip(r["ceiling mIoU"], r["refined mIoU"])]
        r["ceiling b.-excl. mean F1"] = [_get(L["ceiling"], b, "mean_f1", be=True) for b in BINS]
        r["ceiling, raw: b.-excl. mean F1"] = [_get(L["ceiling_raw"], b, "mean_f1", be=True) for b in BINS]
    return r


def cells_by_seed(doc: dict) -> dict[int, dict]:
    sg = doc["settings"]["semantic_grad"]
    return {c["seed"]: c for k, c in sorted(doc["cells"].items()) if k.startswith(f"main/{sg}/")}


def table(doc: dict) -> str:
    seeds = cells_by_seed(doc)
    per = {s: rows_for(c) for s, c in seeds.items()}
    names = list(next(iter(per.values())))
    out = ["| seed | row | " + " | ".join(BINS) + " |", "| --- | --- |" + " ---: |" * len(BINS)]
    for s in sorted(per):
        for n in names:
            sign = "+" if " - " in n else ""
            out.append(f"| {s} | {n} | " + " | ".join(f"{sign if v >= 0 else ''}{v:.3f}" for v in per[s][n]) + " |")
    for n in names:
        vals = np.array([per[s][n] for s in per], dtype=float)
        mean, lo, hi = vals.mean(0), vals.min(0), vals.max(0)
        out.append(f"| mean | {n} | " + " | ".join(f"**{m:.3f}** [{a:.3f}..{b:.3f}]" for m, a, b in zip(mean, lo, hi))
                   + " |")
    return "\n".join(out)


def against(doc: dict, old: dict) -> str:
    new_c, old_c = cells_by_seed(doc), cells_by_seed(old)
    out = ["| seed | row | " + " | ".join(BINS) + " |", "| --- | --- |" + " ---: |" * len(BINS)]
    for s in sorted(set(new_c) & set(old_c)):
        for name in ("refined", "ceiling"):
            if name not in new_c[s]["labellings"] or name not in old_c[s]["labellings"]:
                continue
            a, b = new_c[s]["labellings"][name], old_c[s]["labellings"][name]
            out.append(f"| {s} | {name} mIoU | " + " | ".join(f"{_get(a, x) - _get(b, x):+.4f}" for x in BINS) + " |")
            out.append(f"| {s} | {name} b.-excl. mean F1 | "
                       + " | ".join(f"{_get(a, x, 'mean_f1', True) - _get(b, x, 'mean_f1', True):+.4f}" for x in BINS)
                       + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--against", type=Path, nargs="*", default=[])
    args = ap.parse_args(argv)
    doc = json.loads(args.results.read_text())
    print(table(doc))
    for p in args.against:
        print(f"\n{args.results.name} minus {p.name}:\n")
        print(against(doc, json.loads(p.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
