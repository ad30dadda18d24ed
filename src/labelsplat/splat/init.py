"""Initial Gaussians: a scene point cloud if given, else a visual hull by voting.

Everything here works in the normalised fit frame (see :mod:`.normalize`) with numpy.

Visual hull by voting (:func:`visual_hull`): a voxel grid over ``[-bound, bound]^3``; each
voxel centre is projected into every view; a view *sees* the voxel when it lies in front of
the camera, and votes foreground when the (dilated) mask is set at that pixel -- outside the
image the mask is continued from its nearest border pixel, so a head inside the frame is
carved by every view while a neck cut by the image border is not. A voxel is kept when it
is seen by at least ``min_views`` views and at least ``vote_fraction`` of those vote
foreground -- so one wrong mask (a missing ear) cannot carve away what the other views
agree on, unlike a strict intersection.

Initial Gaussians sit on the hull's surface voxels (kept voxels with an empty
6-neighbour); their colour and label come from the views facing them (:func:`sample_views`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LabelsplatError
from ..io import IGNORE_INDEX
from ..scene import Camera, Scene
from .config import FitConfig
from .normalize import Normalization


@dataclass
class InitPoints:
    """Initial Gaussian centres (N, 3) normalised frame, colours (N, 3) in [0, 1],
    labels (N,) int class ids (-1 = unknown)."""

    means: np.ndarray
    colors: np.ndarray
    labels: np.ndarray
    notes: list[str] = field(default_factory=list)  # what was dropped from a point cloud

    def __post_init__(self) -> None:
        n = len(self.means)
        if self.means.shape != (n, 3) or self.colors.shape != (n, 3) or self.labels.shape != (n,):
            raise ValueError(
                f"InitPoints shapes disagree: means {self.means.shape}, colors {self.colors.shape}, labels {self.labels.shape}"
            )


def foreground_mask(label: np.ndarray | None, mask: np.ndarray | None, dilate_px: int = 0) -> np.ndarray:
    """Foreground (H, W) bool: ``mask`` (> 0) if given, else ``label != 0`` (ignore 255 counts as
    foreground: unknown pixels are not carved away), dilated by ``dilate_px`` pixels (disc)."""
    if mask is not None:
        fg = np.asarray(mask) > 0
    elif label is not None:
        fg = np.asarray(label) != 0
    else:
        raise ValueError("foreground_mask needs a label map or a mask")
    if dilate_px > 0:
        from scipy.ndimage import binary_dilation  # scipy.ndimage: 0.5 s to import, only needed here

        r = int(dilate_px)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        fg = binary_dilation(fg, structure=(xx * xx + yy * yy) <= r * r)
    return fg


def _project(cam: Camera, pts: np.ndarray, *, clamp: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel indices (i, j) and a flag for points (N, 3): in front of the camera and inside the
    image, or with ``clamp`` only in front (indices clamped to the nearest border pixel)."""
    uv, z = cam.project(pts)
    with np.errstate(invalid="ignore"):
        i = np.floor(uv[:, 0])
        j = np.floor(uv[:, 1])
        front = z > 1e-9
        if clamp:
            i = np.clip(np.nan_to_num(i), 0, cam.width - 1)
            j = np.clip(np.nan_to_num(j), 0, cam.height - 1)
            ok = front
        else:
            ok = front & (i >= 0) & (i < cam.width) & (j >= 0) & (j < cam.height)
    i = np.where(ok, i, 0).astype(np.int64)
    j = np.where(ok, j, 0).astype(np.int64)
    return i, j, ok


def voxel_centers(resolution: int, bound: float) -> np.ndarray:
    """Centres (R, R, R, 3) of a regular grid over [-bound, bound]^3 (index order x, y, z)."""
    t = (np.arange(resolution) + 0.5) / resolution * 2 * bound - bound
    return np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1)


def visual_hull(
    cameras: list[Camera],
    masks: list[np.ndarray],
    *,
    resolution: int = 40,
    bound: float = 1.8,
    vote_fraction: float = 0.75,
    min_views: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Voting visual hull. Returns ``(occupied (R, R, R) bool, centres (R, R, R, 3))``.

    ``cameras`` in the normalised frame, ``masks[i]`` (H_i, W_i) bool foreground of camera i.
    """
    if len(cameras) != len(masks):
        raise ValueError(f"{len(cameras)} cameras but {len(masks)} masks")
    centres = voxel_centers(resolution, bound)
    pts = centres.reshape(-1, 3)
    seen = np.zeros(len(pts), dtype=np.int32)
    votes = np.zeros(len(pts), dtype=np.int32)
    for cam, m in zip(cameras, masks):
        m = np.asarray(m, dtype=bool)
        if m.shape != (cam.height, cam.width):
            raise ValueError(f"mask shape {m.shape} differs from camera size {cam.height}x{cam.width}")
        i, j, ok = _project(cam, pts, clamp=True)
        seen += ok
        votes += ok & m[j, i]
    keep = (seen >= min_views) & (votes >= vote_fraction * seen)
    return keep.reshape(centres.shape[:3]), centres


def surface_voxels(occupied: np.ndarray) -> np.ndarray:
    """Occupied voxels with at least one empty 6-neighbour (grid borders count as empty)."""
    occ = np.pad(occupied, 1, constant_values=False)
    inner = occ[1:-1, 1:-1, 1:-1]
    all_n = (
        occ[:-2, 1:-1, 1:-1] & occ[2:, 1:-1, 1:-1] & occ[1:-1, :-2, 1:-1]
        & occ[1:-1, 2:, 1:-1] & occ[1:-1, 1:-1, :-2] & occ[1:-1, 1:-1, 2:]
    )
    return inner & ~all_n


def sample_views(
    points: np.ndarray,
    cameras: list[Camera],
    images: list[np.ndarray],
    labels: list[np.ndarray] | None,
    num_classes: int,
    *,
    best_views: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Colour (N, 3) in [0, 1] and majority label (N,) (-1 = none) for points (N, 3).

    Without a depth test, each point uses the ``best_views`` views that face it most
    directly (camera direction against the outward direction from the origin), which
    avoids reading a point on the back of the head from a frontal view.
    ``images[i]`` (H, W, 3) float in [0, 1] or uint8; ``labels[i]`` (H, W) uint8 ids.
    """
    n = len(points)
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    normals = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-9)
    scores = np.full((len(cameras), n), -np.inf)
    cols = np.zeros((len(cameras), n, 3))
    labs = np.full((len(cameras), n), -1, dtype=np.int64)
    for c, cam in enumerate(cameras):
        i, j, ok = _project(cam, points)
        to_cam = cam.center[None] - points
        to_cam /= np.maximum(np.linalg.norm(to_cam, axis=1, keepdims=True), 1e-9)
        scores[c] = np.where(ok, (to_cam * normals).sum(1), -np.inf)
        img = np.asarray(images[c])
        img = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
        cols[c] = img[j, i]
        if labels is not None:
            lab = np.asarray(labels[c]).astype(np.int64)[j, i]
            labs[c] = np.where(ok & (lab != IGNORE_INDEX) & (lab < max(num_classes, 1)), lab, -1)
    k = max(1, min(best_views, len(cameras)))
    order = np.argsort(-scores, axis=0, kind="stable")[:k]  # (k, N)
    idx = np.arange(n)
    valid = np.isfinite(scores[order, idx])  # (k, N)
    w = valid.astype(np.float64)
    colors = (cols[order, idx] * w[..., None]).sum(0) / np.maximum(w.sum(0), 1)[:, None]
    colors[w.sum(0) == 0] = 0.5
    out_labels = np.full(n, -1, dtype=np.int64)
    if labels is not None and num_classes > 0:
        sel = labs[order, idx]  # (k, N)
        sel = np.where(valid, sel, -1)
        counts = np.zeros((n, num_classes), dtype=np.int64)
        for r in range(k):
            good = sel[r] >= 0
            np.add.at(counts, (idx[good], sel[r][good]), 1)
        has = counts.sum(1) > 0
        out_labels[has] = counts[has].argmax(1)
    return np.clip(colors, 0.0, 1.0), out_labels


def hull_points(
    cameras: list[Camera],
    masks: list[np.ndarray],
    images: list[np.ndarray],
    labels: list[np.ndarray] | None,
    num_classes: int,
    *,
    resolution: int = 40,
    bound: float = 1.8,
    vote_fraction: float = 0.75,
    min_views: int = 2,
    max_points: int = 4000,
    seed: int = 0,
) -> InitPoints:
    """Initial points on the surface of the voting visual hull (normalised frame).

    Raises :class:`LabelsplatError` when the hull is empty (masks and cameras disagree).
    Points are jittered inside their voxel and subsampled to ``max_points`` (seeded).
    """
    occ, centres = visual_hull(
        cameras, masks, resolution=resolution, bound=bound, vote_fraction=vote_fraction, min_views=min_views
    )
    surf = surface_voxels(occ)
    pts = centres[surf]
    if len(pts) == 0:
        raise LabelsplatError(
            "the visual hull is empty: no voxel is foreground in enough views",
            hint="check the cameras (transform_matrix convention: camera-to-world, OpenGL) and the masks/labels",
        )
    rng = np.random.default_rng(seed)
    if len(pts) > max_points:
        pts = pts[np.sort(rng.choice(len(pts), size=max_points, replace=False))]
    voxel = 2 * bound / resolution
    pts = pts + rng.uniform(-0.5, 0.5, size=pts.shape) * voxel
    colors, labs = sample_views(pts, cameras, images, labels, num_classes)
    return InitPoints(pts, colors, labs)


def read_point_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PLY point cloud: positions (N, 3) in scene units and colours (N, 3) in [0, 1] or None."""
    from plyfile import PlyData  # plyfile: only needed when a scene has a point cloud

    path = Path(path)
    if not path.is_file():
        raise LabelsplatError("point cloud (ply_file_path) not found", path=path)
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"]
    except Exception as exc:  # plyfile raises several types for malformed files
        raise LabelsplatError(f"cannot read the point cloud ({exc})", path=path) from exc
    names = v.data.dtype.names or ()
    if not all(k in names for k in ("x", "y", "z")):
        raise LabelsplatError("the point cloud has no x, y, z vertex properties", path=path)
    pts = np.stack([np.asarray(v[k], dtype=np.float64) for k in ("x", "y", "z")], axis=1)
    if len(pts) == 0:
        raise LabelsplatError("the point cloud has no points", path=path)
    cols = None
    if all(k in names for k in ("red", "green", "blue")):
        cols = np.stack([np.asarray(v[k], dtype=np.float64) for k in ("red", "green", "blue")], axis=1)
        cols = cols / 255.0 if cols.max(initial=0) > 1.0 else cols
    return pts, cols


#: Points with NaN/infinite coordinates: dropped up to this share of the cloud, refused above it.
MAX_NON_FINITE_FRACTION = 0.10
#: Points farther from the cloud's median than this many times its median distance are dropped.
OUTLIER_SPREADS = 10.0


def clean_point_cloud(pts: np.ndarray, cols: np.ndarray | None,
                      path: str | Path) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """(points, colours, note): non-finite points dropped (refused above
    :data:`MAX_NON_FINITE_FRACTION` of the cloud) and far outliers (beyond :data:`OUTLIER_SPREADS`
    times the robust spread, the median distance to the median point) dropped; the note counts them."""
    n = len(pts)
    finite = np.isfinite(pts).all(axis=1)
    n_bad = int((~finite).sum())
    if n_bad > MAX_NON_FINITE_FRACTION * n:
        raise LabelsplatError(f"{n_bad} of {n} points of the point cloud have NaN/infinite coordinates "
                              f"(more than {MAX_NON_FINITE_FRACTION:.0%})", path=path,
                              hint="export the point cloud again, or remove ply_file_path to start from the views")
    dist = np.full(n, np.inf)
    centre = np.median(pts[finite], axis=0)
    dist[finite] = np.linalg.norm(pts[finite] - centre, axis=1)
    spread = float(np.median(dist[finite]))
    keep = finite & (dist <= OUTLIER_SPREADS * spread) if spread > 0 else finite
    n_far = int((finite & ~keep).sum())
    if not (n_bad or n_far):
        return pts, cols, None
    note = (f"point cloud {Path(path).name}: dropped {n_bad} point(s) with NaN/infinite coordinates and {n_far} far "
            f"outlier(s) (beyond {OUTLIER_SPREADS:g}x the cloud's robust spread) of {n}")
    return pts[keep], None if cols is None else cols[keep], note


def hull_min_views(cfg: FitConfig, n_views: int) -> int:
    """Views that must see a voxel for it to be kept: ``cfg.hull_min_views`` or half the views (>= 2)."""
    if cfg.hull_min_views is not None:
        return max(1, min(int(cfg.hull_min_views), n_views))
    return max(min(2, n_views), math.ceil(n_views / 2))


def initial_points(scene: Scene, cameras: list[Camera], images: list[np.ndarray], labels: list[np.ndarray] | None,
                   masks: list[np.ndarray], norm: Normalization, cfg: FitConfig,
                   num_classes: int) -> tuple[InitPoints, str]:
    """(initial points in the normalised frame, their source) for a fit: the scene's point cloud
    (subsampled to ``cfg.init_max_points``, seeded) or the voting visual hull of the views
    (``cameras`` in the normalised frame, base resolution)."""
    if scene.ply_file_path:
        pts, cols, note = clean_point_cloud(*read_point_cloud(scene.path(scene.ply_file_path)),
                                            scene.path(scene.ply_file_path))
        pts_n = norm.to_norm(pts)
        rng = np.random.default_rng(cfg.seed)
        if len(pts_n) > cfg.init_max_points:
            keep = np.sort(rng.choice(len(pts_n), cfg.init_max_points, replace=False))
            pts_n = pts_n[keep]
            cols = None if cols is None else cols[keep]
        c2, labs = sample_views(pts_n, cameras, images, labels, num_classes)
        if cols is not None and len(cols) == len(pts_n):
            c2 = cols
        return InitPoints(pts_n, c2, labs, [note] if note else []), f"point cloud {scene.ply_file_path}"
    init = hull_points(
        cameras, masks, images, labels, num_classes, resolution=cfg.hull_resolution, bound=cfg.hull_bound,
        vote_fraction=cfg.hull_vote_fraction, min_views=hull_min_views(cfg, len(cameras)),
        max_points=cfg.init_max_points, seed=cfg.seed,
    )
    return init, "visual hull"
