"""Similarity transforms (scale, rotation, translation): Umeyama alignment and applying one to
points and cameras.

A :class:`Similarity` maps points ``x`` (N, 3) to ``s * R @ x + t``. Applied to a camera
(camera-to-world, OpenGL axes), it moves the centre like a point and rotates the camera's axes
by ``R``; intrinsics and image size are unchanged (a scaled world looks the same through the
same pinhole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LabelsplatError
from ..scene import Camera


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * R @ x + t``; ``R`` (3, 3) a proper rotation, ``scale`` > 0, ``t`` (3,)."""

    scale: float
    R: np.ndarray
    t: np.ndarray

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(1.0, np.eye(3), np.zeros(3))

    def __post_init__(self) -> None:
        R = np.asarray(self.R, dtype=np.float64)
        t = np.asarray(self.t, dtype=np.float64).reshape(-1)
        if R.shape != (3, 3) or t.shape != (3,):
            raise LabelsplatError(f"a similarity needs R (3, 3) and t (3,), got {R.shape} and {t.shape}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise LabelsplatError(f"a similarity needs a positive finite scale, got {self.scale}")
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.R
        m[:3, 3] = self.t
        return m

    def inverse(self) -> "Similarity":
        Rt = self.R.T
        return Similarity(1.0 / self.scale, Rt, -(Rt @ self.t) / self.scale)

    def compose(self, first: "Similarity") -> "Similarity":
        """``self o first``: apply ``first``, then ``self``."""
        return Similarity(self.scale * first.scale, self.R @ first.R, self.scale * (self.R @ first.t) + self.t)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map points (N, 3) (or one point (3,))."""
        p = np.asarray(points, dtype=np.float64)
        return (self.scale * (p.reshape(-1, 3) @ self.R.T) + self.t).reshape(p.shape)

    def apply_direction(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate direction vectors (N, 3) (no scale, no translation)."""
        v = np.asarray(vectors, dtype=np.float64)
        return (v.reshape(-1, 3) @ self.R.T).reshape(v.shape)

    def apply_camera(self, camera: Camera) -> Camera:
        """The same camera in the mapped world (centre mapped, axes rotated, intrinsics kept)."""
        c2w = np.eye(4)
        c2w[:3, :3] = self.R @ camera.c2w[:3, :3]
        c2w[:3, 3] = self.apply(camera.c2w[:3, 3])
        return Camera(camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height, c2w)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "rotation": self.R.tolist(), "translation": self.t.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Similarity":
        try:
            return cls(float(d["scale"]), np.asarray(d["rotation"], float), np.asarray(d["translation"], float))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelsplatError(f"not a similarity (needs scale, rotation, translation): {exc}") from exc


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Similarity:
    """The least-squares similarity mapping ``src`` (N, 3) onto ``dst`` (N, 3) (Umeyama 1991):
    minimises sum ||dst_i - (s R src_i + t)||^2 over rotations R (det +1, no reflections),
    s > 0 (fixed to 1 when ``with_scale`` is False) and t. Needs N >= 3 non-collinear points."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape:
        raise LabelsplatError(f"umeyama needs two (N, 3) point sets of the same shape, got {src.shape} and {dst.shape}")
    if len(src) < 3:
        raise LabelsplatError(f"umeyama needs at least 3 point pairs, got {len(src)}")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise LabelsplatError("umeyama: the points contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = float((xs**2).sum() / len(src))
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    if var_s < 1e-24 or D[1] < 1e-12 * max(D[0], 1e-300):
        raise LabelsplatError("umeyama: the points are (nearly) collinear or coincident; the rotation is undetermined")
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return Similarity(s, R, t)


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """The angle (degrees) of the rotation ``Ra^T Rb`` (the geodesic distance between two rotations)."""
    M = np.asarray(Ra, dtype=np.float64).T @ np.asarray(Rb, dtype=np.float64)
    c = (np.trace(M) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


@dataclass(frozen=True)
class CameraAlignment:
    """Recovered cameras aligned to reference cameras: the similarity (recovered -> reference),
    per-camera rotation errors (degrees) and centre errors (reference units)."""

    similarity: Similarity
    rotation_errors_deg: np.ndarray
    center_errors: np.ndarray

    def to_dict(self) -> dict:
        return {
            "similarity": self.similarity.to_dict(),
            "rotation_error_deg": {"max": float(self.rotation_errors_deg.max()),
                                   "mean": float(self.rotation_errors_deg.mean())},
            "center_error": {"max": float(self.center_errors.max()), "mean": float(self.center_errors.mean())},
        }


def align_cameras(recovered: list[Camera], reference: list[Camera], with_scale: bool = True) -> CameraAlignment:
    """Align ``recovered`` cameras to ``reference`` (same order) by Umeyama on the centres and
    measure each camera's rotation error (angle between the mapped and reference camera axes)
    and centre error (distance after mapping, reference units)."""
    if len(recovered) != len(reference):
        raise LabelsplatError(f"align_cameras: {len(recovered)} recovered vs {len(reference)} reference cameras")
    sim = umeyama(np.array([c.center for c in recovered]), np.array([c.center for c in reference]), with_scale)
    rot, cen = [], []
    for a, b in zip(recovered, reference):
        m = sim.apply_camera(a)
        rot.append(rotation_angle_deg(m.c2w[:3, :3], b.c2w[:3, :3]))
        cen.append(float(np.linalg.norm(m.center - b.center)))
    return CameraAlignment(sim, np.array(rot), np.array(cen))
