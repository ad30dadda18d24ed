"""Forward + backward time of the CPU (numba) backend vs the frozen naive torch reference.

Scene: N Gaussians on a head-like ellipsoidal shell (semi-axes 0.8, 1.0, 0.9 in a radius-1
frame), anisotropic scales tangent to the shell sized so neighbours overlap (realistic
coverage: the shell is opaque from every side), opacities uniform in [0.3, 0.95], one camera
at distance 3.2 looking at the centre with a ~35 degree field of view. Loss = sum of a fixed
random linear functional of (render, alpha), so backward touches every channel.

Cells (resolution, N, D): naive vs cpu at 64^2/2k and 128^2/5k with D = 3 and 22, plus
cpu-only at 256^2 with 20k and 30k Gaussians and D = 22 (the ``fast`` preset's need). Each cell
reports the median wall time of ``--repeats`` timed runs after one warm-up (numba compilation
excluded; the first call's time is reported separately) and the median process CPU time (all
threads; less sensitive to other processes sharing the machine). Results go to
``benchmarks/results/cpu_backend_speed.json`` with machine, versions, threads and load.

Usage: ``python -m benchmarks.cpu_backend_speed [--repeats 7] [--skip-naive-128] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "cpu_backend_speed.json"


def head_shell_scene(n: int, size: int, channels: int, seed: int = 0, dtype=torch.float32):
    """Gaussians on an ellipsoidal shell + one camera; returns the rasterize() arguments."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.tensor([0.8, 1.0, 0.9], dtype=torch.float64)
    d = torch.randn(n, 3, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    means = d * axes * (1.0 + 0.02 * torch.randn(n, 1, generator=g, dtype=torch.float64))
    area = 4 * math.pi * 0.9 ** 2
    spacing = math.sqrt(area / n)
    tangent = spacing * (0.6 + 0.5 * torch.rand(n, 2, generator=g, dtype=torch.float64))
    normal = 0.15 * spacing * torch.ones(n, 1, dtype=torch.float64)
    scales = torch.cat([tangent, normal], dim=-1)
    # rotate local z onto the shell normal: quaternion from (0,0,1) to d, then a random twist
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(d)
    axis = torch.cross(z, d, dim=-1)
    cos = (z * d).sum(-1, keepdim=True)
    q = torch.cat([1.0 + cos, axis], dim=-1)
    q = torch.where(q.norm(dim=-1, keepdim=True) < 1e-6, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64), q)
    q = q / q.norm(dim=-1, keepdim=True)
    opac = 0.3 + 0.65 * torch.rand(n, generator=g, dtype=torch.float64)
    colors = torch.rand(n, channels, generator=g, dtype=torch.float64)
    from labelsplat.scene import look_at

    f = 0.5 * size / math.tan(math.radians(35.0) / 2)
    cam = look_at([0.6, 0.3, 3.2], [0, 0, 0], [0, 1, 0], f, f, size, size)
    viewmats = torch.tensor(cam.w2c_opencv, dtype=dtype)[None]
    Ks = torch.tensor(cam.K, dtype=dtype)[None]
    cast = lambda t: t.to(dtype)  # noqa: E731
    return (cast(means), cast(q), cast(scales), cast(opac), cast(colors), viewmats, Ks, size, size)


def time_fwd_bwd(args, backend: str, repeats: int, warmup: int = 1) -> dict:
    from labelsplat.splat.rasterize import rasterize

    means, quats, scales, opac, colors, viewmats, Ks, w, h = args
    gen = torch.Generator().manual_seed(1)
    C = viewmats.shape[0]
    wr = torch.randn(C, h, w, colors.shape[1] + 1, generator=gen, dtype=means.dtype).to(means.device)
    wa = torch.randn(C, h, w, 1, generator=gen, dtype=means.dtype).to(means.device)
    sync = torch.cuda.synchronize if means.device.type == "cuda" else (lambda: None)  # GPU: time the work
    times, fwd, cpu = [], [], []
    for i in range(warmup + repeats):
        ps = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors)]
        sync()
        c0 = time.process_time()
        t0 = time.perf_counter()
        r, a, _ = rasterize(*ps, viewmats, Ks, w, h, backend=backend)
        sync()
        t1 = time.perf_counter()
        loss = (r * wr).sum() + (a * wa).sum()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        c2 = time.process_time()
        if i >= warmup:
            times.append(t2 - t0)
            fwd.append(t1 - t0)
            cpu.append(c2 - c0)
    if not times:
        return {}
    return {
        "fwd_bwd_s": statistics.median(times),
        "fwd_s": statistics.median(fwd),
        "all_fwd_bwd_s": times,
        # CPU time of this process (all threads): robust to other processes' load
        "cpu_time_fwd_bwd_s": statistics.median(cpu),
        "mean_alpha": float(a.detach().mean()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per cpu cell (naive: 3 at 64^2, 2 at 128^2)")
    ap.add_argument("--skip-naive-128", action="store_true", help="skip the slow naive 128^2 cells")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)

    import numba

    from labelsplat.splat import _cpu_kernels  # import cost excluded

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    time_fwd_bwd(head_shell_scene(50, 32, 3), "cpu", repeats=0, warmup=1)
    first_call = time.perf_counter() - t0

    cells = []
    plan = [(64, 2000, 3), (64, 2000, 22), (128, 5000, 3), (128, 5000, 22)]
    for size, n, ch in plan:
        args = head_shell_scene(n, size, ch)
        cell = {"resolution": size, "n_gaussians": n, "channels": ch}
        cell["cpu"] = time_fwd_bwd(args, "cpu", a.repeats)
        if not (a.skip_naive_128 and size >= 128):
            cell["naive"] = time_fwd_bwd(args, "naive", 2 if size >= 128 else min(a.repeats, 3))
            cell["speedup_cpu_vs_naive"] = cell["naive"]["fwd_bwd_s"] / cell["cpu"]["fwd_bwd_s"]
        cells.append(cell)
        print(json.dumps({k: v for k, v in cell.items()}, default=float), flush=True)
    for size, n, ch in [(256, 20000, 22), (256, 30000, 22)]:
        args = head_shell_scene(n, size, ch)
        cell = {"resolution": size, "n_gaussians": n, "channels": ch,
                "cpu": time_fwd_bwd(args, "cpu", a.repeats)}
        cells.append(cell)
        print(json.dumps(cell, default=float), flush=True)

    doc = {
        "schema_version": 1,
        "benchmark": "cpu_backend_speed",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numba": numba.__version__,
            "torch_threads": torch.get_num_threads(),
            "kernel_threads": _cpu_kernels.num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "settings": {"repeats_cpu": a.repeats, "repeats_naive": "3 at 64^2, 2 at 128^2", "dtype": "float32", "tile_size": 16,
                     "scene": "ellipsoidal head shell, opacity 0.3-0.95, 1 camera, render_depth=True"},
        "first_call_s_including_numba_load_or_compile": first_call,
        "cells": cells,
        "targets": {"speedup_128_5k": ">= 20", "cpu_256_20-30k_22ch_fwd_bwd_s": "<= 0.25"},
    }
    from labelsplat.io import atomic_write_json

    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out, doc)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
