"""Camera rigs around a synthetic head (head frame of docs/design.md, cm).

* ``facescape``: a FaceScape-like dome of 55 candidate cameras on the frontal hemisphere
  (5 rows of pitch -25..+25 deg x 11 yaws -90..+90 deg); ``views`` cameras are drawn from the
  candidates without replacement (with replacement and extra angle jitter past 55).
* ``orbit``: a uniform 360 deg ring (random phase, pitch jitter +-8 deg).
* ``extreme``: |yaw| >= 60 or |pitch| >= 30 (docs/design.md), yaw within +-110, pitch within +-50.

Every camera looks at the head centre with the head's up as image up, at distance ~60 cm
(+-8 % jitter) and a focal length (+-8 % jitter) that frames 36 cm at the head centre with margin,
square pixels, principal point at the image centre (pixel-centre convention: w/2, h/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import LabelsplatError
from ..scene import Camera, look_at
from .head import HEAD_CENTER

RIGS = ("facescape", "orbit", "extreme")
DISTANCE_CM = 60.0
FRAME_HEIGHT_CM = 36.0  # vertical extent imaged at the head centre's distance


@dataclass(frozen=True)
class RigConfig:
    """How cameras are drawn. ``distance_jitter`` / ``focal_jitter`` are relative (uniform +-)."""

    rig: str = "facescape"
    views: int = 16
    resolution: int = 256
    distance: float = DISTANCE_CM
    distance_jitter: float = 0.08
    focal_jitter: float = 0.08

    def __post_init__(self) -> None:
        if self.rig not in RIGS:
            raise LabelsplatError(f"unknown rig '{self.rig}'", hint=f"choose one of {', '.join(RIGS)}")
        if int(self.views) <= 0:
            raise LabelsplatError(f"--views must be positive, got {self.views}")
        if int(self.resolution) <= 0:
            raise LabelsplatError(f"--resolution must be positive, got {self.resolution}")


def facescape_candidates() -> np.ndarray:
    """(55, 2) candidate (yaw, pitch) in degrees of the FaceScape-like dome."""
    yaws = np.linspace(-90.0, 90.0, 11)
    pitches = np.array([-25.0, -12.0, 0.0, 12.0, 25.0])
    return np.array([(y, p) for p in pitches for y in yaws])


def camera_at(yaw_deg: float, pitch_deg: float, *, distance: float = DISTANCE_CM, resolution: int = 256,
              focal_scale: float = 1.0, width: int | None = None, height: int | None = None) -> Camera:
    """A camera on the sphere around the head centre at (yaw, pitch) (docs/design.md definitions),
    looking at the centre, image up = head up (or the head's forward when looking straight down)."""
    w = int(width or resolution)
    h = int(height or resolution)
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    d = np.array([math.sin(y) * math.cos(p), math.sin(p), math.cos(y) * math.cos(p)])
    c = np.asarray(HEAD_CENTER, dtype=np.float64)
    up = np.array([0.0, 1.0, 0.0]) if abs(pitch_deg) < 89.0 else np.array([0.0, 0.0, -math.copysign(1.0, pitch_deg)])
    f = focal_scale * h * distance / FRAME_HEIGHT_CM
    return look_at(c + distance * d, c, up, f, f, w, h)


def sample_poses(rig: str, views: int, rng: np.random.Generator) -> np.ndarray:
    """(views, 2) (yaw, pitch) in degrees drawn from a rig."""
    if rig == "facescape":
        cand = facescape_candidates()
        if views <= len(cand):
            idx = np.sort(rng.choice(len(cand), size=views, replace=False))
            poses = cand[idx].copy()
            poses += rng.uniform(-2.0, 2.0, poses.shape)
        else:
            idx = rng.choice(len(cand), size=views, replace=True)
            poses = cand[idx] + rng.uniform(-6.0, 6.0, (views, 2))
        poses[:, 0] = np.clip(poses[:, 0], -89.5, 89.5)  # stay in the 60-90 bin
        poses[:, 1] = np.clip(poses[:, 1], -30.0, 30.0)
        return poses
    if rig == "orbit":
        phase = rng.uniform(0.0, 360.0 / views)
        yaw = (phase + np.arange(views) * 360.0 / views + 180.0) % 360.0 - 180.0
        return np.stack([yaw, rng.uniform(-8.0, 8.0, views)], axis=1)
    if rig == "extreme":
        out = []
        while len(out) < views:
            yaw = rng.uniform(-110.0, 110.0)
            pitch = rng.uniform(-50.0, 50.0)
            if abs(yaw) >= 60.0 or abs(pitch) >= 30.0:
                out.append((yaw, pitch))
        return np.asarray(out)
    raise LabelsplatError(f"unknown rig '{rig}'", hint=f"choose one of {', '.join(RIGS)}")


def rig_cameras(config: RigConfig, seed: int) -> tuple[list[Camera], np.ndarray]:
    """Draw ``config.views`` cameras; returns (cameras, (V, 2) nominal yaw/pitch in degrees)."""
    rng = np.random.default_rng([int(seed), 0xCA3])
    poses = sample_poses(config.rig, int(config.views), rng)
    cams = []
    for yaw, pitch in poses:
        dist = config.distance * (1.0 + rng.uniform(-config.distance_jitter, config.distance_jitter))
        fs = 1.0 + rng.uniform(-config.focal_jitter, config.focal_jitter)
        cams.append(camera_at(float(yaw), float(pitch), distance=dist, resolution=int(config.resolution),
                              focal_scale=fs))
    return cams, poses
