"""OHEM cross-entropy of face-parsing.PyTorch (``loss.py: OhemCELoss``).

Per-pixel cross-entropy is sorted in decreasing order; the pixels whose loss exceeds
``-log(thresh)`` (i.e. predicted probability of the true class below ``thresh``, 0.7 in the
original) are averaged, but never fewer than the ``n_min`` hardest pixels. The original sets
``n_min = batch * crop_h * crop_w // 16``.

One deliberate difference: pixels labelled ``ignore_index`` (255) are removed before the
selection (the original sorted their zero losses in with the rest, so heavily ignored images
could fill ``n_min`` with zeros); ``n_min`` is capped at the number of valid pixels. With no
valid pixel the loss is 0 (with a graph, so ``backward`` works).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def ohem_ce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    thresh: float = 0.7,
    n_min: int,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """OHEM CE for logits (B, K, H, W) and integer labels (B, H, W) -> scalar."""
    if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0] or logits.shape[2:] != labels.shape[1:]:
        raise ValueError(f"ohem_ce_loss: logits (B,K,H,W) {tuple(logits.shape)} vs labels (B,H,W) {tuple(labels.shape)}")
    if not 0.0 < thresh < 1.0:
        raise ValueError(f"thresh must be in (0, 1), got {thresh}")
    labels = labels.long()
    loss = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="none").reshape(-1)
    valid = labels.reshape(-1) != ignore_index
    loss = loss[valid]
    if loss.numel() == 0:
        return logits.sum() * 0.0
    loss_thresh = -math.log(thresh)
    n_min = max(1, min(int(n_min), loss.numel()))
    loss, _ = torch.sort(loss, descending=True)
    if n_min < loss.numel() and loss[n_min] > loss_thresh:
        kept = loss[loss > loss_thresh]
    else:
        kept = loss[:n_min]
    return kept.mean()


class OhemCELoss(torch.nn.Module):
    """Module form with the original's constructor: ``OhemCELoss(thresh, n_min, ignore_lb=255)``."""

    def __init__(self, thresh: float = 0.7, n_min: int = 1, ignore_lb: int = IGNORE_INDEX):
        super().__init__()
        self.thresh, self.n_min, self.ignore_lb = float(thresh), int(n_min), int(ignore_lb)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ohem_ce_loss(logits, labels, thresh=self.thresh, n_min=self.n_min, ignore_index=self.ignore_lb)
