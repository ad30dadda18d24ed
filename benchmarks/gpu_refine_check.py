"""One head refined end to end on a CUDA GPU at the GPU target's configuration (writes JSON; not a test).

Synthesises one head (facescape rig, ``--views`` at ``--resolution``, ``simulated:medium``
noise), then runs the same ``labelsplat.pipeline.refine`` that ``labelsplat refine`` runs, on ``--device``,
and records: the stage times from the run's DONE.json (fit, view sampling, render, extract,
post-process, export, consistency; ``score_gt`` is the orchestration's GT scoring and is not part
of the refine) plus ``finish_outputs`` (merged dataset, pooled metrics, report), the fit's steps and Gaussians, peak GPU memory (``torch.cuda.max_memory_allocated``),
the training PSNR and the refined vs initial mIoU at the novel views against exact labels.
gsplat's one-time JIT compile is excluded by compiling it before the clock starts
(``--warm``), and timed separately.

    python -m benchmarks.gpu_refine_check --device cuda --views 48 --resolution 512 \\
        --novel-views 500 --preset gpu --out gpu_refine.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _machine(device: str) -> dict:
    import torch

    info = {
        "platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "torch": str(torch.__version__), "loadavg": list(os.getloadavg()),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        try:
            import gsplat

            info["gsplat"] = gsplat.__version__
        except ImportError:  # pragma: no cover - reported, not fatal
            info["gsplat"] = None
    return info


def warm_gsplat() -> float:
    """Compile / load gsplat's CUDA extension and run one tiny rasterisation; returns seconds."""
    import torch

    from labelsplat.splat.rasterize import rasterize

    t = time.perf_counter()
    dev = torch.device("cuda")
    n = 64
    g = torch.Generator().manual_seed(0)
    means = (torch.rand(n, 3, generator=g) - 0.5).to(dev)
    means[:, 2] += 3
    quats = torch.nn.functional.normalize(torch.rand(n, 4, generator=g), dim=1).to(dev)
    scales = torch.full((n, 3), 0.05, device=dev)
    opac = torch.full((n,), 0.5, device=dev)
    cols = torch.rand(n, 3, generator=g).to(dev)
    vm = torch.eye(4, device=dev)[None]
    K = torch.tensor([[[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]]], device=dev)
    rasterize(means, quats, scales, opac, cols, vm, K, 64, 64, backend="gsplat")
    torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--views", type=int, default=48)
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--novel-views", type=int, default=500)
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", default="simulated:medium")
    ap.add_argument("--fit-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--refine-set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--label", default=None, help="name of this cell in the JSON (default from the settings)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/labelsplat_gpu_refine"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    import torch

    from labelsplat import __version__
    from labelsplat.io import atomic_write_json, read_json
    from labelsplat.config import preset, with_overrides
    from labelsplat.pipeline import refine
    from labelsplat.synth import SynthConfig, synthesize

    doc = read_json(args.out) if args.out.is_file() else {"benchmark": "gpu_refine_check", "cells": {}}
    doc["machine"] = _machine(args.device)
    doc["labelsplat"] = __version__
    if args.device.startswith("cuda") and "jit_and_first_call_s" not in doc:
        doc["jit_and_first_call_s"] = round(warm_gsplat(), 2)

    fit_over = dict(kv.split("=", 1) for kv in args.fit_set)
    fit_over = {k: _value(v) for k, v in fit_over.items()}
    ref_over = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.refine_set)}
    label = args.label or (f"{args.preset}_v{args.views}_r{args.resolution}_n{args.novel_views}"
                           + (f"_s{args.steps}" if args.steps else "")
                           + "".join(f"_{k}={v}" for k, v in {**fit_over, **ref_over}.items()))
    work = args.work / label
    if work.exists():
        shutil.rmtree(work)
    t = time.perf_counter()
    synthesize(work / "scenes", SynthConfig(identities=1, views=args.views, rig="facescape",
                                            resolution=args.resolution, noise=args.noise, seed=args.seed))
    t_synth = time.perf_counter() - t
    given = {k: v for k, v in (("novel_views", args.novel_views), ("steps", args.steps)) if v is not None}
    cfg = with_overrides(preset(args.preset), seed=args.seed, device=args.device, fit=fit_over, **given, **ref_over)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t = time.perf_counter()
    _, outcomes = refine([work / "scenes" / "head_000"], work / "out", cfg, progress=False, log=lambda m: None)
    outcome = outcomes[0]
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    timings = {k: round(v, 3) for k, v in outcome.timings.items()}
    # merge into OUT/dataset, pooled metrics, report.html: the part of `refine` after the scenes
    timings["finish_outputs"] = round(wall - outcome.timings.get("total", 0.0), 3)
    refine_s = wall - timings.get("score_gt", 0.0)
    run_json = read_json(outcome.out_dir / "run" / "run.json")
    summ = run_json.get("summary", {})
    labs = (outcome.metrics or {}).get("labellings", {})

    def miou(name: str) -> dict:
        d = labs.get(name) or {}
        return {"overall": (d.get("overall") or {}).get("miou"),
                "by_yaw": {b: (m or {}).get("miou") for b, m in (d.get("by_yaw") or {}).items()}}

    cell = {
        "settings": {**vars(args), "out": str(args.out), "work": str(args.work), "refine_config": cfg.to_dict()},
        "synth_s": round(t_synth, 2),
        "refine_wall_s": round(wall, 2),
        "refine_wall_excluding_gt_scoring_s": round(refine_s, 2),
        "stage_s": timings,
        "fit_steps": summ.get("steps"), "n_gaussians": summ.get("n_gaussians"),
        "fit_loop_s": summ.get("fit_time_s"), "fit_phases_s": summ.get("phases_s"),
        "steps_per_s": (round(summ["steps"] / summ["fit_time_s"], 2) if summ.get("fit_time_s") else None),
        "train_psnr_last": (summ.get("last_log") or {}).get("psnr"),
        "train_label_acc_last": (summ.get("last_log") or {}).get("label_acc"),
        "peak_gpu_memory_gb": (round(torch.cuda.max_memory_allocated() / 2**30, 3)
                               if args.device.startswith("cuda") else None),
        "accepted_views": outcome.n_accepted, "rejected_views": outcome.n_rejected,
        "miou_initial": miou("initial"), "miou_refined": miou("refined"),
    }
    doc["cells"][label] = cell
    atomic_write_json(args.out, doc)
    print(json.dumps({label: {k: cell[k] for k in ("refine_wall_excluding_gt_scoring_s", "stage_s", "fit_phases_s", "steps_per_s",
                                                  "n_gaussians", "peak_gpu_memory_gb", "miou_initial",
                                                  "miou_refined")}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
