"""Multiview consistency of label maps, for scenes without ground truth.

Labels of one view are carried to another through a depth map: each pixel centre of view i
with a valid depth is lifted to 3D (camera z = depth, OpenCV axes), projected into view j,
and compared with j's label there when the point is visible in j (its depth agrees with j's
depth map within a relative tolerance). Agreement = matching pairs / compared pairs, pooled
over all view pairs. Pixels labelled 255 in either view are not compared.

The lifting (:func:`~labelsplat.scene.reproject.lift_pixels`) and the visibility test
(:func:`~labelsplat.scene.reproject.visible_pixels`) live in ``labelsplat.scene.reproject``.
"""

from __future__ import annotations

import numpy as np

from ..errors import LabelsplatError
from ..io import IGNORE_INDEX
from ..scene import Camera
from ..scene.reproject import lift_pixels, visible_pixels


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
        lifted = lift_pixels(d_i, cam_i, stride=stride, mask=lab_i != IGNORE_INDEX)
        if lifted.rows.size == 0:
            continue
        li = lab_i[lifted.rows, lifted.cols]
        for j in nbrs:
            rp = visible_pixels(lifted.world, cameras[j], depths[j], depth_tolerance)
            if rp.n_inside == 0:
                continue
            lj = np.asarray(labels[j])[rp.rows, rp.cols]
            valid = lj != IGNORE_INDEX
            compared += int(valid.sum())
            agree += int((lj[valid] == li[rp.idx][valid]).sum())
            pairs += 1
    return {"agreement": (agree / compared) if compared else None, "compared": compared, "pairs": pairs}
