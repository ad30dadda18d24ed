"""Labelling metrics (docs/design.md "Metrics"): confusion matrices over a whole set, per-class IoU/F1,
mIoU / mean F1 over classes present in GT, coverage, boundary-excluded variant, |yaw| bins, and
the ``metrics.json`` document. numpy + scipy only (no torch import)."""

from .document import (
    metrics_document,
    pool_metrics_documents,
    read_metrics,
    validate_metrics_document,
    versions,
    write_metrics,
)
from .consistency import multiview_consistency
from .files import FolderEvaluation, evaluate_label_folders
from .metrics import (
    METRIC_KEYS,
    boundary_exclusion_mask,
    confusion_matrix,
    per_class_scores,
    scores_from_confusion,
    summary_scores,
)
from .scores import BIN_NAMES, LabellingScores

__all__ = [
    "BIN_NAMES", "METRIC_KEYS", "FolderEvaluation", "LabellingScores", "evaluate_label_folders", "boundary_exclusion_mask", "confusion_matrix",
    "metrics_document", "multiview_consistency", "per_class_scores", "pool_metrics_documents", "read_metrics",
    "scores_from_confusion", "summary_scores", "validate_metrics_document", "versions", "write_metrics",
]
