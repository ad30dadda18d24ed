import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.schemes import get_scheme
from labelsplat.synth.head import HeadParams, build_head, sample_head
from labelsplat.synth.render import render_head
from labelsplat.synth.rigs import camera_at

S = get_scheme("celebamask19-zll")


def test_frontal_view_shows_every_expected_class(head_params, frontal):
    _, r = frontal
    assert head_params.glasses > 0  # the fixture head wears glasses
    present = {S.classes[i] for i in np.unique(r.gt_labels)}
    expected = {"background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose",
                "mouth", "u_lip", "l_lip", "neck", "cloth", "hair", "eye_g"}
    assert expected <= present, expected - present
    assert present <= expected  # nothing unexpected (no hat / ear_r / neck_l)


def test_glasses_are_optional_and_sit_in_front_of_the_eyes(head_params, head_mesh):
    from labelsplat.synth.head import HeadParams as HP

    d = head_params.to_dict()
    d["glasses"] = 0.0
    plain = render_head(HP.from_dict(d), camera_at(0.0, 0.0, resolution=128)).gt_labels
    assert (plain == S.index("eye_g")).sum() == 0
    from scipy.spatial import cKDTree

    g = head_mesh.vertices[np.unique(head_mesh.faces[head_mesh.labels == S.index("eye_g")])]
    face = head_mesh.vertices[np.unique(head_mesh.faces[head_mesh.part == 0])]
    assert cKDTree(face).query(g)[0].min() > 0.15  # the frame never cuts into the face (cm)
    eyes = head_mesh.vertices[np.unique(head_mesh.faces[head_mesh.labels == S.index("l_eye")])]
    cx, cy = eyes[:, 0].mean(), eyes[:, 1].mean()
    rim = g[(np.abs(g[:, 0] - cx) < 1.5) & (np.abs(g[:, 1] - cy) < 2.5)]
    assert rim.shape[0] > 20 and rim[:, 2].min() > eyes[:, 2].max()  # in front of the eye


def test_subject_left_parts_are_on_the_image_right_in_a_frontal_view(frontal):
    _, r = frontal
    for left, right in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
        xl = np.nonzero(r.gt_labels == S.index(left))[1].mean()
        xr = np.nonzero(r.gt_labels == S.index(right))[1].mean()
        assert xl > r.gt_labels.shape[1] / 2 > xr, (left, xl, xr)


def test_render_outputs_are_consistent(frontal):
    _, r = frontal
    assert r.rgb.dtype == np.uint8 and r.rgb.shape == (128, 128, 3)
    assert np.array_equal(r.mask, r.gt_labels != S.index("background"))
    assert np.array_equal(r.mask, r.alpha > 0.5)
    assert np.all(np.isfinite(r.depth[r.mask])) and np.all(np.isinf(r.depth[~r.mask]))
    assert np.array_equal(r.labels, r.gt_labels)  # no noise requested
    # the background is textured, not a flat colour
    assert r.rgb[~r.mask].std(axis=0).min() > 3.0


def test_profiles_above_and_below_are_plausible(head_mesh):
    left = render_head(head_mesh, camera_at(88.0, 0.0, resolution=96)).gt_labels
    right = render_head(head_mesh, camera_at(-88.0, 0.0, resolution=96)).gt_labels
    assert (left == S.index("l_ear")).sum() > 20 and (left == S.index("r_ear")).sum() == 0
    assert (right == S.index("r_ear")).sum() > 20 and (right == S.index("l_ear")).sum() == 0
    above = render_head(head_mesh, camera_at(0.0, 60.0, resolution=96)).gt_labels
    below = render_head(head_mesh, camera_at(0.0, -45.0, resolution=96)).gt_labels
    assert (above == S.index("hair")).sum() > (below == S.index("hair")).sum()
    assert (below == S.index("neck")).sum() > 0


def test_params_round_trip_and_seeded():
    a, b = sample_head(4), sample_head(4)
    assert a.to_dict() == b.to_dict()
    assert sample_head(5).to_dict() != a.to_dict()
    assert HeadParams.from_dict(a.to_dict()).to_dict() == a.to_dict()
    cam = camera_at(30.0, 10.0, resolution=64)
    r1 = render_head(HeadParams.from_dict(a.to_dict()), cam)
    r2 = render_head(build_head(a), cam)
    assert np.array_equal(r1.rgb, r2.rgb) and np.array_equal(r1.gt_labels, r2.gt_labels)


def test_bad_params_are_reported():
    d = sample_head(1).to_dict()
    del d["identity"]
    with pytest.raises(LabelsplatError, match="identity"):
        HeadParams.from_dict(d)
    d = sample_head(1).to_dict()
    d["expression"] = {"notAShape": 0.5}
    with pytest.raises(LabelsplatError, match="notAShape"):
        HeadParams.from_dict(d)


def test_long_hair_curtain_hangs_lower_and_old_params_still_load():
    p = sample_head(4)
    p.hair_drape, p.hair_front = 14.0, 95.0
    d = p.to_dict()
    short = HeadParams.from_dict({k: v for k, v in d.items() if k not in ("hair_drape", "hair_front")})
    assert short.hair_drape == 0.0  # synth.json written before long hair existed
    cam = camera_at(180.0, 0.0, resolution=64)
    rows_long = np.nonzero((render_head(p, cam).gt_labels == S.index("hair")).any(axis=1))[0]
    rows_short = np.nonzero((render_head(short, cam).gt_labels == S.index("hair")).any(axis=1))[0]
    assert rows_long.max() >= rows_short.max() + 5  # image rows grow downwards


def test_render_views_on_threads_equals_serial(head_mesh):
    from labelsplat.synth.scene import render_views

    cams = [camera_at(y, p, resolution=48) for y, p in ((0, 0), (70, 10), (-95, -20), (30, 25))]
    seen = []
    serial = render_views(head_mesh, cams, noise="simulated:medium", workers=1)
    threaded = render_views(head_mesh, cams, noise="simulated:medium", workers=3,
                            progress=lambda k, n: seen.append((k, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for a, b in zip(serial, threaded):
        for key in ("rgb", "labels", "gt_labels", "mask", "depth"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), key
        assert (a.yaw, a.pitch, a.warning) == (b.yaw, b.pitch, b.warning)
