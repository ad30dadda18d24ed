"""Accumulate a labelling's confusion counts over a set of views, by |yaw| bin, and serialise.

A labelling's record L (docs/design.md) is::

    {"overall": M, "by_yaw": {"0-30": M|None, "30-60": ..., "60-90": ..., "90-180": ...},
     "per_class": {name: {"iou", "f1"}}, "boundary_excluded": {"overall": M, "by_yaw": {...}},
     "confusion": [[int]]}

with M = {"miou", "mean_f1", "pixel_acc", "coverage"}. A yaw bin that counted no GT-valid pixel
is ``null`` (None). Views added without a yaw count only in "overall". Extra keys make pooling
from files exact: ``class_names``, ``num_pixels``, ``num_views``, ``confusion_by_yaw``
({bin: [[int]]}), ``boundary_excluded_confusion`` and ``boundary_excluded_confusion_by_yaw``.
Pooling sums the confusion counts (never averages scores).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..errors import LabelsplatError
from ..scene.camera import YAW_BINS, yaw_bin
from ..schemes import get_scheme
from .metrics import METRIC_KEYS, boundary_exclusion_mask, confusion_matrix, scores_from_confusion

BIN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in YAW_BINS)


def _m(conf: np.ndarray) -> dict | None:
    if int(conf.sum()) == 0:
        return None
    s = scores_from_confusion(conf)
    return {k: s[k] for k in METRIC_KEYS}


class LabellingScores:
    """Accumulator of one labelling's confusion matrices (overall, per yaw bin, boundary-excluded).

    ``add(pred, gt, yaw_deg)`` takes one view (or a batch sharing one yaw); ``to_dict()`` gives
    the record L. ``merge``/``pool`` sum the counts of several accumulators (e.g. scenes).
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, *, boundary_radius: int = 1):
        k = int(num_classes)
        if not 1 <= k <= 255:
            raise LabelsplatError(f"num_classes must be in 1..255, got {num_classes}")
        names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
        if len(names) != k:
            raise LabelsplatError(f"{len(names)} class names for {k} classes")
        self.num_classes = k
        self.class_names = names
        self.boundary_radius = int(boundary_radius)
        zero = lambda: np.zeros((k, k + 1), dtype=np.int64)  # noqa: E731
        self.confusion = zero()
        self.by_yaw = {b: zero() for b in BIN_NAMES}
        self.be_confusion = zero()
        self.be_by_yaw = {b: zero() for b in BIN_NAMES}
        self.num_views = 0

    @classmethod
    def for_scheme(cls, scheme) -> "LabellingScores":
        s = get_scheme(scheme)
        return cls(s.num_classes, s.classes)

    def add(self, pred, gt, yaw_deg: float | None = None, *, valid_mask=None) -> "LabellingScores":
        """Count one view: ``pred``/``gt`` (H, W) or (B, H, W) uint8 ids; ``yaw_deg`` in degrees
        (None: overall only). ``valid_mask`` (True = count) further restricts the pixels."""
        conf = confusion_matrix(pred, gt, self.num_classes, valid_mask=valid_mask)
        g = np.asarray(gt.detach().cpu().numpy() if type(gt).__module__.startswith("torch") else gt)
        keep = ~boundary_exclusion_mask(g, self.boundary_radius)
        if valid_mask is not None:
            keep &= np.asarray(valid_mask).astype(bool)
        be = confusion_matrix(pred, g, self.num_classes, valid_mask=keep)
        self.confusion += conf
        self.be_confusion += be
        if yaw_deg is not None:
            y = float(yaw_deg)
            if not np.isfinite(y):
                raise LabelsplatError(f"yaw must be a finite number of degrees, got {yaw_deg}")
            b = yaw_bin(y)
            self.by_yaw[b] += conf
            self.be_by_yaw[b] += be
        self.num_views += 1
        return self

    # ------------------------------------------------------------------ pooling
    def _check_compatible(self, other: "LabellingScores") -> None:
        if other.num_classes != self.num_classes or other.class_names != self.class_names:
            raise LabelsplatError(
                f"cannot pool labellings with different classes ({self.num_classes}: {self.class_names[:4]}... "
                f"vs {other.num_classes}: {other.class_names[:4]}...)",
                hint="convert the labels to one scheme first (labelsplat labels convert)",
            )

    def merge(self, other: "LabellingScores") -> "LabellingScores":
        """Add ``other``'s counts into this accumulator (in place); returns self."""
        self._check_compatible(other)
        self.confusion += other.confusion
        self.be_confusion += other.be_confusion
        for b in BIN_NAMES:
            self.by_yaw[b] += other.by_yaw[b]
            self.be_by_yaw[b] += other.be_by_yaw[b]
        self.num_views += other.num_views
        return self

    @classmethod
    def pool(cls, items: Iterable["LabellingScores"]) -> "LabellingScores":
        """A new accumulator holding the summed counts of ``items`` (at least one)."""
        items = list(items)
        if not items:
            raise LabelsplatError("nothing to pool: no labelling scores given")
        out = cls(items[0].num_classes, items[0].class_names, boundary_radius=items[0].boundary_radius)
        for it in items:
            out.merge(it)
        return out

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """The record L of docs/design.md plus the exact counts (see the module docstring)."""
        overall = _m(self.confusion)
        if overall is None:
            overall = dict.fromkeys(METRIC_KEYS)
        be_overall = _m(self.be_confusion) or dict.fromkeys(METRIC_KEYS)
        full = scores_from_confusion(self.confusion, self.class_names)
        return {
            "overall": overall,
            "by_yaw": {b: _m(self.by_yaw[b]) for b in BIN_NAMES},
            "per_class": full["per_class"],
            "boundary_excluded": {
                "overall": be_overall,
                "by_yaw": {b: _m(self.be_by_yaw[b]) for b in BIN_NAMES},
                "radius_px": self.boundary_radius,
            },
            "confusion": self.confusion.tolist(),
            "class_names": list(self.class_names),
            "num_pixels": int(self.confusion.sum()),
            "num_views": int(self.num_views),
            "confusion_by_yaw": {b: self.by_yaw[b].tolist() for b in BIN_NAMES},
            "boundary_excluded_confusion": self.be_confusion.tolist(),
            "boundary_excluded_confusion_by_yaw": {b: self.be_by_yaw[b].tolist() for b in BIN_NAMES},
        }

    @classmethod
    def from_dict(cls, d: dict, *, source: str | None = None) -> "LabellingScores":
        """Rebuild the accumulator from a record L written by :meth:`to_dict` (exact counts)."""
        try:
            conf = np.asarray(d["confusion"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelsplatError(f"labelling record lacks a valid 'confusion' matrix ({exc})", path=source) from exc
        if conf.ndim != 2 or conf.shape[1] != conf.shape[0] + 1:
            raise LabelsplatError(f"'confusion' must have shape (K, K+1), got {conf.shape}", path=source)
        k = conf.shape[0]
        out = cls(k, d.get("class_names"), boundary_radius=int((d.get("boundary_excluded") or {}).get("radius_px", 1)))
        out.confusion = conf

        def matrix(value, key):
            m = np.asarray(value, dtype=np.int64)
            if m.shape != (k, k + 1):
                raise LabelsplatError(f"'{key}' must have shape {(k, k + 1)}, got {m.shape}", path=source)
            return m

        missing = [key for key in ("confusion_by_yaw", "boundary_excluded_confusion",
                                   "boundary_excluded_confusion_by_yaw") if key not in d]
        if missing:
            raise LabelsplatError(
                f"labelling record lacks {missing}; it cannot be pooled exactly", path=source,
                hint="re-run the evaluation with this version of labelsplat",
            )
        out.be_confusion = matrix(d["boundary_excluded_confusion"], "boundary_excluded_confusion")
        for b in BIN_NAMES:
            out.by_yaw[b] = matrix(d["confusion_by_yaw"][b], f"confusion_by_yaw.{b}")
            out.be_by_yaw[b] = matrix(d["boundary_excluded_confusion_by_yaw"][b], f"boundary_excluded_confusion_by_yaw.{b}")
        out.num_views = int(d.get("num_views", 0))
        return out
