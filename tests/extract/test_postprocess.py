"""Post-processing steps on small hand-built label maps."""

from __future__ import annotations

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.extract import (DEFAULT_SINGLE_INSTANCE, PostprocessConfig, connected_components, head_x_from_depth,
                                postprocess)
from labelsplat.scene import HeadFrame
from labelsplat.schemes import get_scheme
from labelsplat.views import camera_from_pose

S = get_scheme("celebamask19-zll")
BG, SKIN, NOSE, HAIR = S.index("background"), S.index("skin"), S.index("nose"), S.index("hair")
L_EYE, R_EYE, L_BROW = S.index("l_eye"), S.index("r_eye"), S.index("l_brow")

OFF = dict(lr_consistency=False, remove_small=False, fill_holes=False, keep_largest=False,
           min_confidence=None, min_view_confidence=None)


def cfg(**on):
    return PostprocessConfig(**{**OFF, **on})


def face(b=1, h=32, w=32):
    lab = np.full((b, h, w), BG, dtype=np.uint8)
    lab[:, 4:28, 4:28] = SKIN
    return lab


def conf_like(lab, value=0.9):
    return np.full(lab.shape, value, dtype=np.float32)


def test_components_are_per_view_and_per_class():
    lab = face(2)
    lab[1, 10:12, 10:12] = NOSE
    c = connected_components(lab)
    # view 0: background ring + skin; view 1: + nose; views never merge
    assert sorted(zip(c.view.tolist(), c.label.tolist())) == sorted([(0, BG), (0, SKIN), (1, BG), (1, NOSE), (1, SKIN)])
    assert c.area[c.label == NOSE].tolist() == [4]
    assert c.touches_border[c.label == BG].all() and not c.touches_border[c.label == SKIN].any()


def test_small_components_are_absorbed_by_their_surroundings():
    lab = face()
    lab[0, 8:10, 8:10] = NOSE       # 4 px < 20: removed -> skin
    lab[0, 15:21, 15:21] = NOSE     # 36 px: kept
    lab[0, 0:2, 30:32] = HAIR       # 4 px in the background corner -> background
    out, rep = postprocess(lab, conf_like(lab), config=cfg(remove_small=True, min_area=20), scheme=S)
    exp = face()
    exp[0, 15:21, 15:21] = NOSE
    assert np.array_equal(out, exp)
    assert rep.views[0].changed["small_components"] == 8
    assert lab[0, 8, 8] == NOSE  # input untouched


def test_holes_inside_the_head_are_filled_but_not_the_border_background():
    lab = face()
    lab[0, 10:13, 10:13] = BG        # enclosed hole (9 px) -> skin
    lab[0, 16:26, 16:26] = HAIR
    lab[0, 19:22, 19:22] = BG        # hole inside hair -> hair
    out, rep = postprocess(lab, conf_like(lab), config=cfg(fill_holes=True), scheme=S)
    exp = face()
    exp[0, 16:26, 16:26] = HAIR
    assert np.array_equal(out, exp)
    assert rep.views[0].changed["holes"] == 18
    # a hole larger than max_hole_fraction stays
    big = face()
    big[0, 8:24, 8:24] = BG          # 256 px = 25 % of the image
    out2, _ = postprocess(big, conf_like(big), config=cfg(fill_holes=True, max_hole_fraction=0.1), scheme=S)
    assert np.array_equal(out2, big)
    out3, _ = postprocess(big, conf_like(big), config=cfg(fill_holes=True, max_hole_fraction=None), scheme=S)
    assert (out3[0, 4:28, 4:28] == SKIN).all()


def test_keep_largest_component_of_single_instance_classes_only():
    lab = face()
    lab[0, 6:12, 6:12] = NOSE        # 36 px: largest nose
    lab[0, 20:25, 20:25] = NOSE      # 25 px: second nose -> skin
    lab[0, 6:10, 20:26] = HAIR       # hair (not single-instance): both kept
    lab[0, 20:24, 6:11] = HAIR
    out, rep = postprocess(lab, conf_like(lab), config=cfg(keep_largest=True, single_instance=DEFAULT_SINGLE_INSTANCE),
                           scheme=S)
    exp = lab.copy()
    exp[0, 20:25, 20:25] = SKIN
    assert np.array_equal(out, exp)
    assert rep.views[0].changed["extra_components"] == 25
    # configurable by name; names the scheme lacks are reported
    out2, rep2 = postprocess(lab, conf_like(lab), config=cfg(keep_largest=True, single_instance=("hair", "beard")),
                             scheme=S)
    assert (out2[0, 20:25, 20:25] == NOSE).all() and (out2[0, 20:24, 6:11] == SKIN).all()
    assert rep2.missing_single_instance == ["beard"]


def test_batched_equals_one_view_at_a_time():
    g = np.random.default_rng(0)
    lab = face(5, 40, 40)
    noise = g.random(lab.shape) < 0.05
    lab[noise] = g.integers(0, 19, int(noise.sum()))
    lab[:, 10:14, 10:16] = L_EYE
    lab[2, 30:33, 30:33] = L_EYE
    conf = g.uniform(0.3, 1.0, lab.shape).astype(np.float32)
    config = PostprocessConfig(chunk=2)
    out, rep = postprocess(lab, conf, config=config, scheme=S)
    for i in range(5):
        one, r1 = postprocess(lab[i : i + 1], conf[i : i + 1], config=config, scheme=S)
        assert np.array_equal(out[i], one[0])
        assert r1.views[0].changed == rep.views[i].changed


def _frontal_setup(h=32, w=32):
    head = HeadFrame.identity()
    cam = camera_from_pose(head, 0.0, 0.0, 0.0, 5.0, 40.0, w, h)  # looks at the face from +z
    depth = np.full((1, h, w), 5.0)  # the plane z = 0 through the head centre
    return head, cam, depth


def test_head_x_from_depth_frontal_image_right_is_subject_left():
    head, cam, depth = _frontal_setup()
    x = head_x_from_depth(depth[0], cam, head)
    assert (x[:, 16:] > 0).all() and (x[:, :16] < 0).all()
    u = np.arange(32) + 0.5
    assert np.allclose(x[0], (u - 16.0) / 40.0 * 5.0)


def test_lr_geometric_swaps_only_components_clearly_on_the_wrong_side():
    head, cam, depth = _frontal_setup()
    lab = face()
    lab[0, 10:13, 6:11] = L_EYE      # image left = subject's right: wrong -> r_eye
    lab[0, 10:13, 20:25] = L_EYE     # subject's left: right place
    lab[0, 20:23, 7:12] = R_EYE      # right eye on the right: fine
    lab[0, 5:8, 13:19] = L_BROW      # straddles the mid-line 50/50: left alone (conservative)
    depth[0, :4] = np.inf            # background rows (no surface) are ignored
    depth[0, 28:] = 0.0
    out, rep = postprocess(lab, conf_like(lab), config=cfg(lr_consistency=True), scheme=S,
                           cameras=[cam], head=head, depth=depth)
    exp = lab.copy()
    exp[0, 10:13, 6:11] = R_EYE
    assert np.array_equal(out, exp)
    assert rep.views[0].changed["lr_swap"] == 15
    assert rep.steps["lr_consistency"].startswith("applied (geometric")


def test_lr_profile_rule_uses_the_yaw_sign():
    lab = face(3)
    lab[:, 10:13, 10:15] = R_EYE     # only the right eye visible
    lab[2, 20:23, 10:15] = L_EYE     # view 2 also has a left eye: no change (no duplicates)
    out, rep = postprocess(lab, conf_like(lab), config=cfg(lr_consistency=True), scheme=S,
                           yaw=[85.0, 30.0, 85.0])
    assert (out[0, 10:13, 10:15] == L_EYE).all()   # left profile: the right eye is hidden
    assert np.array_equal(out[1:], lab[1:])
    out_neg, _ = postprocess(lab, conf_like(lab), config=cfg(lr_consistency=True), scheme=S, yaw=[-85.0] * 3)
    assert np.array_equal(out_neg, lab)            # right profile: the right eye is the near one


def test_lr_skipped_for_schemes_without_subject_convention():
    lapa = get_scheme("lapa11")
    lab = np.zeros((1, 8, 8), np.uint8)
    lab[0, 2:4, 2:4] = lapa.index("r_eye")
    out, rep = postprocess(lab, conf_like(lab), config=cfg(lr_consistency=True), scheme=lapa, yaw=[85.0])
    assert np.array_equal(out, lab) and rep.steps["lr_consistency"].startswith("skipped")
    _, rep2 = postprocess(face(), conf_like(face()), config=cfg(lr_consistency=True), scheme=S)
    assert rep2.steps["lr_consistency"].startswith("skipped")


def test_ignore_low_confidence_and_low_visibility():
    lab = face()
    conf = conf_like(lab)
    conf[0, 5:7, 5:9] = 0.3
    vis = np.zeros(lab.shape, bool)
    vis[0, 20:22, 20:23] = True
    out, rep = postprocess(lab, conf, config=cfg(min_confidence=0.5), scheme=S, low_visibility_mask=vis)
    assert (out[0, 5:7, 5:9] == 255).all() and (out[0, 20:22, 20:23] == 255).all()
    assert (out != 255).sum() == lab.size - 14
    assert rep.views[0].changed["low_confidence"] == 8 and rep.views[0].changed["low_visibility"] == 6
    assert rep.views[0].ignore_fraction == pytest.approx(14 / lab.size)


def test_view_rejection_is_reported_not_dropped():
    lab = face(3)
    lab[2] = BG
    conf = conf_like(lab)
    conf[1, 4:28, 4:28] = 0.55
    out, rep = postprocess(lab, conf, config=cfg(min_view_confidence=0.6), scheme=S)
    assert out.shape == lab.shape
    assert rep.accepted.tolist() == [True, False, False]
    assert rep.views[0].mean_confidence == pytest.approx(0.9)
    assert "0.550" in rep.views[1].reason and rep.views[2].reason == "no foreground pixels"
    d = rep.to_dict()
    assert d["views"][1]["accepted"] is False and "steps" in d


def test_ignore_pixels_in_the_input_are_kept():
    lab = face()
    lab[0, 10:12, 10:12] = 255
    out, _ = postprocess(lab, conf_like(lab), config=PostprocessConfig(min_confidence=None), scheme=S)
    assert (out[0, 10:12, 10:12] == 255).all()


def test_bad_inputs_are_clear_errors():
    lab = face()
    with pytest.raises(LabelsplatError, match="batch"):
        postprocess(lab[0], conf_like(lab[0]), scheme=S)
    with pytest.raises(LabelsplatError, match="confidence shape"):
        postprocess(lab, conf_like(lab)[:, :5], scheme=S)
    bad = lab.copy()
    bad[0, 0, 0] = 40
    with pytest.raises(LabelsplatError, match="outside scheme"):
        postprocess(bad, conf_like(bad), scheme=S)
    with pytest.raises(LabelsplatError, match="yaw"):
        postprocess(lab, conf_like(lab), scheme=S, yaw=[1.0, 2.0])
    with pytest.raises(LabelsplatError, match="connectivity"):
        PostprocessConfig(connectivity=3)


def test_reassign_fills_from_the_surrounding_labels():
    from labelsplat.extract import reassign_nearest

    lab = np.full((2, 20, 20), SKIN, np.uint8)
    lab[:, :, 10:] = HAIR
    mask = np.zeros(lab.shape, bool)
    mask[0, 5:15, 4:16] = True       # straddles the skin/hair border
    mask[1] = True                   # a fully masked view is left alone
    out = reassign_nearest(lab, mask)
    assert np.array_equal(out[0], lab[0])  # each side refills from its own side
    assert np.array_equal(out[1], lab[1])
    lab2 = lab.copy()
    lab2[0, 5:15, 4:16] = NOSE
    assert np.array_equal(reassign_nearest(lab2, mask), lab)


def _two_holes():
    """A face with two enclosed 9-px background holes: (10:13, 10:13) and (18:21, 18:21)."""
    lab = face()
    lab[0, 10:13, 10:13] = BG
    lab[0, 18:21, 18:21] = BG
    alpha = np.zeros(lab.shape, np.float32)
    alpha[0, 4:28, 4:28] = 1.0       # the head is opaque ...
    alpha[0, 18:21, 18:21] = 0.1     # ... except over the second hole (background seen through)
    return lab, alpha


def test_alpha_aware_holes_fill_only_where_the_model_renders_a_surface():
    lab, alpha = _two_holes()
    out, rep = postprocess(lab, conf_like(lab), config=cfg(fill_holes=True), scheme=S, alpha=alpha)
    assert (out[0, 10:13, 10:13] == SKIN).all()          # opaque hole: filled
    assert (out[0, 18:21, 18:21] == BG).all()            # transparent hole: real background, stays
    assert rep.views[0].changed["holes"] == 9
    assert rep.steps["fill_holes"].startswith("applied (alpha-aware")
    # (B, H, W, 1) alpha is accepted; the mean rule: 0.1 * 9 px < 0.5, but 4 of 9 px at 1.0 -> mean 0.5
    alpha2 = alpha.copy()
    alpha2[0, 18, 18:21] = 1.0
    alpha2[0, 19, 18] = 1.0
    out2, _ = postprocess(lab, conf_like(lab), config=cfg(fill_holes=True, hole_min_alpha=0.5),
                          scheme=S, alpha=alpha2[..., None])
    assert (out2[0, 18:21, 18:21] == SKIN).all()         # mean (4 + 0.5) / 9 = 0.5 >= 0.5
    out3, _ = postprocess(lab, conf_like(lab), config=cfg(fill_holes=True, hole_alpha_rule="majority"),
                          scheme=S, alpha=alpha2)
    assert (out3[0, 18:21, 18:21] == BG).all()           # 4 of 9 px opaque: no majority


def test_holes_without_alpha_keep_the_old_behaviour():
    lab, alpha = _two_holes()
    old, rep = postprocess(lab, conf_like(lab), config=cfg(fill_holes=True), scheme=S)
    assert (old[0, 4:28, 4:28] == SKIN).all() and rep.views[0].changed["holes"] == 18
    assert "not alpha-aware" in rep.steps["fill_holes"]
    off, rep2 = postprocess(lab, conf_like(lab), config=cfg(fill_holes=True, hole_min_alpha=None), scheme=S,
                            alpha=alpha)
    assert np.array_equal(off, old) and "alpha-aware" not in rep2.steps["fill_holes"]


def test_keep_largest_ratio_keeps_comparable_components():
    lab = face()
    lab[0, 6:12, 6:12] = NOSE        # 36 px
    lab[0, 20:25, 20:25] = NOSE      # 25 px >= 0.5 * 36: kept with ratio 0.5
    lab[0, 6:8, 20:22] = NOSE        # 4 px: removed
    out, rep = postprocess(lab, conf_like(lab), config=cfg(keep_largest=True, largest_keep_ratio=0.5,
                                                           single_instance=("nose",)), scheme=S)
    assert (out[0, 20:25, 20:25] == NOSE).all() and (out[0, 6:8, 20:22] == SKIN).all()
    assert rep.views[0].changed["extra_components"] == 4


def test_bad_alpha_is_a_clear_error():
    lab, alpha = _two_holes()
    with pytest.raises(LabelsplatError, match="alpha shape"):
        postprocess(lab, conf_like(lab), scheme=S, alpha=alpha[:, :5])
    with pytest.raises(LabelsplatError, match=r"\[0, 1\]"):
        postprocess(lab, conf_like(lab), scheme=S, alpha=alpha * 3)
    nan = alpha.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(LabelsplatError, match="NaN"):
        postprocess(lab, conf_like(lab), scheme=S, alpha=nan)
    with pytest.raises(LabelsplatError, match="hole_alpha_rule"):
        PostprocessConfig(hole_alpha_rule="median")
    with pytest.raises(LabelsplatError, match="hole_min_alpha"):
        PostprocessConfig(hole_min_alpha=2.0)


def test_default_keep_largest_is_the_neck_only():
    NECK = S.index("neck")
    lab = face()
    lab[0, 6:12, 6:12] = NOSE        # two noses: both kept by default (a nose is split at extreme views)
    lab[0, 20:25, 20:25] = NOSE
    lab[0, 28:32, 4:28] = NECK       # 96 px: the neck
    lab[0, 14:18, 14:18] = NECK      # 16 px neck blob inside the face -> removed (skin)
    c = PostprocessConfig(**{**OFF, "keep_largest": PostprocessConfig().keep_largest})
    out, rep = postprocess(lab, conf_like(lab), config=c, scheme=S)
    assert (out[0, 20:25, 20:25] == NOSE).all() and (out[0, 14:18, 14:18] == SKIN).all()
    assert rep.views[0].changed["extra_components"] == 16
