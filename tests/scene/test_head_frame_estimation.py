"""Head-frame estimation from a frontal rig, refusal of 360 orbits, parsing of a given frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scene_fixtures import HEAD, head_dir, make_rig

from labelsplat.errors import LabelsplatError
from labelsplat.scene import HeadFrame, look_at, yaw_pitch
from labelsplat.scene.headframe import estimate_head_frame, estimate_head_frame_detailed, parse_head_frame


def test_recovers_known_frame_and_yaw_pitch():
    cams = make_rig()
    est = estimate_head_frame_detailed(cams)
    np.testing.assert_allclose(est.head.center, HEAD.center, atol=1e-9)
    np.testing.assert_allclose(est.head.forward, HEAD.forward, atol=1e-9)
    np.testing.assert_allclose(est.head.up, HEAD.up, atol=1e-9)
    dirs = np.array([head_dir(y, p) for p in (-20, 0, 20) for y in (-70, -35, 0, 35, 70)])
    mean = dirs.mean(0)
    assert est.resultant_length == pytest.approx(np.linalg.norm(mean))
    assert est.max_angle_deg == pytest.approx(np.degrees(np.arccos(dirs[-1] @ mean / np.linalg.norm(mean))))
    assert est.axis_rms < 1e-9
    # yaw/pitch in the estimated frame are the ones the rig was built with (+yaw = subject's left)
    yaw, pitch = yaw_pitch(cams[4].center, est.head)  # yaws[4] = +70, pitches[0] = -20
    assert yaw == pytest.approx(70.0) and pitch == pytest.approx(-20.0)


def test_noisy_rig_close():
    rng = np.random.default_rng(3)
    cams = []
    for c in make_rig():
        target = HEAD.center + rng.normal(0, 3.0, 3)  # cameras aimed within a few mm of the centre
        cams.append(look_at(c.center, target, HEAD.up, c.fx, c.fy, c.width, c.height))
    head = estimate_head_frame(cams)
    assert np.linalg.norm(head.center - HEAD.center) < 5.0
    assert np.degrees(np.arccos(head.forward @ HEAD.forward)) < 2.0
    assert np.degrees(np.arccos(head.up @ HEAD.up)) < 2.0


def test_refuses_360_orbit():
    ring = make_rig(yaws=tuple(range(-180, 180, 30)), pitches=(0, 15))
    with pytest.raises(LabelsplatError, match="360-degree orbit") as exc:
        estimate_head_frame(ring)
    assert "--head-frame" in str(exc.value)
    arc = make_rig(yaws=(-135, -90, -45, 0, 45, 90, 135), pitches=(0,))  # 270 degrees: mean is fine, extremes are not
    with pytest.raises(LabelsplatError, match="360-degree orbit"):
        estimate_head_frame(arc)


def test_refuses_degenerate_rigs():
    with pytest.raises(LabelsplatError, match="fewer than 2"):
        estimate_head_frame(make_rig(yaws=(0,), pitches=(0,)))
    c = make_rig(yaws=(0,), pitches=(0,))[0]
    shifted = look_at(c.center + [50.0, 0, 0], HEAD.center + [50.0, 0, 0], HEAD.up, c.fx, c.fy, c.width, c.height)
    with pytest.raises(LabelsplatError, match="parallel"):
        estimate_head_frame([c, shifted])


def test_parse_given_frame(tmp_path):
    d = {"center": [1, 2, 3], "up": [0, 2, 0], "forward": [0, 0, 5]}
    a = parse_head_frame(json.dumps(d))
    np.testing.assert_allclose(a.up, [0, 1, 0])
    f = tmp_path / "hf.json"
    f.write_text(json.dumps({"head_frame": d}))
    b = parse_head_frame(str(f))
    np.testing.assert_allclose(b.center, [1, 2, 3])
    assert isinstance(parse_head_frame(d), HeadFrame)
    with pytest.raises(LabelsplatError, match="missing key"):
        parse_head_frame('{"center": [0, 0, 0], "up": [0, 1, 0]}')
    with pytest.raises(LabelsplatError, match="parallel"):
        parse_head_frame('{"center": [0, 0, 0], "up": [0, 0, 1], "forward": [0, 0, 2]}')
    with pytest.raises(LabelsplatError, match="not found"):
        parse_head_frame(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"center": [0, 0, "x"], "up": [0, 1, 0], "forward": [0, 0, 1]}')
    with pytest.raises(LabelsplatError, match="bad.json"):
        parse_head_frame(str(bad))


def test_portrait_and_upside_down_cameras_do_not_tilt_up():
    cams = make_rig()
    roll = {1: 90.0, 5: 90.0, 8: 180.0, 11: 90.0}  # portrait-mounted and upside-down cameras (naive mean: 11.8 deg off)
    for i, deg in roll.items():
        c = cams[i]
        a = np.radians(deg)
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        c.c2w[:3, :3] = c.c2w[:3, :3] @ rz
    est = estimate_head_frame_detailed(cams)
    assert est.rolled_cameras == 4
    np.testing.assert_allclose(est.head.up, HEAD.up, atol=1e-9)
    np.testing.assert_allclose(est.head.forward, HEAD.forward, atol=1e-9)
