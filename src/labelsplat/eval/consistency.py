"""Multiview consistency of label maps, for scenes without ground truth.

Labels of one view are carried to another through a depth map: each pixel centre of view i
with a valid depth is lifted to 3D (camera z = depth, OpenCV axes), projected into view j,
and compared with j's label there when the point is visible in j (its depth agrees with j's
depth map within a relative tolerance). Agreement = matching pairs / compared pairs, pooled
over all view pairs. Pixels labelled 255 in either view are not compared.

The lifting (:func:`lift_pixels`) and the visibility test (:func:`visible_pixels`) are shared
with ``labelsplat.splat.consensus`` (consensus relabelling of the input views).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Lifted:
    """Pixel centres of one view lifted to 3D through its depth map.

    ``rows`` / ``cols`` (N,) int64 pixel indices (row = image y, col = image x) of the lifted
    pixels; ``world`` (N, 3) float64 their 3D points in the scene's world frame and units (the
    pixel centre (col + 0.5, row + 0.5) back-projected to camera z = depth, OpenCV axes).
    """

    rows: np.ndarray
    cols: np.ndarray
    world: np.ndarray


@dataclass(frozen=True)
class Reprojection:
    """Lifted points seen in another view: ``idx`` (M,) indices into the lifted points that land
    inside the view in front of it AND agree with its depth map; ``rows`` / ``cols`` (M,) the
    pixel they land on (floor of the projection: pixel (i, j) covers [i, i+1) x [j, j+1));
    ``n_inside`` how many points landed inside the image in front of the camera (visible or not)."""

    idx: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    n_inside: int


def lift_pixels(depth: np.ndarray, camera: Camera, *, stride: int = 1, mask: np.ndarray | None = None) -> Lifted:
    """Lift every ``stride``-th pixel centre (rows and columns 0, stride, 2*stride, ...) with a
    valid depth to 3D. ``depth`` (H, W) camera-space z in scene units (<= 0 or non-finite = no
    surface) matching ``camera``'s size; ``mask`` (H, W) bool optionally restricts the pixels."""
    d = np.asarray(depth, dtype=np.float64)
    if d.shape != (camera.height, camera.width):
        raise LabelsplatError(f"depth map {d.shape} does not match its camera ({camera.height}, {camera.width})")
    jj, ii = np.mgrid[0 : camera.height : stride, 0 : camera.width : stride]
    z = d[jj, ii]
    ok = np.isfinite(z) & (z > 0)
    if mask is not None:
        ok &= np.asarray(mask, dtype=bool)[jj, ii]
    rows, cols, z = jj[ok].astype(np.int64), ii[ok].astype(np.int64), z[ok]
    u, v = cols + 0.5, rows + 0.5
    pts_cam = np.stack([(u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z], axis=1)
    c2w = camera.c2w_opencv
    world = pts_cam @ c2w[:3, :3].T + c2w[:3, 3]
    return Lifted(rows=rows, cols=cols, world=world)


def visible_pixels(world: np.ndarray, camera: Camera, depth: np.ndarray, depth_tolerance: float) -> Reprojection:
    """Project world points (N, 3) into ``camera`` and keep those visible there: inside the image,
    in front of the camera, and with ``|depth[pixel] - z| <= depth_tolerance * z`` (relative
    agreement with the view's own depth map (H, W), camera z in scene units; <= 0 or non-finite =
    no surface, never visible)."""
    uv, zj = camera.project(world)
    with np.errstate(invalid="ignore"):
        pj = np.floor(uv).astype(np.int64)
    inside = (zj > 0) & (pj[:, 0] >= 0) & (pj[:, 0] < camera.width) & (pj[:, 1] >= 0) & (pj[:, 1] < camera.height)
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return Reprojection(idx=e, rows=e, cols=e, n_inside=0)
    pj_in = pj[idx]
    z_in = zj[idx]
    d_j = np.asarray(depth, dtype=np.float64)[pj_in[:, 1], pj_in[:, 0]]
    visible = np.isfinite(d_j) & (d_j > 0) & (np.abs(d_j - z_in) <= depth_tolerance * z_in)
    return Reprojection(idx=idx[visible], rows=pj_in[visible, 1], cols=pj_in[visible, 0], n_inside=int(idx.size))


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
