"""FitConfig.label_view_weight: per-view semantic-loss weights by the input view's yaw."""

from __future__ import annotations

import pytest
import torch

from fit_scene import cached_scene, make_scene
from labelsplat.errors import LabelsplatError
from labelsplat.scene import load_scene, yaw_pitch
from labelsplat.splat.config import label_view_weight, make_config, parse_label_view_weight
from labelsplat.splat.trainer import fit, semantic_view_weights


def small_cfg(**kw):
    base = dict(steps=12, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=4,
                checkpoint_every=12, log_every=4, sh_degree_interval=8)
    base.update(kw)
    return make_config("micro", **base)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


def test_weight_function_and_parsing():
    assert parse_label_view_weight("none") is None
    assert parse_label_view_weight("yaw:45:0.3") == (45.0, 0.3)
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
