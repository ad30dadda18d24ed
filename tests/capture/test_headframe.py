"""Landmark triangulation and the head frame / scale from a fitted synthetic-head template."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from labelsplat.capture import TEMPLATE_CM, Similarity, head_frame_from_landmarks, head_frame_normalisation, triangulate
from labelsplat.capture.headframe import MEDIAPIPE_IDS, scale_from_cameras
from labelsplat.errors import LabelsplatError
from labelsplat.scene import HeadFrame, look_at, yaw_pitch


def _rig(sim: Similarity, yaws=(-60, -30, 0, 30, 60)):
    """Cameras around a head placed by ``sim`` (head frame cm -> world), 60 cm away."""
    cams = []
    for y in np.radians(yaws):
        c_head = np.array([60 * np.sin(y), 5.0, 60 * np.cos(y)])
        cams.append(look_at(sim.apply(c_head), sim.apply(np.zeros(3)), sim.apply_direction([0, 1, 0]),
                            400, 400, 256, 256))
    return cams


def _landmarks(cams, points, rng, noise_px=0.3):
    out = []
    for cam in cams:
        lm = np.full((478, 3), np.nan)
        uv, _ = cam.project(points)
        for j, i in enumerate(MEDIAPIPE_IDS):
            lm[i, :2] = uv[j] + rng.normal(scale=noise_px, size=2)
        out.append(lm)
    return out


def test_triangulate_exact_and_with_missing_views():
    sim = Similarity(1.0, np.eye(3), np.zeros(3))
    cams = _rig(sim)
    X = np.array([1.0, -2.0, 3.0])
    uv = np.array([c.project(X[None])[0][0] for c in cams])
    uv[1] = np.nan
    P, err = triangulate(cams, uv)
    assert np.allclose(P, X, atol=1e-8) and err < 1e-6
    uv[2:] = np.nan
    with pytest.raises(LabelsplatError, match="seen in 1 view"):
        triangulate(cams, uv)


@pytest.mark.parametrize("seed", [0, 1])
def test_head_frame_and_scale_from_landmarks(seed):
    rng = np.random.default_rng(seed)
    scale = float(np.exp(rng.uniform(-3, 1)))  # reconstruction units per cm
    sim = Similarity(scale, Rotation.random(random_state=seed).as_matrix(), rng.normal(scale=5, size=3))
    cams = _rig(sim)
    lms = _landmarks(cams, sim.apply(TEMPLATE_CM), rng)
    lms[4] = None  # a view without a face
    fit = head_frame_from_landmarks(cams, lms)
    hf = fit.head_frame
    assert fit.units_per_cm == pytest.approx(scale, rel=0.02)
    assert np.linalg.norm(hf.center - sim.t) < 0.2 * scale  # 2 mm
    assert np.degrees(np.arccos(hf.up @ sim.apply_direction([0, 1, 0]))) < 1.5
    assert np.degrees(np.arccos(hf.forward @ sim.apply_direction([0, 0, 1]))) < 1.5
    # normalised: the cameras at their head-frame yaw, the head centre at the origin, in cm
    norm = head_frame_normalisation(hf, fit.units_per_cm)
    yaw, _ = yaw_pitch(norm.apply(cams[0].center), HeadFrame.identity())
    assert yaw == pytest.approx(-60, abs=1.5)
    assert np.linalg.norm(norm.apply(cams[2].center)) == pytest.approx(np.hypot(60, 5), rel=0.02)


def test_swapped_eyes_do_not_mirror_the_head():
    rng = np.random.default_rng(5)
    sim = Similarity(2.0, np.eye(3), np.zeros(3))
    cams = _rig(sim)
    pts = sim.apply(TEMPLATE_CM[[1, 0, 2, 3]])  # a detector with the image's left/right convention
    fit = head_frame_from_landmarks(cams, _landmarks(cams, pts, rng))
    assert np.allclose(fit.head_frame.forward, [0, 0, 1], atol=0.02)
    assert np.allclose(np.cross(fit.head_frame.up, fit.head_frame.forward), [1, 0, 0], atol=0.02)


def test_too_few_faces_and_non_face_landmarks_are_errors():
    rng = np.random.default_rng(2)
    sim = Similarity(1.0, np.eye(3), np.zeros(3))
    cams = _rig(sim)
    lms = _landmarks(cams, TEMPLATE_CM, rng)
    with pytest.raises(LabelsplatError, match="found in only 2 of 5") as e:
        head_frame_from_landmarks(cams, [lms[0], None, None, lms[3], None])
    assert "--head-frame" in e.value.hint
    bad = TEMPLATE_CM.copy()
    bad[3] = [0.0, 30.0, -20.0]  # the "chin" above and behind the head
    with pytest.raises(LabelsplatError, match="do not look like a face"):
        head_frame_from_landmarks(cams, _landmarks(cams, bad, rng))


def test_scale_from_cameras():
    cams = _rig(Similarity(3.0, np.eye(3), np.zeros(3)))
    hf = HeadFrame(np.zeros(3), [0, 1, 0], [0, 0, 1])
    assert scale_from_cameras(hf, cams) == pytest.approx(3.0 * np.hypot(60, 5) / 60)
