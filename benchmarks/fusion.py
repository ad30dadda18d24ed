"""Fusion of a synthetic head's input labels on its exact mesh: one label per triangle.

Every labelled pixel of every input view votes for its label on the mesh triangle under it (the
synthetic scene's own rasteriser gives the triangle ids); each triangle takes a vote rule's winner;
triangles no view sees take their nearest seen neighbour's label. No fit, no ground truth: this is
what fusing the input labels can reach with exact correspondences (``benchmarks.consensus_bound``
scores the rules, ``benchmarks.refine_quality --fusion-bound`` fits their result like any scene).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelsplat.errors import LabelsplatError
from labelsplat.io import IGNORE_INDEX

VOTE_RULES = ("pixel_majority", "view_majority", "class_weighted", "tuned_upper", "tuned_shared", "tuned_cross")


@dataclass
class VoteTable:
    """Per-triangle class votes of a set of labelled views.

    pixel (F, K) int64: number of input pixels on triangle f labelled k (255 and no-triangle pixels
    skipped); view (F, K) float64: sum over views of the view's normalised histogram on f (each view
    that has >= 1 valid pixel on f adds a distribution summing to 1); n_views (F,) int64: how many
    views voted on f.
    """

    pixel: np.ndarray
    view: np.ndarray
    n_views: np.ndarray

    @property
    def num_triangles(self) -> int:
        return int(self.pixel.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.pixel.shape[1])

    @property
    def seen(self) -> np.ndarray:
        """(F,) bool: the triangle got at least one valid vote."""
        return self.n_views > 0


def accumulate_votes(tri_ids, labels, num_triangles: int, num_classes: int) -> VoteTable:
    """Per-triangle votes of views: ``tri_ids`` and ``labels`` are sequences of (H, W) arrays (one
    pair per view, sizes may differ between views); tri_id -1 = no triangle (skipped), label 255 =
    ignore (skipped), other labels must be in [0, num_classes)."""
    F, K = int(num_triangles), int(num_classes)
    if F <= 0 or K <= 0:
        raise LabelsplatError(f"need num_triangles > 0 and num_classes > 0, got {F}, {K}")
    if len(tri_ids) != len(labels):
        raise LabelsplatError(f"{len(tri_ids)} triangle-id maps for {len(labels)} label maps")
    pixel = np.zeros(F * K, dtype=np.int64)
    view = np.zeros((F, K), dtype=np.float64)
    n_views = np.zeros(F, dtype=np.int64)
    for v, (tri, lab) in enumerate(zip(tri_ids, labels)):
        tri = np.asarray(tri)
        lab = np.asarray(lab)
        if tri.shape != lab.shape or tri.ndim != 2:
            raise LabelsplatError(f"view {v}: triangle ids {tri.shape} and labels {lab.shape} must be the same (H, W)")
        if not np.issubdtype(tri.dtype, np.integer) or not np.issubdtype(lab.dtype, np.integer):
            raise LabelsplatError(f"view {v}: triangle ids and labels must be integer arrays")
        if tri.size and (tri.min() < -1 or tri.max() >= F):
            raise LabelsplatError(f"view {v}: triangle ids must be in [-1, {F}), got {tri.min()}..{tri.max()}")
        bad = (lab != IGNORE_INDEX) & ((lab < 0) | (lab >= K))
        if bad.any():
            raise LabelsplatError(f"view {v}: label ids must be in [0, {K}) or {IGNORE_INDEX}, "
                                  f"got {np.unique(lab[bad])[:5].tolist()}")
        keep = (tri >= 0) & (lab != IGNORE_INDEX)
        t = tri[keep].astype(np.int64)
        code = t * K + lab[keep].astype(np.int64)
        counts = np.bincount(code, minlength=F * K)
        pixel += counts
        # this view's normalised histogram on each triangle it voted on
        hit = np.unique(code)
        ht, hk = hit // K, hit % K
        n = np.bincount(t, minlength=F)
        view[ht, hk] += counts[hit] / n[ht]
        n_views += n > 0
    return VoteTable(pixel=pixel.reshape(F, K), view=view, n_views=n_views)


def rule_scores(table: VoteTable, rule: str, class_weights=None) -> np.ndarray:
    """(F, K) float64 scores whose row argmax is the rule's label. ``pixel_majority`` / ``view_majority``
    ignore ``class_weights``; ``weighted`` (and ``class_weighted`` / ``tuned_*``) multiply the pixel
    counts by ``class_weights`` (K,) > 0."""
    if rule == "pixel_majority":
        return table.pixel.astype(np.float64)
    if rule == "view_majority":
        return table.view.copy()
    if rule in ("weighted", "class_weighted", "tuned_upper", "tuned_shared", "tuned_cross"):
        if class_weights is None:
            raise LabelsplatError(f"vote rule {rule!r} needs class_weights")
        w = np.asarray(class_weights, dtype=np.float64)
        if w.shape != (table.num_classes,) or not np.all(w > 0):
            raise LabelsplatError(f"class_weights must be {table.num_classes} positive numbers, got shape {w.shape}")
        return table.pixel * w[None, :]
    raise LabelsplatError(f"unknown vote rule {rule!r}", hint=f"choose one of {', '.join(VOTE_RULES)}")


def nearest_seen_source(centroids: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(F,) int64: f itself where ``seen[f]``, else the seen triangle whose centroid is nearest to f's
    (Euclidean, scene units). ``centroids`` (F, 3)."""
    from scipy.spatial import cKDTree

    c = np.asarray(centroids, dtype=np.float64)
    s = np.asarray(seen, dtype=bool)
    if c.ndim != 2 or c.shape[1] != 3 or s.shape != (c.shape[0],):
        raise LabelsplatError(f"centroids must be (F, 3) and seen (F,), got {c.shape} and {s.shape}")
    if not s.any():
        raise LabelsplatError("no triangle got a vote: the input views see none of the mesh")
    src = np.arange(len(c), dtype=np.int64)
    if (~s).any():
        idx_seen = np.flatnonzero(s)
        _, j = cKDTree(c[idx_seen]).query(c[~s])
        src[~s] = idx_seen[j]
    return src


def triangle_labels(scores: np.ndarray, src: np.ndarray) -> np.ndarray:
    """(F,) uint8 labels: row argmax of ``scores`` (ties -> lowest class id), unseen rows take their
    ``src`` (from :func:`nearest_seen_source`) triangle's label."""
    return np.argmax(scores, axis=1).astype(np.uint8)[src]


def render_triangle_labels(tri_id: np.ndarray, tri_labels: np.ndarray, background: int = 0) -> np.ndarray:
    """Label images (..., H, W) uint8: ``tri_labels[tri_id]`` where tri_id >= 0, ``background`` elsewhere."""
    tri = np.asarray(tri_id)
    out = np.full(tri.shape, background, dtype=np.uint8)
    fg = tri >= 0
    out[fg] = np.asarray(tri_labels, dtype=np.uint8)[tri[fg]]
    return out


def fused_label_maps(scene, rule: str = "pixel_majority") -> list[np.ndarray]:
    """The scene's input labels fused per triangle of its synthetic mesh by ``rule`` (no class
    weights), rendered back at its input cameras (background off the mesh): one uint8 map per frame."""
    from labelsplat.io import read_label
    from labelsplat.schemes import get_scheme
    from labelsplat.synth import build_head, load_head
    from labelsplat.synth.render import rasterize_head

    scheme = get_scheme(scene.label_scheme)
    mesh = build_head(load_head(scene.root))
    tris = [rasterize_head(mesh, fr.camera)[0] for fr in scene.frames]
    labels = [read_label(scene.path(fr.label_path), scheme.num_classes, shape=t.shape)
              for fr, t in zip(scene.frames, tris)]
    table = accumulate_votes(tris, labels, len(mesh.faces), scheme.num_classes)
    src = nearest_seen_source(mesh.vertices[mesh.faces].mean(axis=1), table.seen)
    tl = triangle_labels(rule_scores(table, rule), src)
    return [render_triangle_labels(t, tl, scheme.index("background")) for t in tris]


__all__ = ["VOTE_RULES", "VoteTable", "accumulate_votes", "fused_label_maps", "nearest_seen_source",
           "render_triangle_labels", "rule_scores", "triangle_labels"]
