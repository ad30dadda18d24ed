"""Label assignment after the fit: what each Gaussian's semantic features become once the
geometry is final. One protocol, :class:`LabelAssigner`, built from ``FitConfig.semantic_lift``
by :func:`make_assigner`:

* :class:`KeepFitted` (``none``) keeps the fitted features;
* :class:`VoteAssigner` (``vote[:<prior>]``) replaces a logit head's features by the Gaussians'
  multiview label votes (:mod:`.lift`), mixed with the fitted distribution;
* :class:`Unweight` (``unweight[:<strength>]``) subtracts the log of the semantic loss's class
  weights from the fitted logits.

Further assigners (label-quality experiments) implement the same protocol. A run that carries 3D
label edits (``labelsplat edit``) wraps its assigner in :class:`WithEdits`: the edits are applied
again on top of every later assignment.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import torch

from .config import FitConfig
from .data import ViewLevel
from .edits import StoredEdits, apply_edits
from .lift import lifted_logits, vote_agreement, vote_semantics
from .model import GaussianModel


class LabelAssigner(Protocol):
    def assign(self, model: GaussianModel, level: ViewLevel, *, backend: str, class_weights: torch.Tensor | None,
               view_weights: list[float] | None, scale: float) -> dict[str, Any] | None:
        """Set ``model``'s semantic features from the training views ``level`` (normalised frame,
        full resolution); return a summary for ``run.json`` (None: nothing changed). ``scale``:
        the background logit (the scale of a logit head's features)."""
        ...


class KeepFitted:
    """Keep the features the fit found."""

    def assign(self, model, level, *, backend, class_weights, view_weights, scale):
        return None


class VoteAssigner:
    """Features ``scale * p``, p = the class-weighted multiview label vote of each Gaussian plus
    ``prior`` x its fitted class distribution, normalised (:func:`~.lift.lifted_logits`).
    ``name`` is the configuration's text (the summary's ``mode``)."""

    def __init__(self, prior: float = 1.0, name: str = "vote"):
        self.prior = float(prior)
        self.name = name

    def assign(self, model, level, *, backend, class_weights, view_weights, scale):
        t0 = time.perf_counter()
        votes = vote_semantics(model, level.cameras, level.labels, model.num_classes, backend=backend,
                               confidences=level.confidences or None, view_weights=view_weights,
                               cam_tensors=level.cam_t)
        with torch.no_grad():
            model.params["sem"].copy_(lifted_logits(votes, model.params["sem"], prior=self.prior, scale=scale,
                                                    class_weights=class_weights))
        total = votes.sum(dim=-1)
        return {"mode": self.name, "time_s": round(time.perf_counter() - t0, 3),
                "gaussians_without_votes": int((total <= 0).sum()),
                "median_vote_weight": round(float(total.median()), 4)}


class Unweight:
    """Subtract ``strength`` x log(w) from each Gaussian's fitted logits, w the class weights (K,)
    of the semantic loss.

    A class-weighted cross-entropy is lowest where the predicted distribution is proportional to
    w x the labels' class frequencies, not to the frequencies: a surface point that a tenth of the
    views label eye (weight 10) and the rest skin is fitted as eye, so noisy labels make small,
    heavily weighted parts grow. The weights help small parts get fitted at all; this removes their
    shift of the decision afterwards (logit adjustment). Inside the head, where the Gaussians in
    front of a pixel are opaque, the rendered logits move by exactly ``-strength * log(w)``; the
    background's weight is 1 in the built-in weights, so its logit stays. Without class weights
    nothing changes."""

    def __init__(self, strength: float = 1.0, name: str = "unweight"):
        self.strength = float(strength)
        self.name = name

    def assign(self, model, level, *, backend, class_weights, view_weights, scale):
        if class_weights is None:
            return None
        shift = self.strength * torch.log(class_weights.to(model.params["sem"]))
        with torch.no_grad():
            model.params["sem"].sub_(shift)
        return {"mode": self.name, "max_shift": round(float(shift.abs().max()), 4)}


class WithEdits:
    """Another assigner, then a run's stored 3D label edits (:mod:`.edits`) on top of its result."""

    def __init__(self, inner: LabelAssigner, stored: StoredEdits, norm, scheme: str):
        self.inner, self.stored, self.norm, self.scheme = inner, stored, norm, scheme

    def assign(self, model, level, *, backend, class_weights, view_weights, scale):
        summary = self.inner.assign(model, level, backend=backend, class_weights=class_weights,
                                    view_weights=view_weights, scale=scale)
        counts = apply_edits(model, self.stored.edits, scheme=self.scheme, norm=self.norm,
                             head=self.stored.head_frame, scale=scale)
        return {**(summary or {}), "label_edits_selected": counts}


def label_agreement(model: GaussianModel, level: ViewLevel, scene_name: str, *, backend: str,
                    view_weights: list[float] | None) -> tuple[dict[str, Any], str | None]:
    """How much the training views agree on the Gaussians' classes (:func:`~.lift.vote_agreement`
    of their multiview votes) and a warning naming the scene when no class wins."""
    votes = vote_semantics(model, level.cameras, level.labels, model.num_classes, backend=backend,
                           confidences=level.confidences or None, view_weights=view_weights, cam_tensors=level.cam_t)
    doc = vote_agreement(votes)
    warning = None
    if doc["no_class_wins"]:
        warning = (f"{scene_name}: the input views disagree so much that no class wins (top vote share "
                   f"{doc['top_share']:.3f}, below 1/K + 0.05 = {doc['winning_threshold']:.3f}); the labels are "
                   "exported with their confidence, but check the input label maps (one label scheme in every "
                   "view, labels that belong to their images)")
    doc["warning"] = warning
    return doc, warning


def make_assigner(cfg: FitConfig, num_classes: int, *, edits: StoredEdits | None = None, norm=None,
                  scheme: str | None = None) -> LabelAssigner:
    """The assigner ``cfg.semantic_lift`` names (an RGB-only fit, K = 0, keeps its empty features),
    followed by the run's stored ``edits`` (boxes mapped with ``norm`` in ``scheme``) when given."""
    spec = cfg.parsed.semantic_lift
    if num_classes == 0 or not spec.enabled:
        inner: LabelAssigner = KeepFitted()
    elif spec.mode == "unweight":
        inner = Unweight(spec.prior, name=cfg.semantic_lift)
    else:
        inner = VoteAssigner(spec.prior, name=cfg.semantic_lift)
    if edits is not None and edits.edits and num_classes > 0:
        return WithEdits(inner, edits, norm, scheme)
    return inner


__all__ = ["KeepFitted", "LabelAssigner", "Unweight", "VoteAssigner", "WithEdits", "label_agreement", "make_assigner"]
