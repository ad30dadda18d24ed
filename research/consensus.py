"""Consensus relabelling of input label maps through depth (a fitted model's rendered depth).

Every input view's label map is replaced by a per-pixel vote of ALL views that see the same
surface point:

1. each pixel centre (col + 0.5, row + 0.5) of view i with a valid depth (camera z > 0, finite;
   scene units, OpenCV camera axes) is lifted to 3D
   (:func:`labelsplat.scene.reproject.lift_pixels`, the same lifting as
   ``multiview_consistency``);
2. the 3D point is projected into every view j, view i itself included, and counts as visible in
   j when it lands inside j's image in front of the camera and ``|depth_j[pixel] - z_j| <=
   depth_tolerance * z_j`` (relative depth agreement: an occluded point lands on a nearer
   surface and does not vote) (:func:`labelsplat.scene.reproject.visible_pixels`);
3. where visible, j's label at the pixel it lands on (floor of the projection: pixel (c, r)
   covers [c, c+1) x [r, r+1)) is one vote. Label 255 (ignore) never votes;
4. the fused label is the argmax of the vote counts, each vote multiplied by
   ``class_weights[label]`` when given. Ties go to the view's own label when it is among the
   best, else to the lowest class id. Pixels with fewer than ``min_votes`` votes, and pixels
   without a valid depth, keep their own label (255 included); with ``no_depth_label`` set,
   pixels without a valid depth take that label instead.

A pixel's own label votes for itself (it reprojects onto itself in its own view), so with
consistent labels the output equals the input (up to pixels whose reprojection straddles a
label boundary). ``stride`` > 1 trades accuracy for speed: votes are gathered only at every
``stride``-th pixel (rows and columns 0, s, 2s, ...) and every other pixel with a valid depth
uses the votes of the grid pixel at the top-left of its s x s block (its own label still breaks
ties); where that grid pixel has no depth the pixel keeps its own label.

Pure numpy, one vectorised pass per (view, target) pair: 32 views x 256^2 px x 32 targets take
a few seconds on one core.
"""

from __future__ import annotations

import time

import numpy as np

from labelsplat.errors import LabelsplatError
from labelsplat.io import IGNORE_INDEX
from labelsplat.scene import Camera
from labelsplat.scene.reproject import lift_pixels, visible_pixels

__all__ = ["consensus_labels"]


def _check_inputs(labels, depths, cameras, num_classes, depth_tolerance, class_weights, min_votes, stride,
                  no_depth_label):
    n = len(cameras)
    if n == 0:
        raise LabelsplatError("consensus_labels needs at least one view")
    if len(labels) != n or len(depths) != n:
        raise LabelsplatError(f"consensus_labels needs one label map and one depth map per camera: "
                              f"{len(labels)} label maps, {len(depths)} depth maps, {n} cameras")
    K = int(num_classes)
    if not 1 <= K < IGNORE_INDEX:
        raise LabelsplatError(f"num_classes must be in [1, {IGNORE_INDEX}), got {num_classes}")
    if not (np.isfinite(depth_tolerance) and depth_tolerance > 0):
        raise LabelsplatError(f"depth_tolerance must be a positive relative tolerance, got {depth_tolerance}")
    if int(min_votes) != min_votes or min_votes < 1:
        raise LabelsplatError(f"min_votes must be an integer >= 1, got {min_votes}")
    if int(stride) != stride or stride < 1:
        raise LabelsplatError(f"stride must be an integer >= 1, got {stride}")
    if no_depth_label is not None and not (0 <= int(no_depth_label) < K or int(no_depth_label) == IGNORE_INDEX):
        raise LabelsplatError(f"no_depth_label must be a class id in [0, {K}) or {IGNORE_INDEX}, got {no_depth_label}")
    w = None
    if class_weights is not None:
        w = np.asarray(class_weights, dtype=np.float64)
        if w.shape != (K,) or not np.all(np.isfinite(w)) or not np.all(w > 0):
            raise LabelsplatError(f"class_weights must be {K} positive finite numbers, got shape {w.shape}")
    labs, deps = [], []
    for i, (lab, dep, cam) in enumerate(zip(labels, depths, cameras)):
        if not isinstance(cam, Camera):
            raise LabelsplatError(f"view {i}: expected a labelsplat.scene.Camera, got {type(cam).__name__}")
        lab = np.asarray(lab)
        dep = np.asarray(dep)
        shape = (cam.height, cam.width)
        if lab.shape != shape or dep.shape != shape:
            raise LabelsplatError(f"view {i}: labels {lab.shape} and depth {dep.shape} must both be (H, W) = {shape} "
                                  "(the camera's size)")
        if not np.issubdtype(lab.dtype, np.integer):
            raise LabelsplatError(f"view {i}: labels must be an integer array (class ids), got {lab.dtype}")
        if not np.issubdtype(dep.dtype, np.floating):
            raise LabelsplatError(f"view {i}: depth must be a float array (camera z, scene units), got {dep.dtype}")
        bad = (lab != IGNORE_INDEX) & ((lab < 0) | (lab >= K))
        if bad.any():
            raise LabelsplatError(f"view {i}: label ids must be in [0, {K}) or {IGNORE_INDEX}, "
                                  f"got {np.unique(lab[bad])[:5].tolist()}")
        labs.append(lab.astype(np.int64))
        deps.append(dep.astype(np.float64))
    return labs, deps, K, w


def consensus_labels(
    labels: list[np.ndarray],
    depths: list[np.ndarray],
    cameras: list[Camera],
    num_classes: int,
    *,
    depth_tolerance: float = 0.02,
    class_weights=None,
    min_votes: int = 1,
    stride: int = 1,
    no_depth_label: int | None = None,
) -> tuple[list[np.ndarray], dict]:
    """Fuse label maps of several views by a per-surface-point vote through depth (module docstring).

    ``labels``: per view (H, W) integer class ids in [0, num_classes) or 255 (ignore);
    ``depths``: per view (H, W) float camera-space z in scene units (<= 0 or non-finite = no
    surface; e.g. a fitted model's rendered depth where its alpha is high enough, else 0);
    ``cameras``: the views' :class:`~labelsplat.scene.Camera` (sizes must match the maps);
    ``depth_tolerance``: relative depth agreement for visibility; ``class_weights`` (K,) > 0:
    each vote for class k counts ``class_weights[k]``; ``min_votes``: fewer valid votes -> keep
    the own label; ``stride``: vote at every ``stride``-th pixel only (faster, coarser);
    ``no_depth_label``: label of pixels without depth (None = keep their own).

    Returns (fused label maps, one (H, W) uint8 per view; stats dict with per-view and total
    counts: ``lifted`` pixels, ``changed`` pixels, ``mean_votes`` per lifted pixel,
    ``no_depth`` pixels, ``seconds``).
    """
    t0 = time.perf_counter()
    labs, deps, K, w = _check_inputs(labels, depths, cameras, num_classes, depth_tolerance, class_weights, min_votes,
                                     stride, no_depth_label)
    s = int(stride)
    fused_all: list[np.ndarray] = []
    per_view = []
    for i, cam_i in enumerate(cameras):
        lab_i = labs[i]
        H, W = lab_i.shape
        has_depth = np.isfinite(deps[i]) & (deps[i] > 0)
        out = lab_i.copy()
        if no_depth_label is not None:
            out[~has_depth] = int(no_depth_label)
        lifted = lift_pixels(deps[i], cam_i, stride=s)
        n = int(lifted.rows.size)
        n_votes_total = 0
        changed = 0
        if n > 0:
            codes = []
            for j, cam_j in enumerate(cameras):
                rp = visible_pixels(lifted.world, cam_j, deps[j], depth_tolerance)
                if rp.idx.size == 0:
                    continue
                lj = labs[j][rp.rows, rp.cols]
                keep = lj != IGNORE_INDEX
                codes.append(rp.idx[keep] * K + lj[keep])
            counts = (np.bincount(np.concatenate(codes), minlength=n * K).reshape(n, K) if codes
                      else np.zeros((n, K), dtype=np.int64))
            n_votes = counts.sum(axis=1)
            n_votes_total = int(n_votes.sum())
            scores = counts * w[None, :] if w is not None else counts
            # the grid cell of every pixel with depth: the grid pixel at the top-left of its s x s block
            Wg = (W + s - 1) // s
            grid_of = np.full((H + s - 1) // s * Wg, -1, dtype=np.int64)
            grid_of[(lifted.rows // s) * Wg + lifted.cols // s] = np.arange(n)
            rr, cc = np.nonzero(has_depth)
            g = grid_of[(rr // s) * Wg + cc // s]
            ok = g >= 0
            rr, cc, g = rr[ok], cc[ok], g[ok]
            ok = n_votes[g] >= min_votes
            rr, cc, g = rr[ok], cc[ok], g[ok]
            sc = scores[g]
            best = np.argmax(sc, axis=1)
            best_v = sc[np.arange(g.size), best]
            own = lab_i[rr, cc]
            own_ok = own != IGNORE_INDEX
            own_v = np.where(own_ok, sc[np.arange(g.size), np.where(own_ok, own, 0)], -np.inf)
            new = np.where(own_ok & (own_v >= best_v), own, best)
            out[rr, cc] = new
            changed = int((new != own).sum())
        fused_all.append(out.astype(np.uint8))
        per_view.append({"lifted": n, "changed": changed, "mean_votes": (n_votes_total / n) if n else None,
                         "no_depth": int((~has_depth).sum())})
    total_lifted = sum(v["lifted"] for v in per_view)
    stats = {
        "views": len(cameras), "num_classes": K, "depth_tolerance": float(depth_tolerance), "min_votes": int(min_votes),
        "stride": s, "class_weighted": w is not None, "no_depth_label": no_depth_label,
        "lifted": total_lifted, "changed": sum(v["changed"] for v in per_view),
        "no_depth": sum(v["no_depth"] for v in per_view),
        "mean_votes": (sum((v["mean_votes"] or 0.0) * v["lifted"] for v in per_view) / total_lifted) if total_lifted else None,
        "per_view": per_view, "seconds": time.perf_counter() - t0,
    }
    return fused_all, stats
