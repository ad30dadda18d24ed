"""Speed of a whole ``refine`` on one machine, with the cost broken down (writes JSON; not a test).

One run measures, on one device (``--device cpu|cuda``) and one synthetic head:

* ``refine``: wall time of every stage of a full refine (synth + I/O, load, fit, view sampling,
  rendering the novel views, extraction, post-processing, export, GT scoring, consistency,
  merge + report), peak memory (CPU: peak RSS of this process; CUDA: ``max_memory_allocated``),
  number of Gaussians, fit steps/s, and the quality it reached (PSNR at the training views,
  refined and initial mIoU vs the exact labels at the novel views, from ``metrics.json``);
* ``fit_modes``: steps/s of the same scene fitted with ``--ratio-steps`` steps per cell by the
  same code with the semantic head on (one cell per ``semantic_grad`` mode) and off (``rgb``:
  K = 0), and the ratio joint / RGB-only per mode;
* ``step_profile``: a fit step of a fixed model (Gaussians on a head-shaped shell, as many as
  the refine ended with) split into data, raster forward, loss forward, loss backward, raster
  backward, optimiser and densification bookkeeping (+ one densification event), for K = 19
  and K = 0 and each mode -- the ratio at identical geometry;
* ``backend``: rasteriser fwd+bwd at 128x128 with 5k Gaussians and 3 + 19 channels: the CPU
  backend (CUDA: gsplat) against the frozen naive all-pairs reference on the same device, with
  absolute times (``benchmarks.cpu_backend_speed``'s scene and timer);
* ``demo`` (``--demo``): ``python -m labelsplat demo`` end to end in a fresh process.

Every figure is written with the machine (CPU model, cores, threads, GPU), versions, settings
and the load average before/after each part. On a shared machine wall times are upper bounds.

Usage::

    python -m benchmarks.refine_speed --device cpu --preset fast --views 32 --resolution 256 \\
        --novel-views 100 --demo --out /tmp/refine_speed_cpu_fast.json
    python -m benchmarks.refine_speed --device cuda --preset paper --views 48 --resolution 512 \\
        --novel-views 500 --out /tmp/refine_speed_cuda_paper.json
    python -m benchmarks.refine_speed --quick --device cuda    # smoke check (~1 min + JIT)
    python -m benchmarks.refine_speed --table benchmarks/results/refine_speed_cpu_fast.json

``--device cuda`` runs every tensor on the GPU through the gsplat backend and stops with a clear
message when CUDA or gsplat's kernels are unavailable. The first gsplat call (its one-time JIT
compile) is timed separately (``preflight``) and is not part of the refine figures.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import PhaseTimer, current_rss_mib, loadavg, machine_info, peak_rss_mib, sync
from benchmarks.cpu_backend_speed import head_shell_scene, time_fwd_bwd
from benchmarks.merge_results import runs_of

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODES = ("full", "none", "scaled:0.1")


class BenchmarkError(RuntimeError):
    """The benchmark cannot run as asked (no CUDA, no gsplat kernels, ...)."""


# ============================================================================ device
def preflight(device: str) -> dict:
    """Check the device and backend; time the first rasteriser call (numba cache load / gsplat JIT).

    Raises :class:`BenchmarkError` when ``device`` is cuda and CUDA or gsplat's kernels fail.
    """
    import torch

    from labelsplat.splat.rasterize import rasterize

    if device not in ("cpu", "cuda"):
        raise BenchmarkError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)")
    backend = "gsplat" if device == "cuda" else "cpu"
    args = [t.to(device) if isinstance(t, torch.Tensor) else t for t in head_shell_scene(200, 32, 4)]
    t0 = time.perf_counter()
    try:
        r, a, _ = rasterize(*args, backend=backend)
        r.sum().backward() if r.requires_grad else None
        sync(device)
    except Exception as exc:
        raise BenchmarkError(
            f"the {backend} backend failed on {device} ({type(exc).__name__}: {exc}); "
            + ("gsplat's CUDA kernels must compile/load (nvcc + a matching CUDA toolkit)" if device == "cuda" else "")
        ) from exc
    return {"backend": backend, "first_call_s": round(time.perf_counter() - t0, 3)}


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> dict:
    """Peak memory so far: CPU peak RSS of the process; on CUDA also torch's peak allocation."""
    import torch

    d = {"peak_rss_mib": round(peak_rss_mib(), 1)}
    if device == "cuda":
        d["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        d["cuda_max_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return d


# ============================================================================ synthetic scene
def synth_scene(work: Path, views: int, resolution: int, noise: str, seed: int) -> tuple[Path, float]:
    """Write one synthetic head (facescape rig) under ``work/scene``; returns (scene dir, seconds)."""
    from labelsplat.synth import SynthConfig, synthesize

    t = time.perf_counter()
    synthesize(work / "scene", SynthConfig(identities=1, views=views, rig="facescape", resolution=resolution,
                                           noise=noise, seed=seed), overwrite=True)
    return work / "scene" / "head_000", time.perf_counter() - t


# ============================================================================ full refine
def time_refine(scene_dir: Path, out: Path, *, preset: str, novel_views: int | None, device: str, seed: int,
                steps: int | None = None, fit_overrides: dict | None = None) -> dict:
    """One full ``refine`` of ``scene_dir``: stage times, memory, Gaussians, quality."""
    from labelsplat.io import read_json
    from labelsplat.config import preset as preset_tree
    from labelsplat.config import with_overrides
    from labelsplat.pipeline import refine

    given = {k: v for k, v in (("novel_views", novel_views), ("steps", steps)) if v is not None}
    cfg = with_overrides(preset_tree(preset), seed=seed, device=device, fit=dict(fit_overrides or {}), **given)
    reset_peak(device)
    load0 = loadavg()
    c0 = time.process_time()
    t = time.perf_counter()
    pooled, outcomes = refine([scene_dir], out, cfg, overwrite=True, progress=False, log=lambda s: None)
    sync(device)
    wall = time.perf_counter() - t
    o = outcomes[0]
    stages = {k: round(v, 3) for k, v in o.timings.items()}
    stages["merge_and_report"] = round(wall - o.timings.get("total", 0.0), 3)
    run = read_json(o.out_dir / "run" / "run.json")
    summ = run.get("summary", {})
    labs = (o.metrics or {}).get("labellings", {})

    def miou(name):
        return labs.get(name, {}).get("overall", {}).get("miou")

    fit_loop = summ.get("fit_time_s")
    return {
        "wall_s": round(wall, 2),
        "cpu_s_all_threads": round(time.process_time() - c0, 2),
        "stages_s": stages,
        "n_gaussians": summ.get("n_gaussians"),
        "fit_steps": summ.get("steps"),
        "fit_loop_s": fit_loop,
        "fit_steps_per_s": round(summ["steps"] / fit_loop, 3) if fit_loop else None,
        "train_view_psnr_fg": summ.get("train_view_psnr_fg"),
        "novel_views": cfg.export.novel_views, "accepted_views": o.n_accepted, "rejected_views": o.n_rejected,
        "miou_refined_vs_gt": miou("refined"), "miou_initial_vs_gt": miou("initial"),
        "memory": peak_memory(device),
        "loadavg_before": load0, "loadavg_after": loadavg(),
    }


# ============================================================================ fit per mode
def time_fit_modes(scene_dir: Path, work: Path, *, preset: str, steps: int, modes: list[str], device: str,
                   seed: int, fit_overrides: dict | None = None) -> dict:
    """Fit ``scene_dir`` with ``steps`` steps per cell: ``rgb`` (K = 0) and each joint ``semantic_grad`` mode.

    Every cell runs the same trainer code (``fit``) on the same scene and seed; the ratio
    joint / RGB-only compares fit-loop times (``fit_time_s``, outputs excluded).
    """
    from labelsplat.config import fit_preset
    from labelsplat.splat import fit

    cells = {}
    for mode in ["rgb", *[m for m in modes if m != "rgb"]]:
        over = {"semantics": False} if mode == "rgb" else {"semantic_grad": mode}
        cfg = fit_preset(preset, **{**dict(fit_overrides or {}), "steps": steps, "seed": seed, **over})
        run_dir = work / f"fit_{mode.replace(':', '_')}"
        shutil.rmtree(run_dir, ignore_errors=True)
        reset_peak(device)
        load0 = loadavg()
        c0 = time.process_time()
        res = fit(scene_dir, run_dir, cfg, device=device, progress=False, write_outputs=False)
        sync(device)
        loop = res.summary["fit_time_s"]
        cells[mode] = {
            "steps": steps, "fit_loop_s": loop, "steps_per_s": round(steps / loop, 3),
            # process CPU time of the whole fit() call (init + loop + final bookkeeping, all threads)
            "fit_call_cpu_s": round(time.process_time() - c0, 3),
            "n_gaussians": res.summary["n_gaussians"], "last_psnr": res.summary.get("last_log", {}).get("psnr"),
            "memory": peak_memory(device), "loadavg_before": load0, "loadavg_after": loadavg(),
        }
        shutil.rmtree(run_dir, ignore_errors=True)
    ratios = {m: round(c["fit_loop_s"] / cells["rgb"]["fit_loop_s"], 3) for m, c in cells.items() if m != "rgb"}
    cpu_ratios = {m: round(c["fit_call_cpu_s"] / cells["rgb"]["fit_call_cpu_s"], 3) for m, c in cells.items() if m != "rgb"}
    return {"cells": cells, "ratio_joint_vs_rgb_only": ratios, "ratio_cpu_time_whole_fit_call": cpu_ratios}


# ============================================================================ fixed-model fit step
def shell_model(n: int, K: int, *, sh_degree: int = 1, device="cpu", seed: int = 0):
    """A GaussianModel of ``n`` Gaussians on a head-shaped shell (normalised frame, radius ~1) with K logits.

    Geometry from ``benchmarks.cpu_backend_speed.head_shell_scene`` (anisotropic, tangent to the shell,
    opacity 0.3-0.95); colours random; logits ``3 * one_hot(random class)``.
    """
    import torch

    from labelsplat.splat.model import GaussianModel, rgb_to_sh0

    means, quats, scales, opac, colors = head_shell_scene(n, 16, 3, seed=seed)[:5]
    g = torch.Generator().manual_seed(seed + 1)
    sem = torch.zeros(n, K)
    if K > 0:
        sem[torch.arange(n), torch.randint(0, K, (n,), generator=g)] = 3.0
    n_rest = (sh_degree + 1) ** 2 - 1
    P = torch.nn.Parameter
    params = torch.nn.ParameterDict({
        "means": P(means.clone()), "scales": P(torch.log(scales)), "quats": P(quats.clone()),
        "opacities": P(torch.logit(opac)), "sh0": P(rgb_to_sh0(colors)[:, None, :]),
        "shN": P(torch.zeros(n, n_rest, 3)), "sem": P(sem),
    }).to(device)
    return GaussianModel(params, sh_degree, K)


def orbit_cameras(views: int, size: int, *, seed: int = 0):
    """``views`` cameras at distance 3.2 on the frontal hemisphere (|yaw| <= 90, |pitch| <= 30), 35 deg FOV."""
    import numpy as np

    from labelsplat.scene import look_at

    rng = np.random.default_rng(seed)
    f = 0.5 * size / math.tan(math.radians(35.0) / 2)
    cams = []
    for k in range(views):
        yaw = math.radians(-90 + 180 * (k + 0.5) / views)
        pitch = math.radians(rng.uniform(-30, 30))
        c = [3.2 * math.sin(yaw) * math.cos(pitch), 3.2 * math.sin(pitch), 3.2 * math.cos(yaw) * math.cos(pitch)]
        cams.append(look_at(c, [0, 0, 0], [0, 1, 0], f, f, size, size))
    return cams


def step_profile(*, n_gaussians: int, views: int, resolution: int, K: int, device: str = "cpu",
                 semantic_grad: str = "full", steps: int = 5, warmup: int = 1, seed: int = 0,
                 sh_degree: int = 1, densify_event: bool = True) -> dict:
    """Time fit steps of a fixed shell model, split by phase (medians over ``steps`` timed steps).

    The step is the fit's (``labelsplat.splat.fit.FitLoop.step``) built from the same pieces:
    ``render_model`` (one rasterisation of [RGB | K logits | depth]), ``rgb_loss`` + 0.5 *
    ``semantic_loss`` + 0.1 * ``alpha_loss``, Adam per parameter group (``make_optimizers``)
    and gsplat's ``DefaultStrategy`` statistics. Backward is split exactly: the loss's gradient
    w.r.t. the rendered images first (``loss_bwd``), then the rasteriser's backward
    (``raster_bwd``, incl. SH and projection). Targets: the model's own render at each view
    plus noise, labels = its argmax, mask = alpha > 0.5 -- so loss values are realistic.
    Phases: data (batch staging), raster_fwd, loss_fwd, loss_bwd, raster_bwd, optimizer,
    densify_stats (pre/post-backward bookkeeping); ``densify_event_s`` = one grow + prune.
    Memory: peak RSS (CPU, process-wide: run one cell per process to compare cells) or
    ``cuda_max_allocated_mib``.
    """
    import torch

    backend = "gsplat" if device == "cuda" else "cpu"
    prev_threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)  # as fit() does on the CPU: the cores go to the numba rasteriser
    try:
        return _step_profile(model_args=(n_gaussians, K, sh_degree, device, seed), views=views, resolution=resolution,
                             semantic_grad=semantic_grad, steps=steps, warmup=warmup, densify_event=densify_event,
                             backend=backend)
    finally:
        torch.set_num_threads(prev_threads)


def _step_profile(*, model_args, views, resolution, semantic_grad, steps, warmup, densify_event, backend) -> dict:
    import torch
    from gsplat.strategy import DefaultStrategy

    from labelsplat.config import fit_preset
    from labelsplat.splat import render_model
    from labelsplat.splat.losses import alpha_loss, rgb_loss, semantic_loss
    from labelsplat.splat.optim import make_optimizers

    n_gaussians, K, sh_degree, device, seed = model_args
    torch.manual_seed(seed)
    rss0 = current_rss_mib()
    reset_peak(device)
    model = shell_model(n_gaussians, K, sh_degree=sh_degree, device=device, seed=seed)
    cams = orbit_cameras(views, resolution, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels, masks = [], [], []
    with torch.no_grad():
        for cam in cams:
            out = render_model(model, [cam], backend=backend, active_sh=sh_degree)
            noise = 0.05 * torch.randn(out["rgb"][0].shape, generator=gen).to(device)
            images.append((out["rgb"][0] + noise).clamp(0, 1))
            masks.append((out["alpha"][0] > 0.5).float())
            labels.append(out["logits"][0].argmax(-1) if K > 0 else None)
    cfg = fit_preset("fast", steps=10**6, seed=seed, semantic_grad=semantic_grad, semantics=K > 0)
    optimizers = make_optimizers(model, cfg)
    strat_kw = dict(prune_opa=cfg.prune_opa, grow_grad2d=cfg.grow_grad2d, grow_scale3d=cfg.grow_scale3d,
                    prune_scale3d=cfg.prune_scale3d, verbose=False, reset_every=10**9)
    strategy = DefaultStrategy(refine_start_iter=10**9, refine_stop_iter=10**9 + 1, refine_every=100, **strat_kw)
    sstate = strategy.initialize_state(scene_scale=1.0)
    sem_w = cfg.semantic_grad_weight
    timer = PhaseTimer(device)
    per_step, per_step_cpu = [], []
    order = torch.randperm(len(cams), generator=gen)
    for step in range(warmup + steps):
        timer.reset()
        with timer("data"):
            i = int(order[step % len(cams)])
            bg = torch.rand(1, 3, generator=gen).to(device)
            m = masks[i][None]
            target = images[i][None] * m[..., None] + bg[:, None, None, :] * (1 - m[..., None])
            lab = labels[i][None] if K > 0 else None
        with timer("raster_fwd"):
            out = render_model(model, [cams[i]], backend=backend, active_sh=sh_degree, bg_rgb=bg,
                               semantic_grad_weight=sem_w)
        with timer("densify_stats"):
            strategy.step_pre_backward(model.params, optimizers, sstate, step, out["info"])
        with timer("loss_fwd"):
            keys = ["rgb", "alpha"] + (["logits"] if K > 0 else [])
            leaf = {k: out[k].detach().requires_grad_(True) for k in keys}
            loss = rgb_loss(leaf["rgb"], target, cfg.ssim_lambda) + cfg.alpha_weight * alpha_loss(leaf["alpha"], m)
            if K > 0:
                loss = loss + cfg.sem_weight * semantic_loss(leaf["logits"], lab)
        with timer("loss_bwd"):
            loss.backward()
        with timer("raster_bwd"):
            torch.autograd.backward([out[k] for k in keys], [leaf[k].grad for k in keys])
        with timer("optimizer"):
            for opt in optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
        with timer("densify_stats"):
            strategy.step_post_backward(model.params, optimizers, sstate, step, out["info"], packed=False)
        if step >= warmup:
            per_step.append(dict(timer.totals))
            per_step_cpu.append(dict(timer.cpu_totals))
    phases = {k: statistics.median(s[k] for s in per_step) for k in per_step[0]}
    phases_cpu = {k: statistics.median(s[k] for s in per_step_cpu) for k in per_step_cpu[0]}
    res = {
        "n_gaussians": n_gaussians, "views": views, "resolution": resolution, "K": K, "device": device,
        "backend": backend, "semantic_grad": semantic_grad if K > 0 else None, "steps_timed": steps,
        "step_s": statistics.median(sum(s.values()) for s in per_step),
        "phases_s": phases,
        "step_cpu_s": statistics.median(sum(s.values()) for s in per_step_cpu),
        "phases_cpu_s": phases_cpu,
        "torch_threads": torch.get_num_threads(),
        "mean_alpha": float(torch.stack(masks).mean()),
    }
    if densify_event:
        # one grow + prune with the accumulated statistics (what a refine_every step adds)
        event = DefaultStrategy(refine_start_iter=0, refine_stop_iter=10**9, refine_every=1, **strat_kw)
        n0 = model.num_gaussians
        with timer("densify_event"):
            event.step_post_backward(model.params, optimizers, sstate, warmup + steps, out["info"], packed=False)
        res["densify_event_s"] = timer.totals["densify_event"]
        res["densify_event_n_before_after"] = [n0, model.num_gaussians]
    mem = peak_memory(device)
    mem["rss_before_cell_mib"] = round(rss0, 1)
    mem["peak_rss_minus_before_mib"] = round(mem["peak_rss_mib"] - rss0, 1)
    res["memory"] = mem
    return res


def profile_modes(*, n_gaussians: int, resolution: int, K: int, device: str, modes: list[str], steps: int,
                  views: int = 8, seed: int = 0) -> dict:
    """``step_profile`` for K = 0 and K with each mode; ratio per mode at identical geometry."""
    cells = {"rgb": step_profile(n_gaussians=n_gaussians, views=views, resolution=resolution, K=0, device=device,
                                 steps=steps, seed=seed, densify_event=False)}
    for mode in modes:
        cells[mode] = step_profile(n_gaussians=n_gaussians, views=views, resolution=resolution, K=K, device=device,
                                   semantic_grad=mode, steps=steps, seed=seed, densify_event=mode == modes[0])
    ratios = {m: round(c["step_s"] / cells["rgb"]["step_s"], 3) for m, c in cells.items() if m != "rgb"}
    cpu_ratios = {m: round(c["step_cpu_s"] / cells["rgb"]["step_cpu_s"], 3) for m, c in cells.items() if m != "rgb"}
    return {"cells": cells, "ratio_joint_vs_rgb_only": ratios, "ratio_cpu_time": cpu_ratios}


# ============================================================================ backend vs naive
def backend_vs_naive(device: str, *, size: int = 128, n: int = 5000, channels: int = 22, repeats: int = 5,
                     naive_repeats: int = 2) -> dict:
    """Rasteriser fwd+bwd (CPU: numba backend; CUDA: gsplat) vs the frozen naive reference, same device."""
    import torch


    args = tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in head_shell_scene(n, size, channels))
    fast_name = "gsplat" if device == "cuda" else "cpu"
    load0 = loadavg()
    fast = time_fwd_bwd(args, fast_name, repeats)
    naive = time_fwd_bwd(args, "naive", naive_repeats)
    return {
        "resolution": size, "n_gaussians": n, "channels": channels, "device": device,
        fast_name: {k: v for k, v in fast.items() if k != "all_fwd_bwd_s"} | {"all_fwd_bwd_s": fast["all_fwd_bwd_s"]},
        "naive": naive,
        "speedup_vs_naive": round(naive["fwd_bwd_s"] / fast["fwd_bwd_s"], 2),
        "speedup_vs_naive_cpu_time": round(naive["cpu_time_fwd_bwd_s"] / fast["cpu_time_fwd_bwd_s"], 2),
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": load0, "loadavg_after": loadavg(),
    }


# ============================================================================ demo
def time_demo(work: Path, device: str) -> dict:
    """``python -m labelsplat demo`` in a fresh process (imports, numba cache load, everything)."""
    out = work / "demo"
    import resource

    load0 = loadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "labelsplat", "demo", "--out", str(out), "--device", device, "--quiet"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0:
        raise BenchmarkError(f"labelsplat demo failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    metrics = json.loads((out / "refined" / "metrics.json").read_text())
    ov = metrics.get("labellings", {})
    return {
        "wall_s": round(wall, 2), "cpu_s_all_threads": round(cpu, 2),
        "numba_cache": "warm (kernels compiled by earlier runs)",
        "miou_refined_vs_gt": ov.get("refined", {}).get("overall", {}).get("miou"),
        "miou_initial_vs_gt": ov.get("initial", {}).get("overall", {}).get("miou"),
        "loadavg_before": load0, "loadavg_after": loadavg(),
    }


# ============================================================================ tables
def _f(x, nd=2, unit=""):
    return "n/a" if x is None else f"{x:.{nd}f}{unit}"


def markdown_tables(doc: dict) -> str:
    """Markdown tables of one results JSON (for docs/performance.md)."""
    m, st = doc.get("machine", {}), doc.get("settings", {})
    gpu = (m.get("gpu") or {}).get("name")
    lines = [f"Machine: {m.get('cpu_model')} x{m.get('cpu_count')} cores" + (f", GPU {gpu}" if gpu else "")
             + f"; torch {m.get('torch')}, gsplat {m.get('gsplat')}; load average at start {doc.get('loadavg_start')}, "
             f"end {doc.get('loadavg_end')}. Settings: preset {st.get('preset')}, {st.get('views')} views at "
             f"{st.get('resolution')}^2, {st.get('novel_views')} novel views, {st.get('num_classes')} classes, "
             f"seed {st.get('seed')}.", ""]
    r = doc.get("refine")
    if r:
        lines += ["| refine stage | wall s |", "| --- | ---: |"]
        lines += [f"| {k} | {v:.2f} |" for k, v in r["stages_s"].items() if k != "total"]
        lines += [f"| **total (incl. synth)** | **{r['wall_s_including_synth']:.1f}** |", ""]
        mem = r["memory"]
        cpu = r.get("cpu_s_all_threads")
        lines += [f"Refine: {'' if cpu is None else f'process CPU time {cpu:.1f} s (all threads); '}"
                  f"{r['n_gaussians']} Gaussians; fit {r['fit_steps']} steps in {r['fit_loop_s']:.1f} s "
                  f"({r['fit_steps_per_s']:.2f} steps/s); PSNR (training views, foreground) "
                  f"{_f(r['train_view_psnr_fg'])} dB; mIoU vs GT at the novel views: initial "
                  f"{_f(r['miou_initial_vs_gt'], 3)} -> refined {_f(r['miou_refined_vs_gt'], 3)} "
                  f"({r['accepted_views']}/{r['novel_views']} views accepted); peak RSS {mem['peak_rss_mib']:.0f} MiB"
                  + (f", CUDA peak allocated {mem['cuda_max_allocated_mib']:.0f} MiB" if "cuda_max_allocated_mib" in mem
                     else "") + ".", ""]
    fm = doc.get("fit_modes")
    if fm:
        lines += ["| fit (same scene, same steps) | steps | fit loop s | steps/s | Gaussians | ratio vs RGB-only (wall) "
                  "| ratio (CPU time, whole fit call) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for mode, c in fm["cells"].items():
            lines.append(f"| {'RGB-only (K=0)' if mode == 'rgb' else 'joint ' + mode} | {c['steps']} | "
                         f"{c['fit_loop_s']:.1f} | {c['steps_per_s']:.2f} | {c['n_gaussians']} | "
                         f"{fm['ratio_joint_vs_rgb_only'].get(mode, 1.0):.3f} | "
                         f"{fm.get('ratio_cpu_time_whole_fit_call', {}).get(mode, 1.0):.3f} |")
        lines.append("")
    sp = doc.get("step_profile")
    if sp:
        c0 = next(iter(sp["cells"].values()))
        lines += [f"Fit step of a fixed model ({c0['n_gaussians']} Gaussians, {c0['resolution']}^2, median of "
                  f"{c0['steps_timed']} steps):", "",
                  "| cell | step ms (wall) | step ms (CPU) | raster fwd | raster bwd | loss fwd+bwd | optimiser | "
                  "densify stats | ratio vs RGB-only (wall / CPU) |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for mode, c in sp["cells"].items():
            p = c.get("phases_cpu_s", c["phases_s"])
            rw = sp["ratio_joint_vs_rgb_only"].get(mode)
            rc = sp.get("ratio_cpu_time", {}).get(mode, float("nan"))
            lines.append(
                f"| {'RGB-only (K=0)' if mode == 'rgb' else 'K=19 ' + mode} | {c['step_s'] * 1e3:.0f} | "
                f"{c.get('step_cpu_s', float('nan')) * 1e3:.0f} | {p['raster_fwd'] * 1e3:.0f} | {p['raster_bwd'] * 1e3:.0f} | "
                f"{(p['loss_fwd'] + p['loss_bwd']) * 1e3:.0f} | {p['optimizer'] * 1e3:.1f} | "
                f"{p['densify_stats'] * 1e3:.1f} | {'-' if rw is None else f'{rw:.2f} / {rc:.2f}'} |")
        lines += ["", "(phase columns: ms of process CPU time)", ""]
    b = doc.get("backend")
    if b:
        fast = "gsplat" if "gsplat" in b else "cpu"
        lines += [f"Rasteriser fwd+bwd at {b['resolution']}^2, {b['n_gaussians']} Gaussians, {b['channels']} channels: "
                  f"{fast} {b[fast]['fwd_bwd_s'] * 1e3:.0f} ms wall ({b[fast]['cpu_time_fwd_bwd_s'] * 1e3:.0f} ms CPU), "
                  f"naive {b['naive']['fwd_bwd_s']:.1f} s wall ({b['naive']['cpu_time_fwd_bwd_s']:.1f} s CPU): "
                  f"{b['speedup_vs_naive']:.0f}x wall, {b.get('speedup_vs_naive_cpu_time', float('nan')):.0f}x CPU time.", ""]
    d = doc.get("demo")
    if d:
        cpu = d.get("cpu_s_all_threads")
        lines += [f"`labelsplat demo` (fresh process, warm numba cache): {d['wall_s']:.1f} s wall"
                  f"{'' if cpu is None else f', {cpu:.1f} s CPU'}; mIoU initial {_f(d['miou_initial_vs_gt'], 3)} -> refined "
                  f"{_f(d['miou_refined_vs_gt'], 3)}; load {d['loadavg_before']} -> {d['loadavg_after']}.", ""]
    return "\n".join(lines)


def parse_sets(items: list[str]) -> dict:
    """``KEY=VALUE`` strings -> dict; values parsed as JSON where they are (numbers, true, null), else text."""
    out = {}
    for kv in items:
        if "=" not in kv:
            raise BenchmarkError(f"--fit-set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


# ============================================================================ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--preset", default="fast", choices=["micro", "tiny", "fast", "paper"])
    ap.add_argument("--views", type=int, default=32, help="input cameras of the synthetic head")
    ap.add_argument("--resolution", type=int, default=256, help="input image size (square)")
    ap.add_argument("--novel-views", type=int, default=None, help="rendered views (default: the preset's)")
    ap.add_argument("--steps", type=int, default=None, help="fit steps of the refine (default: the preset's)")
    ap.add_argument("--ratio-steps", type=int, default=None,
                    help="fit steps per fit_modes cell (default: the preset's / 5, at most 2000)")
    ap.add_argument("--modes", default=",".join(DEFAULT_MODES), help="semantic_grad modes compared with rgb")
    ap.add_argument("--profile-steps", type=int, default=7, help="timed steps per step_profile cell")
    ap.add_argument("--fit-set", action="append", default=[], metavar="KEY=VALUE",
                    help="fit option override for the refine and fit_modes (e.g. max_resolution=512); repeatable")
    ap.add_argument("--noise", default="simulated:medium")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--demo", action="store_true", help="also time `labelsplat demo` in a fresh process")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: refine,fit_modes,step_profile,backend")
    ap.add_argument("--quick", action="store_true",
                    help="smoke check: micro preset, 8 views at 64 px, 6 novel views, few steps everywhere")
    ap.add_argument("--work", type=Path, default=Path("/tmp/labelsplat_refine_speed"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None, help="print markdown tables of a results JSON and exit")
    a = ap.parse_args(argv)
    if a.table is not None:
        for name, run in runs_of(json.loads(a.table.read_text())).items():
            print((f"### run `{name}`\n\n" if name else "") + markdown_tables(run))
        return 0
    if a.quick:
        a.preset, a.views, a.resolution, a.novel_views = "micro", 8, 64, 6
        a.steps, a.ratio_steps, a.profile_steps = 30, 20, 3
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    try:
        fit_over = parse_sets(a.fit_set)
    except BenchmarkError as exc:
        print(f"refine_speed: {exc}", file=sys.stderr)
        return 2
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    out = a.out or ROOT / "benchmarks" / "results" / f"refine_speed_{a.device}_{'quick' if a.quick else a.preset}.json"

    from labelsplat.config import preset

    tree = preset(a.preset)
    preset_steps = a.steps or tree.fit.steps
    ratio_steps = a.ratio_steps or max(10, min(2000, preset_steps // 5))
    doc: dict = {
        "schema_version": 1, "benchmark": "refine_speed",
        "settings": {
            "device": a.device, "preset": a.preset, "views": a.views, "resolution": a.resolution,
            "novel_views": a.novel_views or tree.export.novel_views, "fit_steps": preset_steps,
            "ratio_steps": ratio_steps, "modes": modes, "profile_steps": a.profile_steps, "noise": a.noise,
            "seed": a.seed, "rig": "facescape", "quick": a.quick, "skip": sorted(skip), "fit_overrides": fit_over,
            "num_classes": 19, "label_scheme": "celebamask19-zll",
        },
        "notes": "one process, one machine; wall times on a shared machine are upper bounds",
    }
    try:
        doc["machine"] = machine_info(a.device)
        doc["loadavg_start"] = loadavg()
        print(f"machine: {doc['machine']['cpu_model']} x{doc['machine']['cpu_count']}, gpu {doc['machine']['gpu']}, "
              f"load {doc['loadavg_start']}", flush=True)
        doc["preflight"] = preflight(a.device)
        print("preflight", doc["preflight"], flush=True)
        a.work.mkdir(parents=True, exist_ok=True)
        scene_dir, synth_s = synth_scene(a.work, a.views, a.resolution, a.noise, a.seed)
        doc["synth_s"] = round(synth_s, 2)

        def save():
            from labelsplat.io import atomic_write_json

            doc["loadavg_end"] = loadavg()
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out, doc)

        if "refine" not in skip:
            r = time_refine(scene_dir, a.work / "refine", preset=a.preset, novel_views=a.novel_views, device=a.device,
                            seed=a.seed, steps=a.steps, fit_overrides=fit_over)
            r["stages_s"] = {"synth": doc["synth_s"], **r["stages_s"]}
            r["wall_s_including_synth"] = round(r["wall_s"] + synth_s, 2)
            doc["refine"] = r
            print("refine", json.dumps(r), flush=True)
            save()
        if "fit_modes" not in skip:
            doc["fit_modes"] = time_fit_modes(scene_dir, a.work, preset=a.preset, steps=ratio_steps, modes=modes,
                                              device=a.device, seed=a.seed, fit_overrides=fit_over)
            print("fit_modes", json.dumps(doc["fit_modes"]["ratio_joint_vs_rgb_only"]), flush=True)
            save()
        if "step_profile" not in skip:
            n = (doc.get("refine") or {}).get("n_gaussians") or 5000
            max_res = fit_over.get("max_resolution", tree.fit.max_resolution)
            res = a.resolution if max_res is None else min(a.resolution, int(max_res))
            doc["step_profile"] = profile_modes(n_gaussians=int(n), resolution=res, K=19, device=a.device, modes=modes,
                                                steps=a.profile_steps, seed=a.seed)
            print("step_profile", json.dumps(doc["step_profile"]["ratio_joint_vs_rgb_only"]), flush=True)
            save()
        if "backend" not in skip:
            doc["backend"] = backend_vs_naive(a.device, repeats=3 if a.quick else 5, naive_repeats=1)
            print("backend speedup", doc["backend"]["speedup_vs_naive"], flush=True)
            save()
        if a.demo:
            doc["demo"] = time_demo(a.work, a.device)
            print("demo", json.dumps(doc["demo"]), flush=True)
        doc["peak_memory_process"] = peak_memory(a.device)
        save()
    except BenchmarkError as exc:
        print(f"refine_speed: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
