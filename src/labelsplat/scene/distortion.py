"""Lens distortion models and undistortion to a pinhole camera with the same intrinsics.

Conventions
-----------
* Normalised coordinates ``(x, y) = ((u - cx) / fx, (v - cy) / fy)`` with ``(u, v)`` continuous
  pixel coordinates in the pixel-centre convention of docs/design.md (pixel (i, j) covers
  [i, i+1) x [j, j+1)). Distortion acts on normalised coordinates, so the +0.5 shift of
  OpenCV-convention intrinsics cancels out: the same coefficients are valid in both.
* The OpenCV model (also FaceScape's ``k1 k2 p1 p2 k3`` and COLMAP's OPENCV/FULL_OPENCV):
  ``r2 = x^2 + y^2``, ``radial = (1 + k1 r2 + k2 r4 + k3 r6) / (1 + k4 r2 + k5 r4 + k6 r6)``,
  ``xd = x radial + 2 p1 x y + p2 (r2 + 2 x^2)``, ``yd = y radial + p1 (r2 + 2 y^2) + 2 p2 x y``.
  COLMAP's SIMPLE_RADIAL (k) and RADIAL (k1, k2) are its special cases.
* Undistortion keeps K and the image size (:func:`undistort_image`, :func:`undistort_label`
  run a compiled kernel; :func:`undistort_map` + :func:`remap_bilinear` / :func:`remap_nearest`
  are the plain NumPy reference the tests compare it with). For each output pixel centre the forward model
  (closed form) gives the distorted position in the source image, which is sampled there:
  bilinear for images, nearest (the pixel containing the point) for labels and masks, so class
  ids stay valid. Output pixels whose source lies outside the image get ``fill``
  (0 for images and masks, 255 = ignore for labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LabelsplatError
from ..io import IGNORE_INDEX

# model name -> number of parameters accepted
_MODELS: dict[str, tuple[int, ...]] = {
    "OPENCV": (4, 5, 8),  # k1 k2 p1 p2 [k3 [k4 k5 k6]] (OpenCV order)
    "FULL_OPENCV": (8,),  # k1 k2 p1 p2 k3 k4 k5 k6
    "RADIAL": (2,),  # k1 k2
    "SIMPLE_RADIAL": (1,),  # k
}


@dataclass(frozen=True)
class Distortion:
    """A distortion model and its coefficients, as the source named them.

    ``model``: ``OPENCV`` (k1 k2 p1 p2 [k3 [k4 k5 k6]]), ``FULL_OPENCV`` (8), ``RADIAL``
    (k1 k2) or ``SIMPLE_RADIAL`` (k). Recorded per frame as ``distortion_removed``.
    """

    model: str
    params: tuple[float, ...]

    def __post_init__(self) -> None:
        model = self.model.upper()
        if model not in _MODELS:
            raise LabelsplatError(f"unknown distortion model {self.model!r}; known: {sorted(_MODELS)}")
        params = tuple(float(p) for p in self.params)
        if len(params) not in _MODELS[model]:
            raise LabelsplatError(
                f"distortion model {model} takes {' or '.join(map(str, _MODELS[model]))} coefficients, got {len(params)}"
            )
        if not all(np.isfinite(params)):
            raise LabelsplatError(f"distortion coefficients of model {model} are not finite: {list(params)}")
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "params", params)

    def coefficients(self) -> np.ndarray:
        """The eight OpenCV coefficients (k1, k2, p1, p2, k3, k4, k5, k6)."""
        c = np.zeros(8)
        p = self.params
        if self.model in ("OPENCV", "FULL_OPENCV"):
            c[: len(p)] = p
        elif self.model == "RADIAL":
            c[0], c[1] = p
        elif self.model == "SIMPLE_RADIAL":
            c[0] = p[0]
        return c

    @property
    def is_zero(self) -> bool:
        return not np.any(self.coefficients())

    def to_dict(self) -> dict:
        return {"model": self.model, "params": list(self.params)}


def distort_normalized(x: np.ndarray, y: np.ndarray, dist: Distortion) -> tuple[np.ndarray, np.ndarray]:
    """Apply the forward model to normalised coordinates (any equal shapes)."""
    k1, k2, p1, p2, k3, k4, k5, k6 = dist.coefficients()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort_normalized(
    xd: np.ndarray, yd: np.ndarray, dist: Distortion, *, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`distort_normalized` by Newton iterations (numerical 2x2 Jacobian)."""
    xd = np.asarray(xd, dtype=np.float64)
    yd = np.asarray(yd, dtype=np.float64)
    x, y = xd.copy(), yd.copy()
    eps = 1e-7
    for _ in range(iterations):
        fx, fy = distort_normalized(x, y, dist)
        ex, ey = fx - xd, fy - yd
        if np.max(np.abs(ex), initial=0) < 1e-13 and np.max(np.abs(ey), initial=0) < 1e-13:
            break
        ax, ay = distort_normalized(x + eps, y, dist)
        bx, by = distort_normalized(x, y + eps, dist)
        j11, j21 = (ax - fx) / eps, (ay - fy) / eps
        j12, j22 = (bx - fx) / eps, (by - fy) / eps
        det = j11 * j22 - j12 * j21
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        x = x - (j22 * ex - j12 * ey) / det
        y = y - (-j21 * ex + j11 * ey) / det
    return x, y


def distort_pixels(uv: np.ndarray, K: np.ndarray, dist: Distortion) -> np.ndarray:
    """Pinhole pixel coordinates (N, 2) -> where the distorted camera sees them (N, 2)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    xd, yd = distort_normalized((uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, dist)
    return np.stack([xd * fx + cx, yd * fy + cy], axis=1)


def undistort_pixels(uv: np.ndarray, K: np.ndarray, dist: Distortion) -> np.ndarray:
    """Distorted pixel coordinates (N, 2) -> their pinhole positions (N, 2) (same K)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x, y = undistort_normalized((uv[:, 0] - cx) / fx, (uv[:, 1] - cy) / fy, dist)
    return np.stack([x * fx + cx, y * fy + cy], axis=1)


def undistort_map(K: np.ndarray, dist: Distortion, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Source positions (u, v), each (height, width), for every output pixel centre."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got {K.shape}")
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    src = distort_pixels(np.stack([u.ravel(), v.ravel()], axis=1), K, dist)
    return src[:, 0].reshape(height, width), src[:, 1].reshape(height, width)


def _inside(su: np.ndarray, sv: np.ndarray, width: int, height: int) -> np.ndarray:
    return (su >= 0) & (su < width) & (sv >= 0) & (sv < height) & np.isfinite(su) & np.isfinite(sv)


def remap_bilinear(image: np.ndarray, su: np.ndarray, sv: np.ndarray, fill: float = 0) -> np.ndarray:
    """Sample ``image`` (H, W) or (H, W, C) bilinearly at pixel-centre coordinates (su, sv).

    Returns an array of su's shape (plus channels) and ``image``'s dtype (integers rounded
    and clipped). Positions outside the image get ``fill``.
    """
    from scipy.ndimage import map_coordinates  # lazy: scipy.ndimage (~0.2 s), only for remapping images

    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    h, w = img.shape[:2]
    inside = _inside(su, sv, w, h)
    coords = np.stack([np.nan_to_num(sv) - 0.5, np.nan_to_num(su) - 0.5])
    chans = img[..., None] if img.ndim == 2 else img
    out = np.empty(su.shape + (chans.shape[2],), dtype=np.float64)
    for c in range(chans.shape[2]):
        out[..., c] = map_coordinates(chans[..., c].astype(np.float64), coords, order=1, mode="nearest")
    out[~inside] = fill
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    out = out.astype(img.dtype)
    return out[..., 0] if img.ndim == 2 else out


def remap_nearest(image: np.ndarray, su: np.ndarray, sv: np.ndarray, fill: int = IGNORE_INDEX) -> np.ndarray:
    """Take the pixel containing each position (floor), ``fill`` outside. Values are copied, never mixed."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    inside = _inside(su, sv, w, h)
    iu = np.clip(np.floor(np.nan_to_num(su)).astype(np.int64), 0, w - 1)
    iv = np.clip(np.floor(np.nan_to_num(sv)).astype(np.int64), 0, h - 1)
    out = img[iv, iu]
    out[~inside] = fill
    return out


def _kernel_args(image: np.ndarray, K: np.ndarray, dist: Distortion):
    img = np.ascontiguousarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got {K.shape}")
    img3 = img[..., None] if img.ndim == 2 else img
    return img, img3, (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), dist.coefficients())


def undistort_image(image: np.ndarray, K: np.ndarray, dist: Distortion, *, fill: float = 0) -> np.ndarray:
    """Undistort an image (H, W) or (H, W, C) to the pinhole camera with the same K and size.

    Bilinear sampling at the distorted source position of every output pixel centre (edge
    pixels extended within the image, ``fill`` outside it); integer images are rounded and
    clipped. Compiled kernel; equals ``remap_bilinear(image, *undistort_map(...))`` up to
    rounding ties.
    """
    from ._undistort_kernels import remap_linear  # lazy: numba (~0.3 s), only to undistort

    img, img3, (fx, fy, cx, cy, c) = _kernel_args(image, K, dist)
    out = np.empty_like(img3)
    is_int = bool(np.issubdtype(img.dtype, np.integer))
    lo, hi = (float(np.iinfo(img.dtype).min), float(np.iinfo(img.dtype).max)) if is_int else (0.0, 0.0)
    remap_linear(img3, fx, fy, cx, cy, c, img3.dtype.type(fill), is_int, lo, hi, out)
    return out[..., 0] if img.ndim == 2 else out


def undistort_label(label: np.ndarray, K: np.ndarray, dist: Distortion, *, fill: int = IGNORE_INDEX) -> np.ndarray:
    """Undistort a label map or mask (H, W[, C]) with nearest sampling, so values are never mixed.

    Output pixels whose source lies outside the image get ``fill`` (255 = ignore for labels;
    pass 0 for masks). Equals ``remap_nearest(label, *undistort_map(...))``.
    """
    from ._undistort_kernels import remap_nearest as _kernel  # lazy: numba (~0.3 s), only to undistort

    img, img3, (fx, fy, cx, cy, c) = _kernel_args(label, K, dist)
    out = np.empty_like(img3)
    _kernel(img3, fx, fy, cx, cy, c, img3.dtype.type(fill), out)
    return out[..., 0] if img.ndim == 2 else out
