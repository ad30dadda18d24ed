"""Pinhole cameras and the head frame (the conventions of docs/design.md).

* ``c2w`` is camera-to-world in the OpenGL/nerfstudio convention (camera x right, y up,
  looking along -z), as stored in ``transforms.json``.
* :meth:`Camera.w2c_opencv` gives world-to-camera in the OpenCV convention (x right, y down,
  z forward), the one used for projection, gsplat ``viewmats`` and FaceScape/COLMAP.
* Pixel centres: pixel (i, j) covers [i, i+1) x [j, j+1); a point projecting to continuous
  coordinates (u, v) lies in pixel (floor(u), floor(v)); ``cx, cy`` are in this convention
  (COLMAP/gsplat). OpenCV-convention intrinsics must be shifted by +0.5 on import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import LabelsplatError

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class Camera:
    """A pinhole camera: intrinsics in pixels, size, and camera-to-world (OpenGL)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    c2w: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        self.c2w = np.asarray(self.c2w, dtype=np.float64).reshape(4, 4)
        self.width = int(self.width)
        self.height = int(self.height)
        self.fx, self.fy, self.cx, self.cy = (float(v) for v in (self.fx, self.fy, self.cx, self.cy))

    # -- intrinsics
    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    # -- extrinsics
    @property
    def center(self) -> np.ndarray:
        return self.c2w[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        """Unit viewing direction in world coordinates (the camera's -z in OpenGL)."""
        d = -self.c2w[:3, 2]
        return d / np.linalg.norm(d)

    @property
    def c2w_opencv(self) -> np.ndarray:
        return self.c2w @ GL_TO_CV

    @property
    def w2c_opencv(self) -> np.ndarray:
        """World-to-camera 4x4 in the OpenCV convention (x right, y down, z forward)."""
        return np.linalg.inv(self.c2w_opencv)

    @classmethod
    def from_w2c_opencv(cls, w2c: np.ndarray, fx, fy, cx, cy, width, height) -> "Camera":
        w2c = np.asarray(w2c, dtype=np.float64)
        if w2c.shape == (3, 4):
            w2c = np.vstack([w2c, [0.0, 0.0, 0.0, 1.0]])
        c2w = np.linalg.inv(w2c) @ GL_TO_CV  # GL_TO_CV is its own inverse
        return cls(fx, fy, cx, cy, width, height, c2w)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points (N, 3) to continuous pixel coordinates (N, 2) and depth (N,).

        Depth is the camera-space z (positive in front of the camera).
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        w2c = self.w2c_opencv
        cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * cam[:, 0] / z + self.cx
            v = self.fy * cam[:, 1] / z + self.cy
        return np.stack([u, v], axis=1), z

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Ray origin (3,) and unit directions (H, W, 3) through every pixel centre."""
        j, i = np.meshgrid(np.arange(self.height) + 0.5, np.arange(self.width) + 0.5, indexing="ij")
        d_cam = np.stack([(i - self.cx) / self.fx, (j - self.cy) / self.fy, np.ones_like(i)], axis=-1)
        R = self.c2w_opencv[:3, :3]
        d = d_cam @ R.T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return self.center, d

    def scaled(self, factor: float) -> "Camera":
        """The same camera at ``factor`` times the resolution (pixel-centre exact)."""
        return Camera(
            self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor,
            round(self.width * factor), round(self.height * factor), self.c2w.copy(),
        )

    def to_dict(self) -> dict:
        return {
            "fl_x": self.fx, "fl_y": self.fy, "cx": self.cx, "cy": self.cy,
            "w": self.width, "h": self.height, "transform_matrix": self.c2w.tolist(),
        }


def look_at(center, target, up, fx, fy, width, height, cx=None, cy=None) -> Camera:
    """A camera at ``center`` looking at ``target`` with ``up`` roughly up in the image."""
    center = np.asarray(center, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    back = center - target
    n = np.linalg.norm(back)
    if n == 0:
        raise LabelsplatError("look_at: camera centre equals the target")
    back /= n
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-9:
        raise LabelsplatError("look_at: up vector is parallel to the viewing direction")
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, center
    return Camera(fx, fy, width / 2 if cx is None else cx, height / 2 if cy is None else cy, width, height, c2w)


@dataclass
class HeadFrame:
    """The head's frame in scene units: centre, up (top of head), forward (out of the face).

    ``left = up x forward`` is the subject's left; the frame is right-handed with
    x = left, y = up, z = forward.
    """

    center: np.ndarray
    up: np.ndarray
    forward: np.ndarray

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(3)
        up = np.asarray(self.up, dtype=np.float64).reshape(3)
        fwd = np.asarray(self.forward, dtype=np.float64).reshape(3)
        if not (np.all(np.isfinite(up)) and np.all(np.isfinite(fwd)) and np.all(np.isfinite(self.center))):
            raise LabelsplatError("head_frame has non-finite values")
        if np.linalg.norm(up) == 0 or np.linalg.norm(fwd) == 0:
            raise LabelsplatError("head_frame up/forward must be non-zero vectors")
        fwd = fwd / np.linalg.norm(fwd)
        up = up - fwd * (up @ fwd)  # orthogonalise up against forward
        if np.linalg.norm(up) < 1e-6:
            raise LabelsplatError("head_frame up and forward are parallel")
        self.up = up / np.linalg.norm(up)
        self.forward = fwd

    @classmethod
    def identity(cls) -> "HeadFrame":
        return cls(np.zeros(3), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))

    @property
    def left(self) -> np.ndarray:
        return np.cross(self.up, self.forward)

    @property
    def rotation(self) -> np.ndarray:
        """3x3 matrix whose rows are (left, up, forward): world direction -> head axes."""
        return np.stack([self.left, self.up, self.forward])

    def to_head(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> head-frame coordinates (x = left, y = up, z = forward)."""
        return (np.asarray(points, dtype=np.float64) - self.center) @ self.rotation.T

    def to_world(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) @ self.rotation + self.center

    def to_dict(self) -> dict:
        return {"center": self.center.tolist(), "up": self.up.tolist(), "forward": self.forward.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "HeadFrame":
        return cls(d["center"], d["up"], d["forward"])


def yaw_pitch(camera_center: np.ndarray, head: HeadFrame) -> tuple[float, float]:
    """Yaw and pitch in degrees of a camera centre seen from the head (docs/design.md).

    yaw = atan2(x, z) (0 frontal, +90 the subject's left profile), pitch = asin(y) (+ above),
    with (x, y, z) the unit direction from head centre to camera in head axes.
    """
    d = head.to_head(np.asarray(camera_center, dtype=np.float64).reshape(1, 3))[0]
    n = np.linalg.norm(d)
    if n == 0:
        return 0.0, 0.0
    x, y, z = d / n
    return math.degrees(math.atan2(x, z)), math.degrees(math.asin(max(-1.0, min(1.0, y))))


YAW_BINS: tuple[tuple[str, float, float], ...] = (
    ("0-30", 0.0, 30.0),
    ("30-60", 30.0, 60.0),
    ("60-90", 60.0, 90.0),
    ("90-180", 90.0, 180.0001),
)


def yaw_bin(yaw_deg: float) -> str:
    """The |yaw| bin name of docs/design.md for a yaw in degrees."""
    a = abs(float(yaw_deg))
    for name, lo, hi in YAW_BINS:
        if lo <= a < hi:
            return name
    return YAW_BINS[-1][0]


def is_extreme(yaw_deg: float, pitch_deg: float) -> bool:
    """docs/design.md: extreme means |yaw| >= 60 or |pitch| >= 30."""
    return abs(yaw_deg) >= 60.0 or abs(pitch_deg) >= 30.0
