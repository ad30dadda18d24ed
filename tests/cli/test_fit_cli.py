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
                "renders/confidence", "renders/labels_colour", "renders/overlay"):
        assert (run / rel).exists(), rel
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["preset"] == "micro" and meta["config"]["steps"] == 6 and meta["backend"] == "cpu"
    # an existing run is refused without --resume / --overwrite, with one clear message
    r = cli(*args)
    assert r.exit_code == 2 and "already exists" in _text(r) and "Traceback" not in r.output
    r = cli(*args[:-1], "--overwrite", "--semantic-grad", "none")  # with the progress bar, which names the scene
    assert r.exit_code == 0, r.output
    assert f"fit {Path(scene_dir).name}" in _text(r)
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


def test_fit_set_overrides_any_fit_setting(cli, scene_dir, tmp_path):
    run = tmp_path / "run"
    r = cli("fit", scene_dir, "--out", run, "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet",
            "--fit-set", "label_colour_weight=0.2", "--fit-set", "class_weights_by_concept=l_eye:10,mouth:5",
            "--fit-set", "random_background=false", "--fit-set", "semantic_grad=none", "--fit-set", "semantic_lift=none")
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "run.json").read_text())["config"]
    assert cfg["label_colour_weight"] == 0.2 and cfg["random_background"] is False
    assert cfg["semantic_grad"] == "none" and cfg["semantic_lift"] == "none"  # 'none' is a word of these settings
    assert cfg["class_weights_by_concept"] == [["l_eye", 10.0], ["mouth", 5.0]]
    # a preset's setting switched off with none (the fast preset weighs labels by colour)
    r = cli("fit", scene_dir, "--out", tmp_path / "run2", "--preset", "fast", "--steps", "2", "--device", "cpu",
            "--quiet", "--fit-set", "label_colour_weight=none")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "run2" / "run.json").read_text())["config"]["label_colour_weight"] is None
    for bad, msg in (("colour=1", "unknown fit setting"), ("steps=many", "cannot read"), ("steps", "KEY=VALUE"),
                     ("steps=none", "cannot be none"), ("label_colour_weight=3", "label_colour_weight")):
        r = cli("fit", scene_dir, "--out", tmp_path / "bad", "--fit-set", bad)
        assert r.exit_code == 2 and msg in _text(r) and "Traceback" not in r.output, (bad, r.output)
        assert not (tmp_path / "bad").exists()
    r = cli("refine", scene_dir, "--out", tmp_path / "ref", "--fit-set", "colour=1")
    assert r.exit_code == 2 and "unknown fit setting" in _text(r) and not (tmp_path / "ref").exists()


def test_refine_fit_overrides_apply_none_values():
    from labelsplat.config import preset, with_overrides

    assert preset("fast").fit.label_colour_weight == 0.1
    off = with_overrides(preset("fast"), fit={"label_colour_weight": None, "sem_lr": 0.01}).fit
    assert off.label_colour_weight is None and off.sem_lr == 0.01
    assert with_overrides(preset("fast"), fit={"max_resolution": None}).fit.max_resolution is None


def test_fit_help_has_an_example(cli):
    r = cli("fit", "--help")
    assert r.exit_code == 0 and "labelsplat fit" in _text(r) and "--semantic-grad" in _text(r)


def test_an_antialiased_fit_renders_antialiased_after_loading(cli, scene_dir, tmp_path):
    import torch

    from labelsplat.splat.run import load_run

    run = tmp_path / "run"
    r = cli("fit", scene_dir, "--out", run, "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet",
            "--fit-set", "rasterize_mode=antialiased")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["config"]["rasterize_mode"] == "antialiased"
    loaded = load_run(run)
    assert loaded.model.rasterize_mode == "antialiased"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["model"]["rasterize_mode"] == "antialiased"
    r = cli("fit", scene_dir, "--out", tmp_path / "bad", "--fit-set", "rasterize_mode=mip")
    assert r.exit_code == 2 and "rasterize_mode must be one of classic, antialiased" in _text(r)
