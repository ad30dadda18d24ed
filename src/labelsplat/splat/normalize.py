"""The similarity transform between scene units and the normalised fit frame.

Scenes come in mm (FaceScape), cm (ICT) or arbitrary units (COLMAP). The fit runs in a
frame where the head is centred at the origin with radius ~1:

    x_norm = (x_scene - center) / scale        x_scene = x_norm * scale + center

No rotation, so camera orientations and SH coefficients are unchanged; lengths (Gaussian
scales, depths) multiply by ``scale`` on the way back (log-scales add ``log(scale)``).
``center`` is the scene's ``head_frame.center`` when given, else the point closest to all
cameras' optical axes (their common look-at point); ``scale`` is the head radius estimated
from the foreground masks (a high percentile of the foreground pixels' distance from the
projected centre, times depth / focal length, median over views), falling back to a third
of the median camera distance when the masks are empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import LabelsplatError
from ..scene import Camera, HeadFrame


@dataclass(frozen=True)
class Normalization:
    """``x_norm = (x_scene - center) / scale`` (``center`` (3,) and ``scale`` > 0 in scene units)."""

    center: tuple[float, float, float]
    scale: float

    def __post_init__(self) -> None:
        c = tuple(float(v) for v in np.asarray(self.center, dtype=np.float64).reshape(3))
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "scale", float(self.scale))
        if not (all(math.isfinite(v) for v in c) and math.isfinite(self.scale) and self.scale > 0):
            raise LabelsplatError(f"invalid normalisation: center={c}, scale={self.scale}")

    @classmethod
    def identity(cls) -> "Normalization":
        return cls((0.0, 0.0, 0.0), 1.0)

    @property
    def matrix(self) -> np.ndarray:
        """4x4 scene -> normalised."""
        m = np.eye(4) / self.scale
        m[3, 3] = 1.0
        m[:3, 3] = -np.asarray(self.center) / self.scale
        return m

    def to_norm(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - np.asarray(self.center)) / self.scale

    def to_scene(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) * self.scale + np.asarray(self.center)

    def camera_to_norm(self, cam: Camera) -> Camera:
        c2w = cam.c2w.copy()
        c2w[:3, 3] = self.to_norm(c2w[:3, 3][None])[0]
        return Camera(cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height, c2w)

    def camera_to_scene(self, cam: Camera) -> Camera:
        c2w = cam.c2w.copy()
        c2w[:3, 3] = self.to_scene(c2w[:3, 3][None])[0]
        return Camera(cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height, c2w)

    def to_dict(self) -> dict:
        return {"center": list(self.center), "scale": self.scale, "scene_to_norm": self.matrix.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        try:
            return cls(tuple(d["center"]), float(d["scale"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelsplatError(f"invalid normalisation record {d!r}") from exc


def look_at_point(cameras: list[Camera]) -> np.ndarray:
    """Least-squares point closest to all cameras' optical axes (scene units).

    Falls back to the mean camera centre pushed one median distance along the mean
    viewing direction when the axes are (nearly) parallel.
    """
    if not cameras:
        raise LabelsplatError("no cameras")
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cameras:
        d = cam.forward
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ cam.center
    if np.linalg.cond(A) < 1e8:
        return np.linalg.solve(A, b)
    centres = np.stack([c.center for c in cameras])
    fwd = np.mean([c.forward for c in cameras], axis=0)
    fwd /= max(np.linalg.norm(fwd), 1e-12)
    dist = np.median(np.linalg.norm(centres - centres.mean(0), axis=1)) or 1.0
    return centres.mean(0) + fwd * dist


def estimate_normalization(
    cameras: list[Camera],
    masks: list[np.ndarray] | None = None,
    head_frame: HeadFrame | None = None,
    *,
    percentile: float = 95.0,
) -> Normalization:
    """Estimate the normalisation from cameras, optional foreground masks (H, W) bool and head frame.

    ``masks[i]`` must have the size of ``cameras[i]``. See the module docstring for the rule.
    """
    center = head_frame.center.copy() if head_frame is not None else look_at_point(cameras)
    radii = []
    dists = []
    for i, cam in enumerate(cameras):
        uv, z = cam.project(center[None])
        depth = float(z[0])
        dists.append(float(np.linalg.norm(cam.center - center)))
        if masks is None or depth <= 0:
            continue
        m = np.asarray(masks[i], dtype=bool)
        if m.shape != (cam.height, cam.width):
            raise ValueError(f"mask {i} has shape {m.shape}, camera is {cam.height}x{cam.width}")
        jj, ii = np.nonzero(m)
        if len(ii) < 10:
            continue
        du = (ii + 0.5 - uv[0, 0]) / cam.fx
        dv = (jj + 0.5 - uv[0, 1]) / cam.fy
        r = np.percentile(np.hypot(du, dv), percentile) * depth
        if np.isfinite(r) and r > 0:
            radii.append(r)
    if radii:
        scale = float(np.median(radii))
    else:
        scale = float(np.median(dists)) / 3.0
    if not (math.isfinite(scale) and scale > 0):
        raise LabelsplatError("cannot estimate the scene scale: the cameras coincide with the head centre")
    return Normalization(tuple(center), scale)
