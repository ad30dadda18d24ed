"""Carrying pixels between views through depth maps (``labelsplat.eval.consistency``).

Conventions (docs/design.md): pixel (i, j) covers [i, i+1) x [j, j+1) with its centre at
(i + 0.5, j + 0.5); depth maps hold camera-space z (OpenCV axes) in scene units, <= 0 or
non-finite = no surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LabelsplatError
from .camera import Camera


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
