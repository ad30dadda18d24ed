"""Distortion models and undistortion to pinhole."""

from __future__ import annotations

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.scene.distortion import (
    Distortion,
    distort_normalized,
    distort_pixels,
    undistort_image,
    undistort_label,
    undistort_pixels,
)

K = np.array([[70.0, 0.0, 40.3], [0.0, 72.0, 31.8], [0.0, 0.0, 1.0]])
W, H = 80, 64


def test_opencv_formula_by_hand():
    d = Distortion("OPENCV", (0.1, -0.05, 0.01, 0.02, 0.003))
    x, y = 0.3, -0.2
    r2 = x * x + y * y
    radial = 1 + 0.1 * r2 - 0.05 * r2**2 + 0.003 * r2**3
    xd = x * radial + 2 * 0.01 * x * y + 0.02 * (r2 + 2 * x * x)
    yd = y * radial + 0.01 * (r2 + 2 * y * y) + 2 * 0.02 * x * y
    np.testing.assert_allclose(distort_normalized(np.array(x), np.array(y), d), (xd, yd), rtol=1e-14)
    # COLMAP's radial models are special cases of the OpenCV one
    a = distort_normalized(np.array(x), np.array(y), Distortion("RADIAL", (0.1, -0.05)))
    b = distort_normalized(np.array(x), np.array(y), Distortion("OPENCV", (0.1, -0.05, 0.0, 0.0)))
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_bad_models():
    with pytest.raises(LabelsplatError, match="unknown distortion model"):
        Distortion("FISHEYE", (0.1,))
    with pytest.raises(LabelsplatError, match="takes"):
        Distortion("RADIAL", (0.1,))
    with pytest.raises(LabelsplatError, match="not finite"):
        Distortion("SIMPLE_RADIAL", (float("nan"),))


def test_point_inverse_round_trip():
    d = Distortion("OPENCV", (-0.2, 0.05, 0.002, -0.001, 0.0))
    g = np.stack(np.meshgrid(np.linspace(2, W - 2, 9), np.linspace(2, H - 2, 7)), -1).reshape(-1, 2)
    np.testing.assert_allclose(undistort_pixels(distort_pixels(g, K, d), K, d), g, atol=1e-8)


@pytest.mark.parametrize("dist", [Distortion("SIMPLE_RADIAL", (-0.25,)), Distortion("OPENCV", (0.35, -0.05, 0.003, -0.004, 0.01))])
def test_undistorted_image_puts_grid_points_at_pinhole_positions(dist):
    """Blobs drawn where the distorted lens sees pinhole grid points end up at the pinhole points."""
    pin = np.stack(np.meshgrid(np.arange(12.0, W - 11, 14), np.arange(11.0, H - 10, 13)), -1).reshape(-1, 2)
    pin += np.array([0.3, 0.6])  # off the pixel lattice on purpose
    src_pts = distort_pixels(pin, K, dist)
    moved = np.linalg.norm(src_pts - pin, axis=1).max()
    assert moved > 2.0  # the distortion is strong enough for the test to mean something
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")  # pixel centres
    img = np.zeros((H, W))
    for qu, qv in src_pts:
        img += np.exp(-((u - qu) ** 2 + (v - qv) ** 2) / (2 * 1.3**2))
    img8 = np.clip(img * 250, 0, 255).astype(np.uint8)
    und = undistort_image(np.repeat(img8[..., None], 3, 2), K, dist)[..., 0].astype(np.float64)
    for pu, pv in pin:
        win = (np.abs(u - pu) < 5) & (np.abs(v - pv) < 5)
        wgt = und * win
        cu, cv = (wgt * u).sum() / wgt.sum(), (wgt * v).sum() / wgt.sum()
        assert np.hypot(cu - pu, cv - pv) < 0.25, (pu, pv, cu, cv)  # measured <= 0.08 px; a half-pixel slip gives >= 0.56


def test_labels_nearest_and_outside_is_ignore():
    rng = np.random.default_rng(0)
    lbl = rng.choice(np.array([0, 3, 7, 18], dtype=np.uint8), size=(H, W))
    out = undistort_label(lbl, K, Distortion("SIMPLE_RADIAL", (0.3,)))  # pincushion pulls corners outside
    assert out.dtype == np.uint8 and out.shape == lbl.shape
    assert set(np.unique(out).tolist()) <= {0, 3, 7, 18, 255}
    assert out[0, 0] == 255 and out[H // 2, W // 2] == lbl[H // 2, W // 2]


def test_zero_distortion_is_identity():
    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    d = Distortion("OPENCV", (0.0, 0.0, 0.0, 0.0, 0.0))
    assert d.is_zero
    np.testing.assert_array_equal(undistort_image(img, K, d), img)


def test_compiled_kernels_match_numpy_reference():
    from labelsplat.scene.distortion import remap_bilinear, remap_nearest, undistort_map

    rng = np.random.default_rng(2)
    d = Distortion("FULL_OPENCV", (0.2, -0.05, 0.004, -0.003, 0.01, 0.02, -0.01, 0.003))
    su, sv = undistort_map(K, d, W, H)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    diff = np.abs(undistort_image(img, K, d).astype(int) - remap_bilinear(img, su, sv).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # only rounding ties may differ
    grey = img[..., 0].copy()  # (H, W) in, (H, W) out
    assert np.abs(undistort_image(grey, K, d, fill=7).astype(int) - remap_bilinear(grey, su, sv, fill=7).astype(int)).max() <= 1
    lbl = rng.integers(0, 19, (H, W), dtype=np.uint8)
    np.testing.assert_array_equal(undistort_label(lbl, K, d), remap_nearest(lbl, su, sv))
    np.testing.assert_array_equal(undistort_label(lbl, K, d, fill=0), remap_nearest(lbl, su, sv, fill=0))
