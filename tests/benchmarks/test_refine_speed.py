"""Smoke test of benchmarks.refine_speed and benchmarks.scaling at micro sizes.

Checks that every part of the benchmark runs end to end and writes the figures it promises
(no timing is asserted: timings are benchmarks, not tests).
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import refine_speed as rs
from benchmarks import scaling


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    work = tmp_path_factory.mktemp("refine_speed")
    scene_dir, secs = rs.synth_scene(work, views=10, resolution=64, noise="simulated:high", seed=3)
    assert (scene_dir / "transforms.json").is_file() and secs > 0
    return work, scene_dir


def test_preflight_and_machine():
    pf = rs.preflight("cpu")
    assert pf["backend"] == "cpu" and pf["first_call_s"] > 0
    m = rs.machine_info("cpu")
    assert m["cpu_count"] >= 1 and m["gpu"] is None and m["torch"] and m["cpu_model"]
    with pytest.raises(rs.BenchmarkError):
        rs.preflight("tpu")


def test_preflight_cuda_fails_clearly_without_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(rs.BenchmarkError, match="CUDA"):
        rs.preflight("cuda")


def test_refine_stages_and_quality(scene):
    work, scene_dir = scene
    r = rs.time_refine(scene_dir, work / "refine", preset="micro", novel_views=6, device="cpu", seed=1)
    for stage in ("load", "fit", "sample_views", "render", "extract", "postprocess", "export", "merge_and_report"):
        assert r["stages_s"][stage] >= 0, stage
    assert r["fit_steps"] == 60 and r["n_gaussians"] > 0 and r["fit_steps_per_s"] > 0
    assert 0 <= r["miou_refined_vs_gt"] <= 1 and 0 <= r["miou_initial_vs_gt"] <= 1
    assert r["novel_views"] == 6 and r["accepted_views"] + r["rejected_views"] == 6
    assert r["memory"]["peak_rss_mib"] > 50


def test_fit_modes_ratio(scene):
    work, scene_dir = scene
    d = rs.time_fit_modes(scene_dir, work, preset="micro", steps=3, modes=["full"], device="cpu", seed=0)
    assert set(d["cells"]) == {"rgb", "full"}
    assert d["ratio_joint_vs_rgb_only"]["full"] == pytest.approx(
        d["cells"]["full"]["fit_loop_s"] / d["cells"]["rgb"]["fit_loop_s"], rel=1e-2)
    assert all(c["steps"] == 3 for c in d["cells"].values())


def test_step_profile_phases_and_plot(tmp_path):
    cells = {}
    for K in (0, 4):
        res = rs.step_profile(n_gaussians=300, views=2, resolution=24, K=K, steps=2, densify_event=K > 0)
        assert set(res["phases_s"]) == {"data", "raster_fwd", "densify_stats", "loss_fwd", "loss_bwd", "raster_bwd",
                                        "optimizer"}
        assert math.isclose(res["step_s"], sum(res["phases_s"].values()), rel_tol=0.5)
        assert res["mean_alpha"] > 0.05  # the shell is in view: the step renders something
        cells[scaling.cell_key({"views": 2, "resolution": 24, "K": K, "n_gaussians": 300})] = res
    assert res["densify_event_n_before_after"][0] == 300
    doc = {"settings": {"device": "cpu", "base": {"views": 2, "resolution": 24, "K": 0, "n_gaussians": 300},
                        "sweeps": {"views": [2], "resolution": [24], "K": [0, 4], "n_gaussians": [300]}},
           "machine": rs.machine_info("cpu"), "cells": cells}
    assert len(scaling.sweep_series(doc, "K")) == 2
    paths = scaling.plot(json.loads(json.dumps(doc)), tmp_path, tag="test")
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


def test_backend_vs_naive_micro():
    d = rs.backend_vs_naive("cpu", size=24, n=100, channels=5, repeats=1, naive_repeats=1)
    assert d["cpu"]["fwd_bwd_s"] > 0 and d["naive"]["fwd_bwd_s"] > 0
    assert d["speedup_vs_naive"] == pytest.approx(d["naive"]["fwd_bwd_s"] / d["cpu"]["fwd_bwd_s"], rel=1e-2)


def test_scaling_plan_unique():
    cells = scaling.plan()
    keys = [scaling.cell_key(c) for c in cells]
    assert len(keys) == len(set(keys))
    assert sum(len(v) for v in scaling.SWEEPS.values()) - len(scaling.SWEEPS) + 1 == len(keys)
