import numpy as np

from labelsplat.eval import multiview_consistency
from labelsplat.scene import look_at


def _plane_views(labels_fn):
    """Two cameras looking at the plane z=0 from slightly different places; depth exact."""
    cams = [look_at([x, 0.0, 10.0], [0, 0, 0], [0, 1, 0], 40.0, 40.0, 32, 32) for x in (-0.5, 0.5)]
    labels, depths = [], []
    for cam in cams:
        origin, d = cam.pixel_rays()
        t = -origin[2] / d[..., 2]
        pts = origin + t[..., None] * d
        labels.append(labels_fn(pts).astype(np.uint8))
        R = cam.w2c_opencv
        depths.append(pts @ R[:3, :3].T[:, 2] + R[2, 3])
    return labels, depths, cams


def test_world_consistent_labels_agree_fully():
    labels, depths, cams = _plane_views(lambda p: 1 + (p[..., 0] > 0))
    r = multiview_consistency(labels, depths, cams, stride=1)
    assert r["compared"] > 500
    assert r["agreement"] > 0.97  # only pixels straddling the x=0 edge can differ


def test_image_fixed_labels_disagree():
    # labels fixed in image space (left half / right half) do not follow the surface
    labels, depths, cams = _plane_views(lambda p: 1 + (p[..., 0] > 0))
    shifted = [np.roll(labels[0], 6, axis=1), labels[1]]
    r_bad = multiview_consistency(shifted, depths, cams, stride=1)
    r_good = multiview_consistency(labels, depths, cams, stride=1)
    assert r_bad["agreement"] < r_good["agreement"] - 0.1


def test_ignore_pixels_not_compared():
    labels, depths, cams = _plane_views(lambda p: np.ones(p.shape[:2]))
    labels = [np.full_like(labels[0], 255), labels[1]]
    r = multiview_consistency(labels, depths, cams, stride=1)
    assert r["compared"] == 0 and r["agreement"] is None  # every pair has a 255 on one side
    labels = [np.ones_like(labels[1]), labels[1]]
    assert multiview_consistency(labels, depths, cams, stride=1)["agreement"] == 1.0
