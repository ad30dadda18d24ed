"""lift_pixels / visible_pixels: pixel centres carried between views through depth."""

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.scene import look_at
from labelsplat.scene.reproject import lift_pixels, visible_pixels


def _plane_view(x):
    cam = look_at([x, 0.0, 10.0], [0, 0, 0], [0, 1, 0], 40.0, 40.0, 24, 24)
    origin, d = cam.pixel_rays()
    p = origin + (-origin[2] / d[..., 2])[..., None] * d  # the plane z = 0
    R = cam.w2c_opencv
    return cam, p, p @ R[:3, :3].T[:, 2] + R[2, 3]


def test_lift_gives_the_pixel_centres_surface_points_and_returns_to_the_same_pixel():
    cam, p, depth = _plane_view(0.0)
    lifted = lift_pixels(depth, cam)
    assert len(lifted.rows) == 24 * 24
    np.testing.assert_allclose(lifted.world, p[lifted.rows, lifted.cols], atol=1e-9)
    back = visible_pixels(lifted.world, cam, depth, 1e-6)
    assert back.n_inside == len(lifted.rows) and len(back.idx) == len(lifted.rows)
    np.testing.assert_array_equal(back.rows, lifted.rows[back.idx])
    np.testing.assert_array_equal(back.cols, lifted.cols[back.idx])


def test_stride_mask_and_missing_depth():
    cam, _, depth = _plane_view(0.0)
    depth = depth.copy()
    depth[0, :] = 0.0
    depth[1, :] = np.nan
    mask = np.zeros_like(depth, dtype=bool)
    mask[:, :12] = True
    lifted = lift_pixels(depth, cam, stride=2, mask=mask)
    assert set(lifted.rows.tolist()) == set(range(2, 24, 2))  # rows 0 (no depth) gone; odd rows skipped
    assert lifted.cols.max() < 12
    with pytest.raises(LabelsplatError, match="does not match"):
        lift_pixels(depth[:-1], cam)


def test_points_behind_another_surface_are_not_visible():
    cam_a, _, depth_a = _plane_view(0.0)
    cam_b, _, depth_b = _plane_view(1.0)
    lifted = lift_pixels(depth_a, cam_a)
    seen = visible_pixels(lifted.world, cam_b, depth_b, 0.01)
    assert len(seen.idx) > 0
    occluded = visible_pixels(lifted.world, cam_b, depth_b * 0.5, 0.01)  # b's surface twice as close
    assert occluded.n_inside == seen.n_inside and len(occluded.idx) == 0
