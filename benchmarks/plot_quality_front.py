"""The `fast` configuration's quality against its compute: one figure for docs/quality.md.

Reads the published results (no fits): ``refine_quality.json`` (one fit per head: initial, refined,
ceiling), ``consensus_bound.json`` (the fitted fusion bound of one fit per head, ``vote_fits``) and
``refine_quality_members2.json`` (two fits per head, ``--refine-set members=2 --fusion-bound``), and
plots the |yaw| 60-90 mIoU (mean over seeds, min..max as error bars) of each labelling against the
fits per head, with the measured fit seconds per head beside each point.

    python -m benchmarks.plot_quality_front --out docs/images/quality_front.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BIN = "60-90"


def _cells(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    main = f"main/{doc['settings']['semantic_grad']}/"
    return [c for k, c in sorted(doc["cells"].items()) if k.startswith(main)]


def _series(cells: list[dict], name: str) -> list[float]:
    return [c["labellings"][name]["by_yaw"][BIN]["miou"] for c in cells if name in c["labellings"]]


def _fit_s(cells: list[dict], labelling: str) -> float:
    return float(np.mean([f["fit_s"] for c in cells for f in c["fits"] if f["labelling"] == labelling]))


def points() -> dict[str, dict[int, list[float]]]:
    """{labelling: {fits per head: per-seed 60-90 mIoU}} and the fit seconds per head."""
    one, two = _cells(RESULTS / "refine_quality.json"), _cells(RESULTS / "refine_quality_members2.json")
    bound = json.loads((RESULTS / "consensus_bound.json").read_text())["vote_fits"]["by_seed"]["pixel_majority"]
    return {
        "ceiling (exact input labels)": {1: _series(one, "ceiling"), 2: _series(two, "ceiling")},
        "fitted fusion bound": {1: [s["fit"]["by_yaw"][BIN]["miou"] for s in bound.values()],
                                2: _series(two, "fusion")},
        "refined (labelsplat)": {1: _series(one, "refined"), 2: _series(two, "refined")},
        "initial (simulated parser)": {1: _series(one, "initial"), 2: _series(two, "initial")},
        "fit_s": {1: [_fit_s(one, "refined")], 2: [_fit_s(two, "refined")]},
    }


def plot(out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = points()
    fit_s = pts.pop("fit_s")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, by_n in pts.items():
        ns = sorted(by_n)
        mean = [float(np.mean(by_n[n])) for n in ns]
        lo = [m - float(np.min(by_n[n])) for m, n in zip(mean, ns)]
        hi = [float(np.max(by_n[n])) - m for m, n in zip(mean, ns)]
        ax.errorbar(ns, mean, yerr=[lo, hi], marker="o", capsize=4, label=name,
                    linestyle="--" if name.startswith("initial") else "-")
    for n, s in fit_s.items():
        ax.annotate(f"fitting: {s[0]:.0f} s wall per head\n(benchmark run, its load)", (n, 0.515), ha="center",
                    fontsize=8, color="0.35")
    ax.set_xticks(sorted(fit_s))
    ax.set_xlim(0.7, max(fit_s) + 0.3)
    ax.set_xlabel("fits per head (members)")
    ax.set_ylabel(f"mIoU at |yaw| {BIN} (mean over seeds, min..max)")
    ax.set_title("fast preset: 32 views at 256 px, 2 heads x 3 seeds, 100 extreme views", fontsize=9)
    ax.legend(fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return {k: {n: round(float(np.mean(v)), 4) for n, v in d.items()} for k, d in pts.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "quality_front.png")
    args = ap.parse_args(argv)
    print(json.dumps(plot(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
