"""Multiview consistency of label maps, for scenes without ground truth.

Labels of one view are carried to another through a depth map: each pixel centre of view i
with a valid depth is lifted to 3D (camera z = depth, OpenCV axes), projected into view j,
and compared with j's label there when the point is visible in j (its depth agrees with j's
depth map within a relative tolerance). Agreement = matching pairs / compared pairs, pooled
over all view pairs. Pixels labelled 255 in either view are not compared.
"""

from __future__ import annotations

import numpy as np

from ..errors import LabelsplatError
from ..io import IGNORE_INDEX
from ..scene import Camera


def _neighbours(cameras: list[Camera], k: int) -> list[list[int]]:
    centers = np.stack([c.center for c in cameras])
    mean = centers.mean(axis=0)
    dirs = centers - mean
    dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
    sim = dirs @ dirs.T
    np.fill_diagonal(sim, -np.inf)
    return [list(np.argsort(-sim[i])[: min(k, len(cameras) - 1)]) for i in range(len(cameras))]


def multiview_consistency(
    labels: list[np.ndarray],
    depths: list[np.ndarray],
    cameras: list[Camera],
    *,
    neighbours: int = 4,
    depth_tolerance: float = 0.02,
    stride: int = 2,
) -> dict:
    """Label agreement between views reprojected through depth (module docstring).

    ``labels`` uint8 (H, W) per view; ``depths`` float (H, W) camera-space z in scene units
    (<= 0 or non-finite = no surface); ``cameras`` the views' cameras. Each view is compared
    with its ``neighbours`` nearest cameras (by direction from the rig centre); every
    ``stride``-th pixel is used. Returns {"agreement", "compared", "pairs"}.
    """
    n = len(cameras)
    if not (len(labels) == len(depths) == n):
        raise LabelsplatError("multiview_consistency needs one label map and one depth map per camera")
    if n < 2:
        raise LabelsplatError("multiview consistency needs at least two views")
    agree = compared = pairs = 0
    for i, nbrs in enumerate(_neighbours(cameras, neighbours)):
        cam_i = cameras[i]
        d_i = np.asarray(depths[i], dtype=np.float64)
        lab_i = np.asarray(labels[i])
        if d_i.shape != (cam_i.height, cam_i.width) or lab_i.shape != d_i.shape:
            raise LabelsplatError(f"view {i}: label/depth size does not match its camera")
        jj, ii = np.mgrid[0 : cam_i.height : stride, 0 : cam_i.width : stride]
        z = d_i[jj, ii]
        ok = np.isfinite(z) & (z > 0) & (lab_i[jj, ii] != IGNORE_INDEX)
        if not ok.any():
            continue
        u, v, z, li = ii[ok] + 0.5, jj[ok] + 0.5, z[ok], lab_i[jj[ok], ii[ok]]
        pts_cam = np.stack([(u - cam_i.cx) / cam_i.fx * z, (v - cam_i.cy) / cam_i.fy * z, z], axis=1)
        c2w = cam_i.c2w_opencv
        world = pts_cam @ c2w[:3, :3].T + c2w[:3, 3]
        for j in nbrs:
            cam_j = cameras[j]
            uv, zj = cam_j.project(world)
            pj = np.floor(uv).astype(np.int64)
            inside = (zj > 0) & (pj[:, 0] >= 0) & (pj[:, 0] < cam_j.width) & (pj[:, 1] >= 0) & (pj[:, 1] < cam_j.height)
            if not inside.any():
                continue
            pj_in = pj[inside]
            d_j = np.asarray(depths[j], dtype=np.float64)[pj_in[:, 1], pj_in[:, 0]]
            visible = np.isfinite(d_j) & (d_j > 0) & (np.abs(d_j - zj[inside]) <= depth_tolerance * zj[inside])
            lj = np.asarray(labels[j])[pj_in[:, 1], pj_in[:, 0]]
            valid = visible & (lj != IGNORE_INDEX)
            compared += int(valid.sum())
            agree += int((lj[valid] == li[inside][valid]).sum())
            pairs += 1
    return {"agreement": (agree / compared) if compared else None, "compared": compared, "pairs": pairs}
