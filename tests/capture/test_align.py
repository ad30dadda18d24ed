"""Umeyama similarity alignment and the Similarity helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from labelsplat.capture import Similarity, align_cameras, rotation_angle_deg, umeyama
from labelsplat.errors import LabelsplatError
from labelsplat.scene import look_at


def _random_sim(rng) -> Similarity:
    return Similarity(float(np.exp(rng.uniform(-2, 2))), Rotation.random(random_state=rng.integers(1 << 31)).as_matrix(),
                      rng.normal(scale=10, size=3))


@pytest.mark.parametrize("seed", range(5))
def test_umeyama_recovers_random_similarities(seed):
    rng = np.random.default_rng(seed)
    sim = _random_sim(rng)
    src = rng.normal(size=(20, 3))
    est = umeyama(src, sim.apply(src))
    assert est.scale == pytest.approx(sim.scale, rel=1e-9)
    assert np.allclose(est.R, sim.R, atol=1e-9) and np.allclose(est.t, sim.t, atol=1e-7)
    assert np.linalg.det(est.R) == pytest.approx(1.0)


def test_umeyama_without_scale_and_with_noise():
    rng = np.random.default_rng(7)
    sim = Similarity(1.0, Rotation.from_euler("xyz", [10, -40, 100], degrees=True).as_matrix(), [1.0, 2.0, 3.0])
    src = rng.normal(size=(200, 3))
    dst = sim.apply(src) + rng.normal(scale=0.01, size=src.shape)
    est = umeyama(src, dst, with_scale=False)
    assert est.scale == 1.0
    assert rotation_angle_deg(est.R, sim.R) < 0.5 and np.linalg.norm(est.t - sim.t) < 0.01


def test_umeyama_never_returns_a_reflection():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 3))
    est = umeyama(src, src * np.array([-1.0, 1.0, 1.0]))  # a mirror image: best proper rotation instead
    assert np.linalg.det(est.R) == pytest.approx(1.0)


def test_umeyama_rejects_bad_input():
    with pytest.raises(LabelsplatError, match="at least 3"):
        umeyama(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(LabelsplatError, match="collinear"):
        line = np.outer(np.arange(5.0), [1.0, 2.0, 3.0])
        umeyama(line, line)
    with pytest.raises(LabelsplatError, match="same shape"):
        umeyama(np.zeros((4, 3)), np.zeros((5, 3)))


def test_similarity_inverse_compose_and_cameras():
    rng = np.random.default_rng(3)
    a, b = _random_sim(rng), _random_sim(rng)
    p = rng.normal(size=(6, 3))
    assert np.allclose(a.inverse().apply(a.apply(p)), p)
    assert np.allclose(a.compose(b).apply(p), a.apply(b.apply(p)))
    assert np.allclose(Similarity.from_dict(a.to_dict()).matrix, a.matrix)
    cam = look_at([0, 0, 50.0], [0, 0, 0], [0, 1, 0], 300, 300, 128, 96)
    mapped = a.apply_camera(cam)
    # a mapped point projects to the same pixel in the mapped camera
    uv0, z0 = cam.project(p)
    uv1, z1 = mapped.project(a.apply(p))
    assert np.allclose(uv0, uv1) and np.allclose(z1, a.scale * z0)


def test_align_cameras_measures_errors():
    rng = np.random.default_rng(4)
    ref = [look_at([50 * np.sin(t), 3 * np.cos(3 * t), 50 * np.cos(t)], [0, 0, 0], [0, 1, 0], 300, 300, 64, 64)
           for t in np.linspace(-1.5, 1.5, 9)]
    sim = _random_sim(rng)
    rec = [sim.apply_camera(c) for c in ref]
    al = align_cameras(rec, ref)
    assert al.rotation_errors_deg.max() < 1e-6 and al.center_errors.max() < 1e-6
    assert al.similarity.scale == pytest.approx(1 / sim.scale)
    d = al.to_dict()
    assert set(d) == {"similarity", "rotation_error_deg", "center_error"}
