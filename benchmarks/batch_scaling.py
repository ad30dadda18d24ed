"""Throughput of ``labelsplat batch`` (scenes/min) against the number of Ray workers.

CPU mode (default): the same N synthetic scenes refined with 1, 2, ... workers, each worker one
CPU and one thread (a local Ray instance with ``num_cpus = workers``, ``--cpus-per-scene 1``).
Efficiency of w workers = throughput(w) / (w * throughput(1)); the target is >= 0.9 per
added worker where the hardware allows (no other load, memory bandwidth not saturated).

GPU mode (``--gpu``, on a lent GPU machine): one GPU shared by several scenes at once through
fractional ``num_gpus`` (``--fractions 1 0.5 0.25`` = 1, 2, 4 scenes per card); gsplat's one-time
CUDA JIT compile is done by a warm-up fit before timing.

Each configuration starts its own local Ray instance; the timed phase is ``run_batch`` on an
already started instance (Ray start-up reported separately), so worker start-up (importing torch
in each worker) is included, as in real use. The load average of the machine is recorded before
and after every configuration: on a shared machine other processes take CPU time and the ratio
measured is lower than the hardware allows.

    python -m benchmarks.batch_scaling                      # CPU: 4 scenes, tiny, 1 and 2 workers
    python -m benchmarks.batch_scaling --gpu --scenes 8 --fractions 1 0.5 0.25

Writes benchmarks/results/batch_scaling_cpu.json (or _gpu.json); the published table compares
three CPU runs, merged into one file with ``benchmarks.merge_results``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def _machine() -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    import ray

    import labelsplat

    info["ray"] = ray.__version__
    info["labelsplat"] = labelsplat.__version__
    return info


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_config(scenes: list[Path], work: Path, cfg, *, num_cpus: int, num_gpus: float | None,
               gpus_per_scene: float | str, cpus_per_scene: int) -> dict:
    """One configuration: fresh local Ray instance, all scenes refined, timings."""
    import ray

    from labelsplat.distributed import BatchConfig, run_batch

    out = work / f"out_cpu{num_cpus}_gpu{gpus_per_scene}"
    if out.exists():
        shutil.rmtree(out)
    load_before = _load()
    t = time.perf_counter()
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    t_init = time.perf_counter() - t
    try:
        t = time.perf_counter()
        res = run_batch(scenes, out, cfg, BatchConfig(gpus_per_scene=gpus_per_scene, cpus_per_scene=cpus_per_scene,
                                                      max_retries=0),
                        progress=False, log=lambda m: print("  " + str(m), flush=True))
        wall = time.perf_counter() - t
    finally:
        ray.shutdown()
    if res.failures:
        raise SystemExit(f"scenes failed: {json.dumps(res.failures, indent=1)[:2000]}")
    per_scene = {o.name: {k: round(v, 2) for k, v in o.timings.items() if k in ("fit", "total")}
                 for o in res.outcomes}
    tasks = [d["elapsed_s"] for d in res.record["scenes"].values()]
    cpu = [d.get("cpu_s", 0.0) for d in res.record["scenes"].values()]
    slots = num_cpus // max(1, cpus_per_scene)
    return {
        "num_cpus": num_cpus, "num_gpus": num_gpus, "gpus_per_scene": gpus_per_scene, "cpus_per_scene": cpus_per_scene,
        "ray_init_s": round(t_init, 2), "batch_wall_s": round(wall, 2),
        "scenes_per_min": round(len(scenes) / wall * 60.0, 3),
        "task_s_mean": round(sum(tasks) / len(tasks), 2),
        "task_cpu_s_mean": round(sum(cpu) / len(cpu), 2),
        # CPU time the tasks got / (wall x concurrent task slots): 1.0 = every worker had a whole core
        "cpu_share_per_slot": round(sum(cpu) / (wall * min(slots, len(scenes))), 3),
        "per_scene_timings_s": per_scene,
        "loadavg_before": load_before, "loadavg_after": _load(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="GPU mode: fractional num_gpus on one card.")
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--novel-views", type=int, default=8)
    ap.add_argument("--sampler", default="extreme")
    ap.add_argument("--within-coverage", action="store_true",
                    help="Keep novel views within the inputs' coverage (default: allow beyond, so that the "
                         "sampler never fails on small synthetic rigs)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="CPU mode: worker counts.")
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5, 0.25],
                    help="GPU mode: num_gpus per scene.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="Scratch directory (default: a temporary one).")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out_json = args.out or Path(__file__).parent / "results" / f"batch_scaling_{'gpu' if args.gpu else 'cpu'}.json"

    from labelsplat.io import atomic_write_json
    from labelsplat.config import preset, with_overrides
    from labelsplat.synth import SynthConfig, synthesize

    work = args.work or Path(tempfile.mkdtemp(prefix="batch_scaling_"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    synthesize(work / "scenes", SynthConfig(identities=args.scenes, views=args.views, rig="facescape",
                                            resolution=args.resolution, noise="simulated:medium", seed=args.seed),
               overwrite=True)
    t_synth = time.perf_counter() - t
    scenes = sorted(p for p in (work / "scenes").iterdir() if (p / "transforms.json").is_file())
    device = "cuda" if args.gpu else "cpu"
    cfg = with_overrides(preset(args.preset), seed=args.seed, device=device, sampler=args.sampler,
                         beyond_coverage=not args.within_coverage,
                         **({} if args.novel_views is None else {"novel_views": args.novel_views}))

    results = []
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--gpu needs a CUDA device")
        # gsplat's one-time CUDA JIT compile, outside the timed runs
        from labelsplat.pipeline import refine_scene

        t = time.perf_counter()
        refine_scene(scenes[0], work / "warmup", cfg, progress=False, log=lambda m: None)
        warmup = round(time.perf_counter() - t, 2)
        ncpu = os.cpu_count() or 1
        for f in args.fractions:
            per_card = max(1, int(round(1.0 / f)))
            print(f"gpus_per_scene={f} ({per_card} scenes per card)", flush=True)
            r = run_config(scenes, work, cfg, num_cpus=ncpu, num_gpus=1, gpus_per_scene=f,
                           cpus_per_scene=max(1, ncpu // per_card))
            r["scenes_per_card"] = per_card
            results.append(r)
            print(f"  {r['scenes_per_min']} scenes/min", flush=True)
        base = results[0]["scenes_per_min"]
        for r in results:
            r["speedup_vs_1_per_card"] = round(r["scenes_per_min"] / base, 3)
        extra = {"warmup_refine_s": warmup}
    else:
        for w in args.workers:
            print(f"{w} worker(s)", flush=True)
            r = run_config(scenes, work, cfg, num_cpus=w, num_gpus=0, gpus_per_scene=0, cpus_per_scene=1)
            r["workers"] = w
            results.append(r)
            print(f"  {r['scenes_per_min']} scenes/min", flush=True)
        base = results[0]["scenes_per_min"] / results[0]["workers"]
        for r in results:
            r["efficiency_vs_linear"] = round(r["scenes_per_min"] / (r["workers"] * base), 3)
        extra = {}

    doc = {
        "benchmark": "batch_scaling", "mode": "gpu" if args.gpu else "cpu",
        "machine": _machine(),
        "settings": {"scenes": args.scenes, "views": args.views, "resolution": args.resolution, "preset": args.preset,
                     "novel_views": args.novel_views, "sampler": args.sampler,
                     "beyond_coverage": not args.within_coverage, "seed": args.seed, "device": device,
                     "noise": "simulated:medium", "rig": "facescape"},
        "synth_s": round(t_synth, 2), **extra,
        "results": results,
        "note": "batch_wall_s times run_batch on a started local Ray instance (worker start-up included); "
                "loadavg is the machine's 1/5/15-min load average: other processes on a shared machine "
                "lower the measured scaling. task_cpu_s_mean = CPU seconds of the worker process per scene "
                "(constant across worker counts = the work itself scales); cpu_share_per_slot = CPU time "
                "the tasks got / (wall time x concurrent workers)",
    }
    atomic_write_json(out_json, doc)
    print(json.dumps({r.get("workers", r.get("scenes_per_card")): (r["scenes_per_min"], r.get("efficiency_vs_linear",
                                                                   r.get("speedup_vs_1_per_card"))) for r in results}))
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
