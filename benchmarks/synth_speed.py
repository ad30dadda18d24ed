"""Speed of the synthetic renderer (target: <= 1 s per 512x512 view on 2 CPU cores).

Times, per view, on the facescape rig: rasterisation alone, the full `render_head` (raster +
shading + background), and `render_head` + the `simulated:medium` noise model; also the one-time
head build and the numba compile/cache load. Writes benchmarks/results/synth_speed.json.

    python -m benchmarks.synth_speed [--resolution 512] [--views 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synth_speed.json")
    args = ap.parse_args()

    t = time.perf_counter()
    from labelsplat.synth.raster import rasterize

    rasterize(np.zeros((3, 2)), np.ones(3), np.array([[0, 1, 2]]), 4, 4)  # numba compile / cache load
    t_compile = time.perf_counter() - t

    from labelsplat.synth.head import build_head, sample_head
    from labelsplat.synth.noise import apply_noise, parse_noise, surface_patches
    from labelsplat.synth.render import rasterize_head, render_head
    from labelsplat.synth.rigs import RigConfig, rig_cameras

    t = time.perf_counter()
    params = sample_head(args.seed)
    mesh = build_head(params)
    t_build = time.perf_counter() - t
    cams, _ = rig_cameras(RigConfig("facescape", args.views, args.resolution), args.seed)
    spec = parse_noise("simulated:medium")
    patches = surface_patches(mesh, "medium", params.seed)
    render_head(mesh, cams[0])  # warm-up
    raster, full, noisy = [], [], []
    for cam in cams:
        t = time.perf_counter()
        rasterize_head(mesh, cam)
        raster.append(time.perf_counter() - t)
        t = time.perf_counter()
        r = render_head(mesh, cam)
        full.append(time.perf_counter() - t)
        t = time.perf_counter()
        apply_noise(r, mesh, cam, spec, params.seed, patches=patches)
        noisy.append(full[-1] + time.perf_counter() - t)

    import numba

    def stats(xs):
        return {"median_s": round(statistics.median(xs), 4), "max_s": round(max(xs), 4)}

    doc = {
        "schema_version": 1,
        "what": "synthetic head renderer speed per view",
        "settings": {"resolution": args.resolution, "views": args.views, "rig": "facescape", "seed": args.seed,
                     "triangles": int(mesh.faces.shape[0]), "numba_threads": numba.get_num_threads()},
        "numba_compile_or_cache_load_s": round(t_compile, 3),
        "head_build_s": round(t_build, 3),
        "rasterize": stats(raster),
        "render_head": stats(full),
        "render_head_plus_noise_medium": stats(noisy),
        "target_s_per_view": 1.0,
        "meets_target": statistics.median(full) <= 1.0,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "numba": numba.__version__},
        "note": "CPU shared with other jobs while measured; timings are noisy",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("numba_compile_or_cache_load_s", "head_build_s", "rasterize", "render_head",
                                          "render_head_plus_noise_medium")}, indent=1))


if __name__ == "__main__":
    main()
