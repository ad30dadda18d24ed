"""`labelsplat fit` in-process on a tiny procedural scene."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "splat"))
from fit_scene import cached_scene  # noqa: E402


def _text(r) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(r.output.split())


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


def test_fit_cli_writes_all_outputs_and_guards_the_run(cli, scene_dir, tmp_path):
    run = tmp_path / "run"
    args = ("fit", scene_dir, "--out", run, "--preset", "micro", "--steps", "6", "--device", "cpu", "--quiet")
    r = cli(*args)
    assert r.exit_code == 0, r.output
    assert "fit done" in _text(r)
    for rel in ("checkpoint.pt", "point_cloud.ply", "run.json", "train_log.jsonl", "renders/rgb", "renders/labels",
                "renders/confidence"):
        assert (run / rel).exists(), rel
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["preset"] == "micro" and meta["config"]["steps"] == 6 and meta["backend"] == "cpu"
    # an existing run is refused without --resume / --overwrite, with one clear message
    r = cli(*args)
    assert r.exit_code == 2 and "already exists" in _text(r) and "Traceback" not in r.output
    r = cli(*args, "--overwrite", "--semantic-grad", "none")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["config"]["semantic_grad"] == "none"
    # a finished run resumes to the same end without training again
    r = cli("fit", scene_dir, "--out", run, "--resume", "--quiet")
    assert r.exit_code == 0, r.output


def test_fit_cli_bad_options(cli, scene_dir, tmp_path):
    r = cli("fit", scene_dir, "--out", tmp_path / "r", "--preset", "huge")
    assert r.exit_code == 2 and "unknown preset" in _text(r)
    r = cli("fit", scene_dir, "--out", tmp_path / "r", "--semantic-grad", "half")
    assert r.exit_code == 2 and "semantic_grad" in _text(r)
    r = cli("fit", scene_dir, "--out", tmp_path / "r", "--backend", "gsplat", "--device", "cpu")
    assert r.exit_code == 2 and "CUDA" in _text(r)
    r = cli("fit", tmp_path / "missing", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "not found" in _text(r)
    r = cli("fit", scene_dir, "--out", tmp_path / "r2", "--resume")
    assert r.exit_code == 2 and "nothing to resume" in _text(r)


def test_fit_help_has_an_example(cli):
    r = cli("fit", "--help")
    assert r.exit_code == 0 and "labelsplat fit" in _text(r) and "--semantic-grad" in _text(r)
