"""Preprocessing as face-parsing.PyTorch, and the face crop used before resizing.

Network input: the RGB image (uint8) is resized to ``input_size x input_size`` with PIL
bilinear (aspect ratio not kept, as the original), scaled to [0, 1] and normalised with the
model's mean/std (ImageNet by default) -> float32 (3, S, S).

Face crop (scenes only): parsers trained on CelebA-HQ-style crops fail on small faces in
large frames, so for a scene view we crop a square around the projected head centre before
resizing. The square's half side is ``fx * R / z`` pixels, with ``z`` the head centre's depth
in the camera and ``R`` the crop radius in scene units (default 15 cm converted to scene
units, see :func:`scene_units_per_cm`), i.e. the crop spans head centre +- 15 cm, about the
framing of a CelebAMask-HQ image (face ~ half the width). The square is shifted to stay
inside the image; when it would cover >= ``max_fraction`` of the shorter image side, or the
head is behind the camera, the full image is used instead. Pixel-centre convention: pixel
(i, j) covers [i, i+1) x [j, j+1), so a box (x0, y0, x1, y1) covers columns x0..x1-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import LabelsplatError

DEFAULT_CROP_RADIUS_CM = 15.0


def _check_rgb(rgb: np.ndarray, where: str = "image") -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{where}: expected uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"{where}: empty image")
    return rgb


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bilinear resize of uint8 RGB to ``size`` = (width, height)."""
    rgb = _check_rgb(rgb)
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(tuple(size), Image.BILINEAR))


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of uint8 label ids (H, W) to ``size`` = (width, height)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"expected uint8 labels (H, W), got {labels.dtype} {labels.shape}")
    if (labels.shape[1], labels.shape[0]) == tuple(size):
        return labels
    return np.asarray(Image.fromarray(labels).resize(tuple(size), Image.NEAREST))


def normalize(rgb: np.ndarray, mean, std):
    """uint8 RGB (H, W, 3) -> float32 torch tensor (3, H, W): ``(rgb / 255 - mean) / std``."""
    import torch  # lazy: torch (~1 s); face crops and resizing are used without it

    rgb = _check_rgb(rgb)
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def preprocess(rgb: np.ndarray, input_size: int, mean, std):
    """face-parsing.PyTorch preprocessing: bilinear resize to S x S, /255, mean/std -> (3, S, S)."""
    if input_size < 32 or input_size % 32:
        raise LabelsplatError(f"input size must be a multiple of 32 (>= 32), got {input_size}")
    return normalize(resize_rgb(rgb, (input_size, input_size)), mean, std)


@dataclass(frozen=True)
class CropBox:
    """Pixel box [x0, x1) x [y0, y1) in integer pixel indices."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def to_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def scene_units_per_cm(scene) -> float:
    """Scene units per centimetre, for a crop radius given in cm.

    Uses a top-level ``units`` key (``"mm"``, ``"cm"``, ``"m"``) when the scene has one;
    otherwise guesses from the median camera distance to the head centre (face captures are
    0.3-3 m away): < 10 units -> metres, < 400 -> centimetres, else millimetres. Scenes in
    arbitrary units (COLMAP) should pass an explicit crop radius instead.
    """
    units = str(scene.extra.get("units", "")).lower() if isinstance(scene.extra, dict) else ""
    table = {"mm": 10.0, "millimeter": 10.0, "millimetre": 10.0, "cm": 1.0, "centimeter": 1.0,
             "centimetre": 1.0, "m": 0.01, "meter": 0.01, "metre": 0.01}
    if units in table:
        return table[units]
    if scene.head_frame is None:
        raise LabelsplatError("the scene has no head_frame, so no face crop can be placed", path=scene.root)
    d = np.median([np.linalg.norm(f.camera.center - scene.head_frame.center) for f in scene.frames])
    if d < 10.0:
        return 0.01
    if d < 400.0:
        return 1.0
    return 10.0


def face_crop_box(camera, head_center: np.ndarray, radius: float, *, max_fraction: float = 0.8) -> CropBox | None:
    """Square crop around the projected head centre (see the module doc), or ``None`` = full image.

    ``camera``: :class:`labelsplat.scene.Camera`; ``head_center``: (3,) world point;
    ``radius``: crop half-extent in scene units (> 0).
    """
    if not (radius > 0 and math.isfinite(radius)):
        raise LabelsplatError(f"crop radius must be a positive number, got {radius}")
    uv, z = camera.project(np.asarray(head_center, dtype=np.float64).reshape(1, 3))
    z = float(z[0])
    if not (z > 0 and np.all(np.isfinite(uv))):
        return None
    u, v = (float(a) for a in uv[0])
    W, H = camera.width, camera.height
    half = 0.5 * (camera.fx + camera.fy) * radius / z
    side = int(math.ceil(2.0 * half - 1e-6))  # an exact integer stays itself despite rounding in the projection
    if side >= max_fraction * min(W, H) or side < 8:
        return None
    if not (-half <= u <= W + half and -half <= v <= H + half):
        return None  # the head is out of view: parse the full frame
    x0 = int(round(u - side / 2.0))
    y0 = int(round(v - side / 2.0))
    x0 = min(max(x0, 0), W - side)
    y0 = min(max(y0, 0), H - side)
    return CropBox(x0, y0, x0 + side, y0 + side)
