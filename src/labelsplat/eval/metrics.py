"""Labelling metrics (docs/design.md "Metrics"): one implementation used everywhere.

Conventions:

- A confusion matrix has shape (K, K+1): rows are the GT class, columns the predicted class,
  the last column counts pixels predicted 255 (abstained). Abstentions are wrong answers, so
  abstaining never raises a score; coverage reports them separately.
- GT pixels equal to 255 are skipped. GT ids >= K (other than 255) and predicted ids >= K (other
  than 255) are errors.
- Matrices are accumulated (summed) over a whole set; scores are computed once from the sum,
  never averaged over images.
- Per class c: TP = C[c, c], FN = row sum - TP (abstentions included), FP = column sum - TP;
  IoU = TP / (TP + FP + FN), F1 = 2TP / (2TP + FP + FN); undefined (0/0) -> None.
- mIoU averages IoU over classes present in GT (row sum > 0); mean F1 averages F1 over
  classes present in GT excluding background (class 0, FaRL convention). pixel_acc = correct /
  GT-valid pixels; coverage = non-255 predictions / GT-valid pixels. All values are in [0, 1]
  or None when undefined (no GT pixels, or no non-background class for mean F1).
"""

from __future__ import annotations

import numpy as np

from ..errors import LabelsplatError

IGNORE_INDEX = 255
METRIC_KEYS = ("miou", "mean_f1", "pixel_acc", "coverage")


def _as_ids(arr, what: str) -> np.ndarray:
    if type(arr).__module__.startswith("torch"):
        arr = arr.detach().cpu().numpy()
    a = np.asarray(arr)
    if a.dtype.kind not in "iu":
        raise LabelsplatError(f"{what} must hold integer class ids, got dtype {a.dtype}")
    return a


def confusion_matrix(pred, gt, num_classes: int, *, valid_mask=None) -> np.ndarray:
    """Confusion counts (K, K+1) int64 of ``pred`` against ``gt`` (same shape, any dims).

    ``valid_mask`` (bool, same shape) restricts the pixels counted (True = count).
    """
    k = int(num_classes)
    if not 1 <= k <= 255:
        raise LabelsplatError(f"num_classes must be in 1..255, got {num_classes}")
    p, g = _as_ids(pred, "prediction"), _as_ids(gt, "ground truth")
    if p.shape != g.shape:
        raise LabelsplatError(f"prediction shape {p.shape} differs from ground-truth shape {g.shape}")
    keep = g != IGNORE_INDEX
    if valid_mask is not None:
        m = np.asarray(valid_mask)
        if m.shape != g.shape:
            raise LabelsplatError(f"valid_mask shape {m.shape} differs from ground-truth shape {g.shape}")
        keep &= m.astype(bool)
    gk, pk = g[keep].astype(np.int64), p[keep].astype(np.int64)
    if gk.size and (gk.min() < 0 or gk.max() >= k):
        bad = np.unique(gk[(gk < 0) | (gk >= k)])[:10].tolist()
        raise LabelsplatError(f"ground truth holds ids {bad} outside {k} classes (255 = ignore)")
    bad_p = (pk < 0) | ((pk >= k) & (pk != IGNORE_INDEX))
    if bad_p.any():
        bad = np.unique(pk[bad_p])[:10].tolist()
        raise LabelsplatError(f"prediction holds ids {bad} outside {k} classes (255 = abstain)")
    pk = np.where(pk == IGNORE_INDEX, k, pk)
    counts = np.bincount(gk * (k + 1) + pk, minlength=k * (k + 1))
    return counts.reshape(k, k + 1).astype(np.int64)


def _check_conf(conf) -> np.ndarray:
    c = np.asarray(conf)
    if c.ndim != 2 or c.shape[1] != c.shape[0] + 1 or c.shape[0] < 1:
        raise LabelsplatError(f"a confusion matrix must have shape (K, K+1), got {c.shape}")
    if c.dtype.kind not in "iu":
        if not np.all(np.equal(np.mod(c, 1), 0)):
            raise LabelsplatError("a confusion matrix must hold integer counts")
    c = c.astype(np.int64)
    if (c < 0).any():
        raise LabelsplatError("a confusion matrix must hold non-negative counts")
    return c


def per_class_scores(conf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(iou, f1, present) arrays of length K from a (K, K+1) matrix; undefined scores are NaN."""
    c = _check_conf(conf)
    k = c.shape[0]
    tp = np.diag(c[:, :k]).astype(np.float64)
    rows = c.sum(axis=1).astype(np.float64)
    cols = c[:, :k].sum(axis=0).astype(np.float64)
    fn, fp = rows - tp, cols - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return iou, f1, rows > 0


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(min(1.0, max(0.0, x)))


def scores_from_confusion(conf, class_names: list[str] | tuple[str, ...] | None = None) -> dict:
    """M = {"miou", "mean_f1", "pixel_acc", "coverage"} plus "per_class" {name: {"iou", "f1"}}.

    Values are floats in [0, 1] or None when undefined (see module docstring). ``class_names``
    defaults to the class indices as strings.
    """
    c = _check_conf(conf)
    k = c.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else list(class_names)
    if len(names) != k:
        raise LabelsplatError(f"{len(names)} class names for a {k}-class confusion matrix")
    iou, f1, present = per_class_scores(c)
    total = int(c.sum())
    if total == 0:
        m = dict.fromkeys(METRIC_KEYS)
    else:
        non_bg = present.copy()
        non_bg[0] = False
        m = {
            "miou": _num(float(np.nanmean(iou[present]))),
            "mean_f1": _num(float(np.nanmean(f1[non_bg]))) if non_bg.any() else None,
            "pixel_acc": _num(np.trace(c[:, :k]) / total),
            "coverage": _num(1.0 - c[:, k].sum() / total),
        }
    m["per_class"] = {n: {"iou": _num(iou[i]), "f1": _num(f1[i])} for i, n in enumerate(names)}
    return m


def summary_scores(conf) -> dict | None:
    """Just M (the four docs/design.md keys) from a matrix, or None when it counts no pixel."""
    c = _check_conf(conf)
    if int(c.sum()) == 0:
        return None
    m = scores_from_confusion(c)
    return {key: m[key] for key in METRIC_KEYS}


def boundary_exclusion_mask(gt, radius: int = 1) -> np.ndarray:
    """Bool mask, True for pixels within ``radius`` px (Chebyshev, i.e. 8-neighbourhood for 1) of
    a GT label change. ``gt`` is (H, W) or (B, H, W) (each image separately); the image border is
    not a boundary; a change to/from 255 counts as a boundary. The boundary-excluded metrics
    count only pixels where this mask is False.
    """
    from scipy import ndimage  # lazy: scipy.ndimage (~0.2 s), only for boundary exclusion

    g = _as_ids(gt, "ground truth")
    if g.ndim not in (2, 3):
        raise LabelsplatError(f"boundary_exclusion_mask expects (H, W) or (B, H, W), got shape {g.shape}")
    r = int(radius)
    if r < 0:
        raise LabelsplatError(f"radius must be >= 0, got {radius}")
    if r == 0 or g.size == 0:
        return np.zeros(g.shape, dtype=bool)
    size = (2 * r + 1, 2 * r + 1) if g.ndim == 2 else (1, 2 * r + 1, 2 * r + 1)
    g = g.astype(np.int16)
    hi = ndimage.maximum_filter(g, size=size, mode="nearest")
    lo = ndimage.minimum_filter(g, size=size, mode="nearest")
    return hi != lo
