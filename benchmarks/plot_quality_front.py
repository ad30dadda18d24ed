"""The `fast` configuration's quality against its compute: one figure for docs/quality.md.

Reads the published results (no fits), one per configuration of the `fast` preset's path:
``refine_quality.json`` (one fit per head), ``consensus_bound.json`` (the fitted fusion bound of one
fit per head, ``vote_fits``), ``refine_quality_members2.json`` (two fits per head,
``--refine-set members=2 --fusion-bound``) and ``refine_quality_capacity.json`` (two fits per head
at 2000 steps with ~4x the Gaussians) and ``refine_quality_fast_none.json`` (the same with
``semantic_grad=none``; its fusion bound on seed 0 only) and ``refine_quality_fast_gce.json`` (the
same with ``semantic_loss=gce:0.7``; its ceiling from a ``--noise none`` run) and
``refine_quality_fast_exact_fg.json`` (the same with ``mask_dilate=0``, the preset now; its fusion
bound on seed 0), and plots the |yaw| 60-90 mIoU (mean over
seeds, min..max as error bars) of each labelling per configuration, with the benchmark's measured
fit seconds per head beside each one. A labelling a configuration did not measure is left out.

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
#: (axis label, results file) per configuration, in order of compute
CONFIGS = (
    ("1 fit\n1000 steps, ~7k G.", "refine_quality.json"),
    ("2 fits\n1000 steps, ~7k G.", "refine_quality_members2.json"),
    ("2 fits\n2000 steps, ~28k G.", "refine_quality_capacity.json"),
    ("2 fits, 2000 steps\ngeometry from colour", "refine_quality_fast_none.json"),
    ("the same with\ngeneralized CE", "refine_quality_fast_gce.json"),
    ("the same with the\nforeground undilated", "refine_quality_fast_exact_fg.json"),
)


def _cells(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    main = f"main/{doc['settings']['semantic_grad']}/"
    return [c for k, c in sorted(doc["cells"].items()) if k.startswith(main)]


def _series(cells: list[dict], name: str) -> list[float]:
    return [c["labellings"][name]["by_yaw"][BIN]["miou"] for c in cells if name in c["labellings"]]


def _fit_s(cells: list[dict], labelling: str) -> float:
    return float(np.mean([f["fit_s"] for c in cells for f in c["fits"] if f["labelling"] == labelling]))


def points() -> dict[str, dict[int, list[float]]]:
    """{labelling: {configuration index: per-seed 60-90 mIoU}}, plus "fit_s": the fit seconds per head."""
    cells = [_cells(RESULTS / name) for _, name in CONFIGS]
    pts: dict[str, dict[int, list[float]]] = {}
    for label, name in (("ceiling (exact input labels)", "ceiling"), ("fitted fusion bound", "fusion"),
                        ("refined (labelsplat)", "refined"), ("initial (simulated parser)", "initial")):
        pts[label] = {i: v for i, c in enumerate(cells) if (v := _series(c, name))}
    # one fit per head measured its fusion bound in the consensus benchmark
    bound = json.loads((RESULTS / "consensus_bound.json").read_text())["vote_fits"]["by_seed"]["pixel_majority"]
    pts["fitted fusion bound"][0] = [s["fit"]["by_yaw"][BIN]["miou"] for s in bound.values()]
    pts["fitted fusion bound"] = dict(sorted(pts["fitted fusion bound"].items()))
    pts["fit_s"] = {i: [_fit_s(c, "refined")] for i, c in enumerate(cells)}
    return pts


def plot(out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = points()
    fit_s = pts.pop("fit_s")
    fig, ax = plt.subplots(figsize=(8.4, 4.6), dpi=120)
    for name, by_n in pts.items():
        ns = sorted(by_n)
        mean = [float(np.mean(by_n[n])) for n in ns]
        lo = [m - float(np.min(by_n[n])) for m, n in zip(mean, ns)]
        hi = [float(np.max(by_n[n])) - m for m, n in zip(mean, ns)]
        ax.errorbar(ns, mean, yerr=[lo, hi], marker="o", capsize=4, label=name,
                    linestyle="--" if name.startswith("initial") else "-")
    for n, s in fit_s.items():
        ax.annotate(f"fit {s[0]:.0f} s", (n, 0.468), ha="center", fontsize=8, color="0.35")
    ax.set_xticks(range(len(CONFIGS)), [label for label, _ in CONFIGS], fontsize=8)
    ax.set_xlim(-0.4, len(CONFIGS) - 0.6)
    ax.set_ylabel(f"mIoU at |yaw| {BIN} (mean over seeds, min..max)")
    ax.set_title("fast preset's path: 32 views at 256 px, 2 heads x 3 seeds, 100 extreme views\n"
                 "(fit: seconds per head in the benchmark run, under its load)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0.455, 0.95)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return {k: {CONFIGS[n][0].replace("\n", ", "): round(float(np.mean(v)), 4) for n, v in d.items()}
            for k, d in pts.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "quality_front.png")
    args = ap.parse_args(argv)
    print(json.dumps(plot(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
