"""Fit options against label noise: label_view_weight (per-view weights by yaw) and the GCE semantic loss."""

from __future__ import annotations

import pytest
import torch

from fit_scene import cached_scene, make_scene
from labelsplat.errors import LabelsplatError
from labelsplat.scene import load_scene, yaw_pitch
from labelsplat.config import fit_preset as make_config
from labelsplat.splat import fit
from labelsplat.splat.config import LabelViewWeightSpec, SemanticLossSpec
from labelsplat.splat.data import semantic_view_weights
from labelsplat.splat.losses import semantic_loss


def label_view_weight(spec: str, yaw: float) -> float:
    return LabelViewWeightSpec.parse(spec).weight(yaw)


def small_cfg(**kw):
    base = dict(steps=12, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=4,
                checkpoint_every=12, log_every=4, sh_degree_interval=8)
    base.update(kw)
    return make_config("micro", **base)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


def test_weight_function_and_parsing():
    assert not LabelViewWeightSpec.parse("none").enabled
    assert LabelViewWeightSpec.parse("yaw:45:0.3") == LabelViewWeightSpec(45.0, 0.3)
    assert str(LabelViewWeightSpec.parse("YAW:45.0:0.30")) == "yaw:45:0.3"
    spec = "yaw:30:0.2"
    assert label_view_weight(spec, 0.0) == 1.0
    assert label_view_weight(spec, -30.0) == 1.0
    assert label_view_weight(spec, 60.0) == pytest.approx(0.6)  # halfway from 30 to 90
    assert label_view_weight(spec, -90.0) == pytest.approx(0.2)
    assert label_view_weight(spec, 150.0) == pytest.approx(0.2)
    assert label_view_weight("none", 170.0) == 1.0
    for bad in ("yaw:90:0.5", "yaw:30:1.5", "yaw:30", "pitch:30:0.5", "yaw:a:0.5", "yaw:-1:0.5"):
        with pytest.raises(LabelsplatError, match="label_view_weight"):
            make_config("micro", label_view_weight=bad)


def test_per_frame_weights_follow_the_head_frame(scene_dir, tmp_path):
    scene = load_scene(scene_dir)
    cfg = small_cfg(label_view_weight="yaw:20:0.1")
    w = semantic_view_weights(scene, cfg)
    yaws = [yaw_pitch(fr.camera.center, scene.head_frame)[0] for fr in scene.frames]
    assert w == [pytest.approx(label_view_weight("yaw:20:0.1", y)) for y in yaws]
    assert min(w) == pytest.approx(0.1) and max(w) > 0.5  # the ring has back and front views
    assert semantic_view_weights(scene, small_cfg()) is None
    no_hf = make_scene(tmp_path / "nohf", n_views=4, res=16, head_frame=False)
    with pytest.raises(LabelsplatError, match="head_frame"):
        semantic_view_weights(load_scene(no_hf), cfg)


def test_weights_change_the_fit_only_when_not_all_one(scene_dir, tmp_path):
    base = fit(scene_dir, tmp_path / "a", small_cfg(), write_outputs=False).model
    ones = fit(scene_dir, tmp_path / "b", small_cfg(label_view_weight="yaw:10:1.0"), write_outputs=False).model
    low = fit(scene_dir, tmp_path / "c", small_cfg(label_view_weight="yaw:0:0.0"), write_outputs=False).model
    sd_base, sd_ones, sd_low = (m.state_dict()["params"] for m in (base, ones, low))
    assert all(torch.equal(sd_base[k], sd_ones[k]) for k in sd_base)  # weight 1 everywhere = no weighting
    assert sd_base.keys() == sd_low.keys()
    assert any(sd_base[k].shape != sd_low[k].shape or not torch.equal(sd_base[k], sd_low[k]) for k in sd_base)


def test_generalized_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 6, 7, requires_grad=True)
    target = torch.randint(0, 7, (2, 5, 6))
    target[0, 0, 0] = 255  # ignored
    p_t = torch.softmax(logits, -1).gather(-1, target.clamp_max(6)[..., None])[..., 0]
    valid = target != 255
    q = 0.7
    expect = ((1 - p_t ** q) / q)[valid].mean()
    got = semantic_loss(logits, target, gce_q=q)
    assert torch.allclose(got, expect, atol=1e-6)
    # q -> 0 tends to the cross-entropy; q = 1 is the mean of 1 - p_t
    ld = logits.detach().double()
    assert torch.allclose(semantic_loss(ld, target, gce_q=1e-7), semantic_loss(ld, target), atol=1e-5)
    assert torch.allclose(semantic_loss(logits, target, gce_q=1.0), (1 - p_t)[valid].mean(), atol=1e-6)
    # robustness: the gradient on a confidently-wrong pixel is p_t^q times the cross-entropy's
    g_ce = torch.autograd.grad(semantic_loss(logits[:1, :1, :1], target[:1, 1:2, :1]), logits)[0]
    g_gce = torch.autograd.grad(semantic_loss(logits[:1, :1, :1], target[:1, 1:2, :1], gce_q=q), logits)[0]
    pt = torch.softmax(logits[0, 0, 0], -1)[target[0, 1, 0]].detach()
    assert torch.allclose(g_gce, g_ce * pt ** q, atol=1e-6)
    with pytest.raises(ValueError):
        semantic_loss(logits, target, gce_q=q, label_smoothing=0.1)
    assert SemanticLossSpec.parse("ce").q == 0.0 and SemanticLossSpec.parse("gce:0.7").q == 0.7
    assert str(SemanticLossSpec.parse("GCE:0.70")) == "gce:0.7" and str(SemanticLossSpec.parse("ce")) == "ce"
    for bad in ("gce:0", "gce:1.5", "gce", "focal:2"):
        with pytest.raises(LabelsplatError, match="semantic_loss"):
            make_config("micro", semantic_loss=bad)
    with pytest.raises(LabelsplatError, match="semantic_loss gce"):
        make_config("micro", semantic_loss="gce:0.7", semantic_target="palette")
