"""Label-assignment variants for ``research.assign_study``: where do blend-weight votes lose
information against the fitted logits (on exact labels, where nothing is to be gained)?

Each variant is a :class:`labelsplat.splat.assign.LabelAssigner` built from the votes of
:func:`labelsplat.splat.lift.vote_semantics` and differs in one respect:

* ``vote_hard``: each Gaussian gets ``scale * one_hot(argmax votes)`` (no soft mixture: a Gaussian
  straddling a boundary takes one side instead of rendering half of each);
* ``vote_log``: ``scale * log p`` features (composited log-probabilities, a product of the
  Gaussians' opinions rather than a sum; p floored at 1e-3);
* ``vote_nobg``: background-labelled pixels do not vote (transparency, not the Gaussians, is what
  renders background in the fitted model); Gaussians left without votes keep their fitted logits;
* ``vote_keepbg``: the votes of ``vote``, but Gaussians whose fitted class is background keep their
  fitted logits;
* ``vote_scale30``: the plain vote with features 3x larger than the background logit.

Research code: none of these is in the package.
"""

from __future__ import annotations

import torch

from labelsplat.io import IGNORE_INDEX
from labelsplat.splat.lift import lifted_logits, vote_semantics


def _votes(model, level, backend, view_weights, labels=None):
    return vote_semantics(model, level.cameras, labels if labels is not None else level.labels, model.num_classes,
                          backend=backend, confidences=level.confidences or None, view_weights=view_weights,
                          cam_tensors=level.cam_t)


class VoteVariant:
    def __init__(self, name: str):
        self.name = name

    def assign(self, model, level, *, backend, class_weights, view_weights, scale):
        sem = model.params["sem"]
        fitted = sem.detach().clone()
        labels = None
        if self.name == "vote_nobg":
            labels = [torch.where(lab == 0, torch.full_like(lab, IGNORE_INDEX), lab) for lab in level.labels]
        votes = _votes(model, level, backend, view_weights, labels)
        p = lifted_logits(votes, fitted, prior=1.0, scale=1.0, class_weights=class_weights)
        if self.name == "vote_hard":
            feats = scale * torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).to(p)
        elif self.name == "vote_log":
            feats = scale * torch.log(p.clamp_min(1e-3))
        elif self.name == "vote_scale30":
            feats = 3.0 * scale * p
        else:
            feats = scale * p
        if self.name == "vote_nobg":
            feats = torch.where((votes.sum(-1) > 0)[:, None], feats, fitted)
        if self.name == "vote_keepbg":
            feats = torch.where((fitted.argmax(-1) == 0)[:, None], fitted, feats)
        with torch.no_grad():
            sem.copy_(feats)
        return {"mode": self.name, "gaussians_without_votes": int((votes.sum(-1) <= 0).sum())}


VARIANTS = ("vote_hard", "vote_log", "vote_nobg", "vote_keepbg", "vote_scale30")
