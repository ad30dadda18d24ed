"""Visual hull voting, surface sampling, foreground masks, point-cloud reading."""

from __future__ import annotations

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.scene import look_at
from labelsplat.splat.init import (
    foreground_mask, hull_points, read_point_cloud, sample_views, surface_voxels, visual_hull, voxel_centers,
)


def _sphere_with_ear_masks(n_views=8, res=64):
    """Silhouettes of a unit sphere plus an 'ear' ball at (+1.2, 0, 0) of radius 0.3, ring of cameras."""
    cams, masks = [], []
    for k in range(n_views):
        yaw = 2 * np.pi * (k + 0.5) / n_views
        eye = 4.0 * np.array([np.sin(yaw), 0.15 * (1 if k % 2 else -1), np.cos(yaw)])
        cam = look_at(eye, [0, 0, 0], [0, 1, 0], 1.4 * res, 1.4 * res, res, res)
        _, d = cam.pixel_rays()
        m = np.zeros((res, res), bool)
        for c, r in (((0, 0, 0), 1.0), ((1.2, 0, 0), 0.3)):
            oc = cam.center - np.asarray(c, float)
            b = d @ oc
            disc = b * b - (oc @ oc - r * r)
            m |= disc > 0
        cams.append(cam)
        masks.append(m)
    return cams, masks


def _occupied(occ, centres, point):
    idx = np.argmin(np.linalg.norm(centres.reshape(-1, 3) - np.asarray(point), axis=1))
    return bool(occ.reshape(-1)[idx])


def test_hull_carves_outside_and_keeps_sphere():
    cams, masks = _sphere_with_ear_masks()
    occ, cen = visual_hull(cams, masks, resolution=32, bound=1.8, vote_fraction=0.75, min_views=4)
    assert _occupied(occ, cen, (0, 0, 0))
    assert _occupied(occ, cen, (0, 0.8, 0))
    assert _occupied(occ, cen, (1.25, 0, 0))  # the ear
    assert not _occupied(occ, cen, (0, 1.5, 0))
    assert not _occupied(occ, cen, (1.6, 1.6, 1.6))
    assert not _occupied(occ, cen, (0, 0, 1.6))


def test_one_bad_mask_does_not_carve_the_ear():
    cams, masks = _sphere_with_ear_masks()
    # one view that sees the ear beside the head gets a mask without it (the unit-sphere silhouette only)
    bad = [m.copy() for m in masks]
    side = None
    for k, cam in enumerate(cams):
        _, d = cam.pixel_rays()
        oc = cam.center
        b = d @ oc
        sphere_only = (b * b - (oc @ oc - 1.0)) > 0
        uv, _ = cam.project(np.array([[1.25, 0.0, 0.0]]))
        i, j = np.floor(uv[0]).astype(int)
        if 0 <= i < cam.width and 0 <= j < cam.height and not sphere_only[j, i]:
            side = k
            bad[k] = sphere_only
            break
    assert side is not None
    occ_vote, cen = visual_hull(cams, bad, resolution=32, bound=1.8, vote_fraction=0.75, min_views=4)
    occ_strict, _ = visual_hull(cams, bad, resolution=32, bound=1.8, vote_fraction=1.0, min_views=4)
    ear = (1.25, 0.0, 0.0)
    assert _occupied(occ_vote, cen, ear), "voting must keep the ear when one mask misses it"
    assert not _occupied(occ_strict, cen, ear), "a strict intersection carves it (the case voting fixes)"


def test_surface_voxels_and_hull_points():
    occ = np.zeros((6, 6, 6), bool)
    occ[1:5, 1:5, 1:5] = True
    surf = surface_voxels(occ)
    assert surf.sum() == 64 - 8 and not surf[2, 2, 2] and surf[1, 1, 1]
    cams, masks = _sphere_with_ear_masks(res=32)
    imgs = [np.full((32, 32, 3), 0.5, np.float32) for _ in cams]
    labs = [m.astype(np.uint8) for m in masks]
    pts = hull_points(cams, masks, imgs, labs, 19, resolution=20, bound=1.8, min_views=4, max_points=300, seed=3)
    assert pts.means.shape == (300, 3) and np.all(np.abs(pts.means) < 1.9)
    assert set(np.unique(pts.labels)) <= {0, 1} and np.mean(pts.labels == 1) > 0.8  # the head is class 1
    again = hull_points(cams, masks, imgs, labs, 19, resolution=20, bound=1.8, min_views=4, max_points=300, seed=3)
    np.testing.assert_array_equal(pts.means, again.means)
    with pytest.raises(LabelsplatError, match="visual hull is empty"):
        hull_points(cams, [np.zeros_like(m) for m in masks], imgs, labs, 19, resolution=12, min_views=4)


def test_sample_views_uses_facing_views_and_ignores_255():
    cams, masks = _sphere_with_ear_masks(n_views=4, res=32)
    imgs, labs = [], []
    for k, cam in enumerate(cams):
        imgs.append(np.full((32, 32, 3), k / 4.0))
        lab = np.full((32, 32), 10 + k, np.uint8)
        lab[:, :] = 255 if k == 3 else lab
        labs.append(lab)
    # a point on the sphere surface toward camera 0 reads camera 0's colour and label
    p = cams[0].center / np.linalg.norm(cams[0].center)
    col, lab = sample_views(p[None], cams, imgs, labs, 19, best_views=1)
    assert np.allclose(col[0], 0.0) and lab[0] == 10
    p3 = cams[3].center / np.linalg.norm(cams[3].center)
    _, lab3 = sample_views(p3[None], cams, imgs, labs, 19, best_views=1)
    assert lab3[0] == -1  # its only facing view says 255 (ignore)


def test_foreground_mask_rules():
    lab = np.zeros((9, 9), np.uint8)
    lab[4, 4] = 3
    lab[0, 0] = 255
    fg = foreground_mask(lab, None)
    assert fg.sum() == 2 and fg[0, 0]  # ignore counts as foreground
    assert foreground_mask(lab, None, dilate_px=1).sum() == 5 + 3
    mask = np.zeros((9, 9), np.uint8)
    assert not foreground_mask(lab, mask).any()  # an explicit mask wins over labels


def test_read_point_cloud(tmp_path):
    from plyfile import PlyData, PlyElement

    v = np.array([(0.0, 1.0, 2.0, 255, 0, 0), (1.0, 1.0, 1.0, 0, 255, 0)],
                 dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "p.ply"))
    pts, cols = read_point_cloud(tmp_path / "p.ply")
    assert pts.shape == (2, 3) and np.allclose(cols[0], [1, 0, 0])
    with pytest.raises(LabelsplatError, match="not found"):
        read_point_cloud(tmp_path / "missing.ply")
    (tmp_path / "bad.ply").write_text("not a ply")
    with pytest.raises(LabelsplatError):
        read_point_cloud(tmp_path / "bad.ply")


def test_voxel_centers_symmetric():
    c = voxel_centers(4, 1.0)
    assert c.shape == (4, 4, 4, 3) and np.isclose(c[0, 0, 0, 0], -0.75) and np.isclose(c[-1, 0, 0, 0], 0.75)
