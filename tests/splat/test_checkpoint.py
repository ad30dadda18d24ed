"""RunState round trip, the resume rules, the rolling checkpoint files, a logit checkpoint's model state."""

from __future__ import annotations

import pytest
import torch

from fit_scene import cached_scene
from labelsplat.errors import LabelsplatError
from labelsplat.splat import FitLoop, RunState, fit, latest_checkpoint, load_checkpoint, save_checkpoint
from labelsplat.splat.checkpoint import (CKPT_FORMAT, CKPT_VERSION, check_resumable, prune_checkpoints,
                                         resume_rules)
from labelsplat.config import fit_preset as make_config
from labelsplat.splat.data import CameraOrder
from labelsplat.splat.model import GaussianModel
from labelsplat.splat.optim import make_optimizers


def small_cfg(**kw):
    base = dict(steps=6, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=2,
                checkpoint_every=3, log_every=3, sh_degree_interval=4, label_noise="learn:0.2:0.05")
    base.update(kw)
    return make_config("micro", **base)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


def _equal(a, b, where=""):
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_run_state_round_trip(scene_dir, tmp_path):
    loop = FitLoop(scene_dir, tmp_path / "run", small_cfg(), callbacks=[])
    loop.setup()
    for _ in range(4):
        loop.step()
    state = loop.state.state_dict()
    assert state["format"] == CKPT_FORMAT and state["version"] == CKPT_VERSION and state["step"] == 4
    assert list(state) == ["format", "version", "step", "model", "optimizers", "strategy_state", "rng", "meta",
                           "label_noise"]
    assert list(state["rng"]) == ["torch", "generator", "perm", "perm_pos", "cuda"]
    path = save_checkpoint(tmp_path / "ck.pt", state)
    ck = load_checkpoint(path)
    # a fresh state of the same shape takes everything back
    other = FitLoop(scene_dir, tmp_path / "other", small_cfg(), callbacks=[])
    other.setup()
    model = GaussianModel.from_state_dict(ck["model"])
    model.head = other.head
    fresh = RunState(model, make_optimizers(model, other.cfg), other.strategy.initialize_state(scene_scale=1.0),
                     CameraOrder(6, 0), other.head, loop.state.meta, torch.device("cpu"))
    fresh.load_state_dict(ck)
    again = fresh.state_dict()
    for st in (state, again):
        st["rng"].pop("torch")  # the global generator: restored, and drawn from since
    _equal(again, state)
    assert fresh.step == 4 and fresh.order.pos == loop.state.order.pos


def test_resume_rules_and_files(scene_dir, tmp_path):
    default = make_config("micro")
    assert resume_rules(tmp_path / "new", default, False) == (default, None)
    with pytest.raises(LabelsplatError, match="needs its configuration"):
        resume_rules(tmp_path / "new", None, False)
    with pytest.raises(LabelsplatError, match="nothing to resume"):
        resume_rules(tmp_path / "new", None, True)
    cfg = small_cfg(label_noise="none")
    fit(scene_dir, tmp_path / "run", cfg, stop_after=3, write_outputs=False)
    stored, ck = resume_rules(tmp_path / "run", None, True)
    assert stored == cfg and ck["step"] == 3
    assert resume_rules(tmp_path / "run", cfg, True)[0] == cfg
    with pytest.raises(LabelsplatError, match="differs.*steps"):
        resume_rules(tmp_path / "run", small_cfg(label_noise="none", steps=7), True)
    with pytest.raises(LabelsplatError, match="already holds a fit"):
        resume_rules(tmp_path / "run", cfg, False)
    # the rolling checkpoints
    for s in (1, 2, 5):
        save_checkpoint(tmp_path / "run" / "ckpt" / f"step_{s:06d}.pt", ck)
    prune_checkpoints(tmp_path / "run", 2)
    assert sorted(p.name for p in (tmp_path / "run" / "ckpt").glob("*.pt")) == ["step_000003.pt", "step_000005.pt"]
    assert latest_checkpoint(tmp_path / "run").name == "step_000005.pt"


def test_a_logit_checkpoint_holds_no_head_entries_and_resumes(scene_dir, tmp_path):
    """A logit model's state is params, sh_degree, num_classes, n_views_seen only (checkpoint
    format version 1); it loads as a logit head and resumes to an uninterrupted fit's result."""
    cfg = small_cfg(label_noise="none")
    whole = fit(scene_dir, tmp_path / "a", cfg, write_outputs=False)
    fit(scene_dir, tmp_path / "b", cfg, stop_after=3, write_outputs=False)
    ck = load_checkpoint(tmp_path / "b" / "ckpt" / "step_000003.pt")
    assert set(ck["model"]) == {"params", "sh_degree", "num_classes", "n_views_seen"}
    res = fit(scene_dir, tmp_path / "b", None, resume=True, write_outputs=False)
    for k, v in whole.model.params.items():
        assert torch.equal(v, res.model.params[k]), k


def test_check_resumable(tmp_path):
    ck = {"meta": {"frame_names": ["a", "b"]}, "model": {"num_classes": 19, "semantic_target": "palette"}}
    check_resumable(ck, tmp_path, frame_names=["a", "b"], num_classes=19, semantic_target="palette")
    with pytest.raises(LabelsplatError, match="other frames"):
        check_resumable(ck, tmp_path, frame_names=["a"], num_classes=19, semantic_target="palette")
    with pytest.raises(LabelsplatError, match="checkpoint has 19 classes, the scene's scheme 11"):
        check_resumable(ck, tmp_path, frame_names=["a", "b"], num_classes=11, semantic_target="palette")
    with pytest.raises(LabelsplatError, match="semantic head is 'palette'"):
        check_resumable(ck, tmp_path, frame_names=["a", "b"], num_classes=19, semantic_target="logits")
    old = {"meta": {"frame_names": ["a"]}, "model": {"num_classes": 19}}  # no head entries: logits
    check_resumable(old, tmp_path, frame_names=["a"], num_classes=19, semantic_target="logits")
