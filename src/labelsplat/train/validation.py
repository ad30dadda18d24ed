"""Validation mIoU during ``train`` / ``finetune``, when a ``--data`` dataset has a ``val`` split.

The views whose manifest split is ``val`` (``dataset from-scenes --val-fraction``, ``refine``'s
identity-level split) are parsed as inference does (resized to the input size, normalised,
argmax of the main head) and scored against their labels, converted to the model's scheme
(255 ignored; mIoU over the classes present, as ``evaluate``). It runs every ``every`` steps
(the resume-state cadence) and after the last step, on the main process; each result is one
``train_log.jsonl`` line ``{"step", "val_miou", "val_pixel_acc", "val_views"}`` and is kept for
the progress bar and the weights' sidecar.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..dataset.read import read_dataset
from ..eval.metrics import confusion_matrix, summary_scores
from ..io import read_label, read_rgb
from ..parsers.preprocess import normalize
from ..schemes import conversion_table, get_scheme
from .data import center_resize

#: images per forward pass of the validation
VAL_BATCH = 4


class Validation:
    """A training callback (:mod:`.callbacks`) scoring the model on the ``val`` views."""

    def __init__(self, every: int):
        self.every = every
        self.views: list[tuple[Any, Any, np.ndarray, int]] = []  # (image, label, lut, classes of its scheme)
        self.results: list[dict[str, Any]] = []

    def on_setup(self, loop) -> None:
        for d in loop.cfg.data:
            ds = read_dataset(d)
            lut = conversion_table(ds.label_scheme, loop.cfg.scheme)
            k = get_scheme(ds.label_scheme).num_classes
            self.views += [(v.image, v.label, lut, k) for v in ds.views if v.split == "val"]

    @torch.no_grad()
    def score(self, loop) -> dict[str, Any]:
        """mIoU and pixel accuracy of the current model on the val views."""
        model, size, k = loop.model, loop.cfg.input_size, loop.scheme.num_classes
        was_training = model.training
        model.eval()
        conf = np.zeros((k, k + 1), dtype=np.int64)
        try:
            for i in range(0, len(self.views), VAL_BATCH):
                xs, ys = [], []
                for image, label, lut, n in self.views[i:i + VAL_BATCH]:
                    rgb = read_rgb(image)
                    rgb, lab = center_resize(rgb, lut[read_label(label, n, shape=rgb.shape[:2])], size)
                    xs.append(normalize(rgb, loop.info.mean, loop.info.std))
                    ys.append(lab)
                pred = model(torch.stack(xs).to(loop.device))[0].argmax(1).cpu().numpy()
                conf += confusion_matrix(pred, np.stack(ys), k)
        finally:
            model.train(was_training)
        s = summary_scores(conf) or {}
        return {"val_miou": s.get("miou"), "val_pixel_acc": s.get("pixel_acc"), "val_views": len(self.views)}

    def on_step(self, loop, stats) -> None:
        if not self.views:
            return
        if (self.every > 0 and stats.step % self.every == 0) or stats.step == loop.cfg.iters:
            result = {"step": stats.step, **self.score(loop)}
            self.results.append(result)
            loop.log_extra(result)

    def on_finish(self, loop) -> None:
        pass


__all__ = ["Validation", "VAL_BATCH"]
