"""How a fit step's time and memory grow with views, resolution, classes K and Gaussians (JSON + plots).

Each cell is one :func:`benchmarks.refine_speed.step_profile` (a fixed model of N Gaussians on a
head-shaped shell, V views at R x R, K logit channels, ``semantic_grad`` = the presets' default
``scaled:0.1``; median of ``--steps`` timed steps after one warm-up, split into data, raster
forward, loss forward, loss backward, raster backward, optimiser, densification bookkeeping,
plus one densification event) run in a fresh process so that its peak RSS is its own. Wall and
process-CPU times are both recorded: on a shared machine the CPU time is the steadier figure and
wall times are upper bounds. Cells already in ``--out`` are skipped (resumable).

Sweeps (one variable at a time around the base V = 8, R = 128, K = 19, N = 10k):
views 4/8/64, resolution 64..512, K 0/19/64/128, N 2k/10k/50k (11 cells).

Usage::

    python -m benchmarks.scaling --device cpu --out benchmarks/results/scaling_cpu.json
    python -m benchmarks.scaling --plot benchmarks/results/scaling_cpu.json   # -> docs/images/perf_*.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import loadavg, machine_info

ROOT = Path(__file__).resolve().parents[1]
BASE = {"views": 8, "resolution": 128, "K": 19, "n_gaussians": 10_000}
SWEEPS = {
    "views": [4, 8, 64],
    "resolution": [64, 128, 256, 512],
    "K": [0, 19, 64, 128],
    "n_gaussians": [2_000, 10_000, 50_000],
}
PHASES = ("data", "raster_fwd", "loss_fwd", "loss_bwd", "raster_bwd", "optimizer", "densify_stats")


def plan(sweeps: dict[str, list] = SWEEPS, base: dict = BASE) -> list[dict]:
    """The distinct cells of all sweeps (the base cell once)."""
    cells, seen = [], set()
    for var, values in sweeps.items():
        for v in values:
            c = dict(base, **{var: v})
            key = cell_key(c)
            if key not in seen:
                seen.add(key)
                cells.append(c)
    return cells


def cell_key(c: dict) -> str:
    return f"V{c['views']}_R{c['resolution']}_K{c['K']}_N{c['n_gaussians']}"


def run_cell(cell: dict, device: str, steps: int, semantic_grad: str) -> dict:
    """One step_profile in this process (the ``--cell`` entry point).

    The rasteriser is called once first (numba cache load / gsplat JIT), so the cell's memory
    growth excludes the compiled kernels.
    """
    from benchmarks.refine_speed import preflight, step_profile  # torch: only the cell processes need it

    preflight(device)
    return step_profile(n_gaussians=cell["n_gaussians"], views=cell["views"], resolution=cell["resolution"],
                        K=cell["K"], device=device, semantic_grad=semantic_grad, steps=steps)


def run_cell_subprocess(cell: dict, device: str, steps: int, semantic_grad: str) -> dict:
    arg = json.dumps({"cell": cell, "device": device, "steps": steps, "semantic_grad": semantic_grad})
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--cell", arg], cwd=ROOT, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cell {cell_key(cell)} failed: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per cell (after one warm-up)")
    ap.add_argument("--semantic-grad", default="scaled:0.1")
    ap.add_argument("--only", default="", help="comma list of sweeps to run (views,resolution,K,n_gaussians)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--plot", type=Path, default=None, help="plot an existing results JSON into docs/images/")
    ap.add_argument("--table", type=Path, default=None, help="print a markdown table of a results JSON")
    a = ap.parse_args(argv)
    if a.cell is not None:  # child process: one cell, JSON on the last stdout line
        spec = json.loads(a.cell)
        print(json.dumps(run_cell(spec["cell"], spec["device"], spec["steps"], spec["semantic_grad"])))
        return 0
    if a.table is not None:
        print(markdown_table(json.loads(a.table.read_text())))
        return 0
    if a.plot is not None:
        plot(json.loads(a.plot.read_text()), ROOT / "docs" / "images", tag=a.plot.stem.replace("scaling_", ""))
        return 0
    out = a.out or ROOT / "benchmarks" / "results" / f"scaling_{a.device}.json"
    from labelsplat.io import atomic_write_json

    doc = json.loads(out.read_text()) if out.exists() else {}
    settings = {"device": a.device, "steps": a.steps, "semantic_grad": a.semantic_grad, "base": BASE, "sweeps": SWEEPS}
    if doc.get("settings") not in (None, settings):
        print(f"{out} holds results for other settings; use another --out", file=sys.stderr)
        return 2
    doc.setdefault("schema_version", 1)
    doc.setdefault("benchmark", "scaling")
    doc["settings"] = settings
    doc["machine"] = machine_info(a.device)
    doc.setdefault("cells", {})
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    sweeps = {k: v for k, v in SWEEPS.items() if not only or k in only}
    t_all = time.perf_counter()
    for cell in plan(sweeps):
        key = cell_key(cell)
        if key in doc["cells"]:
            print(f"skip {key} (done)")
            continue
        load0 = loadavg()
        t = time.perf_counter()
        res = run_cell_subprocess(cell, a.device, a.steps, a.semantic_grad)
        res["cell_wall_s_including_process_start"] = round(time.perf_counter() - t, 2)
        res["loadavg_before"], res["loadavg_after"] = load0, loadavg()
        doc["cells"][key] = res
        atomic_write_json(out, doc)
        print(f"{key}: step {res['step_s']:.3f} s wall, {res['step_cpu_s']:.3f} s CPU, "
              f"+{res['memory']['peak_rss_minus_before_mib']:.0f} MiB, load {load0[0]}", flush=True)
    doc["sweep_wall_s_this_invocation"] = round(time.perf_counter() - t_all, 1)
    atomic_write_json(out, doc)
    print(f"wrote {out}")
    return 0


# ============================================================================ tables
def markdown_table(doc: dict) -> str:
    """One row per cell, sweeps in order: step time (wall, CPU), phases, memory, densification event."""
    mem_key = "cuda_max_allocated_mib" if doc["settings"]["device"] == "cuda" else "peak_rss_minus_before_mib"
    rows = ["| sweep | V | R | K | N | step ms wall | step ms CPU | raster fwd+bwd ms CPU | loss ms CPU | "
            "optimiser ms CPU | densify event ms wall | memory MiB | load |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for var in doc["settings"]["sweeps"]:
        for v, c in sweep_series(doc, var):
            p = c["phases_cpu_s"]
            rows.append(
                f"| {var} | {c['views']} | {c['resolution']} | {c['K']} | {c['n_gaussians']} | {c['step_s'] * 1e3:.0f} | "
                f"{c['step_cpu_s'] * 1e3:.0f} | {(p['raster_fwd'] + p['raster_bwd']) * 1e3:.0f} | "
                f"{(p['loss_fwd'] + p['loss_bwd']) * 1e3:.0f} | {p['optimizer'] * 1e3:.1f} | "
                f"{c.get('densify_event_s', float('nan')) * 1e3:.0f} | {c['memory'].get(mem_key, float('nan')):.0f} | "
                f"{c['loadavg_before'][0]} |")
    return "\n".join(rows)


# ============================================================================ plots
def sweep_series(doc: dict, var: str) -> list[tuple[int, dict]]:
    """(value, cell) pairs of one sweep, sorted by value (cells missing from ``doc`` left out)."""
    base = doc["settings"]["base"]
    rows = []
    for v in doc["settings"]["sweeps"][var]:
        key = cell_key(dict(base, **{var: v}))
        if key in doc["cells"]:
            rows.append((v, doc["cells"][key]))
    return rows


def plot(doc: dict, out_dir: Path, tag: str = "cpu") -> list[Path]:
    """``perf_scaling_<tag>.png`` (time + memory per sweep) and ``perf_profile_<tag>.png`` (phases)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {"views": "input views V", "resolution": "resolution R (R x R px)", "K": "classes K (logit channels)",
              "n_gaussians": "Gaussians N"}
    mem_key = "cuda_max_allocated_mib" if doc["settings"]["device"] == "cuda" else "peak_rss_minus_before_mib"
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    for ax, var in zip(axes, labels):
        rows = sweep_series(doc, var)
        if not rows:
            continue
        xs = [v for v, _ in rows]
        ax.plot(xs, [c["step_s"] * 1e3 for _, c in rows], "o-", label="wall (upper bound)")
        ax.plot(xs, [c["step_cpu_s"] * 1e3 for _, c in rows], "s--", label="process CPU time")
        ax.set_xlabel(labels[var])
        ax.set_ylabel("ms per fit step")
        if var in ("resolution", "n_gaussians", "views"):
            ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax2 = ax.twinx()
        ax2.plot(xs, [c["memory"].get(mem_key, float("nan")) for _, c in rows], "^:", color="tab:red", label="memory")
        ax2.set_ylabel("MiB (peak RSS growth)" if mem_key.startswith("peak") else "MiB (CUDA peak)", color="tab:red")
        if var == "views":
            ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(f"fit step vs size ({doc['machine'].get('cpu_model')}, {doc['machine'].get('cpu_count')} cores; "
                 f"base V={doc['settings']['base']['views']} R={doc['settings']['base']['resolution']} "
                 f"K={doc['settings']['base']['K']} N={doc['settings']['base']['n_gaussians']})", fontsize=9)
    fig.tight_layout()
    p1 = out_dir / f"perf_scaling_{tag}.png"
    fig.savefig(p1, dpi=90)
    plt.close(fig)

    # phase breakdown (CPU time) for the resolution and K sweeps
    rows = [(f"R{v}", c) for v, c in sweep_series(doc, "resolution")] + \
           [(f"K{v}", c) for v, c in sweep_series(doc, "K")] + \
           [(f"N{v // 1000}k", c) for v, c in sweep_series(doc, "n_gaussians")]
    fig, ax = plt.subplots(figsize=(11, 4.4))
    totals = [sum(c["phases_cpu_s"].get(ph, 0.0) for ph in PHASES) for _, c in rows]
    bottom = [0.0] * len(rows)
    for ph in PHASES:
        vals = [100.0 * c["phases_cpu_s"].get(ph, 0.0) / max(t, 1e-12) for (_, c), t in zip(rows, totals)]
        ax.bar([r for r, _ in rows], vals, bottom=bottom, label=ph)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, t in enumerate(totals):
        ax.text(i, 101, f"{t * 1e3:.0f} ms", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 112)
    ax.set_ylabel("% of the step's CPU time")
    ax.set_title("fit step by phase (process CPU time, median; total above each bar); "
                 "one variable changed from V=8 R=128 K=19 N=10k", fontsize=9)
    ax.legend(fontsize=7, ncol=7, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    p2 = out_dir / f"perf_profile_{tag}.png"
    fig.savefig(p2, dpi=90)
    plt.close(fig)
    return [p1, p2]


if __name__ == "__main__":
    raise SystemExit(main())
