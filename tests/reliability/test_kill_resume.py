"""Interrupted runs: SIGKILL a `fit` / `refine` subprocess at a random (seeded) point after its
first checkpoint, resume it, and check the result equals an uninterrupted run with the same
seed, bit for bit (CPU backend), and that no temporary or corrupt file remains."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# `fit` with the options `refine` passes to its fit: the uninterrupted refine's run is the reference
# for both tests (one reference run instead of two keeps the file within its time budget)
FIT_ARGS = ["--preset", "micro", "--steps", "40", "--seed", "1", "--device", "cpu", "--quiet"]
REFINE_ARGS = ["--preset", "micro", "--steps", "40", "--novel-views", "4", "--seed", "1", "--device", "cpu", "--quiet"]
TEMP_RE = re.compile(r"^\..*\.(tmp|partial)$|^\..*\.old-\d+$")


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "labelsplat", *map(str, args)]


def _run(*args) -> subprocess.CompletedProcess:
    r = subprocess.run(_cmd(*args), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _kill_when(args, ready, rng: random.Random, max_delay: float, timeout: float = 300.0) -> tuple[float, bool]:
    """Start ``labelsplat ARGS``; once ``ready()`` is true wait a random delay and SIGKILL it.

    Returns (the delay, whether the process was still running when killed).
    """
    proc = subprocess.Popen(_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                return 0.0, False
            if time.monotonic() - t0 > timeout:
                raise AssertionError("the run never reached the kill point")
            time.sleep(0.005)
        delay = rng.uniform(0.0, max_delay)
        time.sleep(delay)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return delay, alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _temporaries(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if TEMP_RE.match(p.name)]


def _check_files_readable(root: Path) -> None:
    """Every checkpoint, JSON and PNG under ``root`` loads (nothing half-written)."""
    from labelsplat.io import read_json
    from labelsplat.splat import load_checkpoint

    for p in Path(root).rglob("*"):
        if p.suffix == ".pt":
            load_checkpoint(p)
        elif p.suffix == ".json":
            read_json(p)
        elif p.suffix == ".jsonl":
            for line in p.read_text().splitlines():
                json.loads(line)
        elif p.suffix == ".png":
            from PIL import Image

            with Image.open(p) as im:
                im.load()


def _model_state(ckpt: Path) -> dict:
    import torch

    return torch.load(ckpt, map_location="cpu", weights_only=True)["model"]


def _assert_same_model(a: Path, b: Path) -> None:
    """Final models equal to 0 tolerance (every tensor), and the PLY files byte-identical."""
    import torch

    def same(x, y, where: str) -> None:
        if isinstance(x, torch.Tensor):
            assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y), f"{where} differs after resume"
        elif isinstance(x, dict):
            assert isinstance(y, dict) and x.keys() == y.keys(), where
            for k in x:
                same(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                same(u, v, f"{where}[{i}]")
        else:
            assert x == y, where

    same(_model_state(a / "checkpoint.pt"), _model_state(b / "checkpoint.pt"), "model")
    assert (a / "point_cloud.ply").read_bytes() == (b / "point_cloud.ply").read_bytes()


@pytest.fixture(scope="module")
def refine_ref(tiny_scene, tmp_path_factory) -> Path:
    """An uninterrupted micro refine of the tiny scene (its fit is also the fit test's reference)."""
    ref = tmp_path_factory.mktemp("kill_ref") / "ref"
    _run("refine", tiny_scene, "--out", ref, *REFINE_ARGS)
    return ref


def test_fit_killed_and_resumed_equals_uninterrupted(tiny_scene, refine_ref, tmp_path):
    ref, run = refine_ref / "scenes" / tiny_scene.name / "run", tmp_path / "run"
    rng = random.Random(10)
    first_ckpt = run / "ckpt" / "step_000020.pt"
    delay, alive = _kill_when(["fit", tiny_scene, "--out", run, *FIT_ARGS], first_ckpt.is_file, rng, max_delay=0.4)
    assert alive, "the fit ended before the kill: nothing was interrupted"
    assert not (run / "run.json").exists()  # killed before the end

    r = _run("fit", tiny_scene, "--out", run, "--resume", "--device", "cpu", "--quiet")
    _assert_same_model(ref, run)
    # the log: every line of the uninterrupted run once, with equal losses; the resumed run adds
    # one line at the step it resumed from (the trainer logs the first step of every start)
    log_ref = {x["step"]: x for x in map(json.loads, (ref / "train_log.jsonl").read_text().splitlines())}
    log_run = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in log_run]
    assert steps == sorted(set(steps)), "duplicated or unordered log lines after resume"
    assert set(log_ref) <= set(steps) and set(steps) - set(log_ref) <= {20}
    for x in log_run:
        if x["step"] in log_ref:
            for k in ("loss", "rgb_loss", "sem_loss", "n_gaussians"):
                assert x[k] == log_ref[x["step"]][k], (x["step"], k)
    assert _temporaries(run) == [], r.stderr
    _check_files_readable(run)


def _label_pngs(out: Path) -> dict[str, np.ndarray]:
    from labelsplat.io import read_label

    return {p.name: read_label(p) for p in sorted((out / "dataset" / "labels").glob("*.png"))}


def test_refine_killed_twice_and_resumed_equals_uninterrupted(tiny_scene, refine_ref, tmp_path):
    """Kill once during the fit and once (after resuming) during novel-view export; the final
    dataset's labels, images and the fitted model equal an uninterrupted refine."""
    ref, out = refine_ref, tmp_path / "out"
    sdir = out / "scenes" / tiny_scene.name
    rng = random.Random(20)

    # 1) during the fit: after the first checkpoint
    first_ckpt = sdir / "run" / "ckpt" / "step_000020.pt"
    _, alive = _kill_when(["refine", tiny_scene, "--out", out, *REFINE_ARGS], first_ckpt.is_file, rng, max_delay=0.3)
    assert alive and not (sdir / "DONE.json").exists()

    # 2) during the export of the novel views (their dataset is being built in a temp dir)
    def exporting() -> bool:
        return sdir.is_dir() and any(p.name.startswith(".views.") for p in sdir.iterdir())

    _, alive2 = _kill_when(["refine", tiny_scene, "--out", out, "--resume", *REFINE_ARGS], exporting, rng,
                           max_delay=0.05)
    assert alive2, "the refine ended before the kill during export"
    assert not (sdir / "DONE.json").exists()

    r = _run("refine", tiny_scene, "--out", out, "--resume", *REFINE_ARGS)
    _assert_same_model(ref / "scenes" / tiny_scene.name / "run", sdir / "run")
    a, b = _label_pngs(ref), _label_pngs(out)
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert np.array_equal(a[k], b[k]), f"label {k} differs after resume"
    from PIL import Image

    for sub in ("images", "confidence"):  # decoded pixels, exactly (PNG encoder settings may change)
        for p in sorted((ref / "dataset" / sub).glob("*.png")):
            with Image.open(p) as im_a, Image.open(out / "dataset" / sub / p.name) as im_b:
                assert np.array_equal(np.asarray(im_a), np.asarray(im_b)), f"{sub}/{p.name} differs after resume"
    assert _temporaries(out) == [], r.stderr
    _check_files_readable(out)
