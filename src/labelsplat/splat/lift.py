"""Semantic lifting by multiview voting: per-Gaussian class distributions from the input labels.

A fitted model's logits follow each training view's own label errors: gradient descent can explain
a per-view error by letting different Gaussians dominate different views. Voting removes that
freedom. With the geometry fixed, every labelled pixel ``p`` of every training view votes for its
label with the blend weight ``w_gp = alpha_g(p) * T_g(p)`` of each Gaussian ``g`` it composites::

    votes[g, k] = sum_views sum_p  view_weight * confidence_p * w_gp * [label_p == k]

(ignore-labelled pixels do not vote). Because rendering is linear in the per-Gaussian features, the
votes are exactly the gradient of ``sum_p <render_p(F), onehot(label_p)>`` with respect to the
features ``F`` at ``F = 0``: one forward + backward pass of the rasteriser per view, on any backend.

The lifted distribution mixes the votes with a prior (the fitted logits' softmax) of strength
``prior`` (in blend-weight units, ~pixels), and the model's semantic head is set to
``scale * p`` so that rendering composites the class *probabilities* (a soft multiview vote, and
the background logit ``bg_logit * one_hot(0)`` behind them keeps its meaning when ``scale`` equals
it).

Measured on the synthetic benchmark (docs/quality.md): the class-weighted vote gives the same labels
as the fitted logits on noisy input labels and worse ones on exact labels (one distribution per
Gaussian blurs part boundaries), so ``FitConfig.semantic_lift`` is off in every preset.
:class:`~.assign.VoteAssigner` applies it after a fit.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..io import IGNORE_INDEX
from .rasterize import rasterize
from .render import camera_tensors


def vote_semantics(
    model,
    cameras: Sequence,
    labels: Sequence[torch.Tensor],
    num_classes: int,
    *,
    backend: str = "cpu",
    confidences: Sequence[torch.Tensor] | None = None,
    view_weights: Sequence[float] | None = None,
    cam_tensors: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
) -> torch.Tensor:
    """(N, K) float32 label votes of the model's Gaussians from labelled views.

    ``cameras``: in the model's (normalised) frame; ``labels[i]`` (H_i, W_i) integer ids at camera
    ``i``'s size (``IGNORE_INDEX`` and ids outside [0, K) do not vote); ``confidences[i]`` optional
    (H_i, W_i) per-pixel weights; ``view_weights`` optional per-view weights; ``cam_tensors`` the
    cameras' (viewmat, K, centre) on the model's device (else built here).
    """
    if len(labels) != len(cameras):
        raise ValueError(f"vote_semantics: {len(cameras)} cameras but {len(labels)} label maps")
    if confidences is not None and len(confidences) != len(cameras):
        raise ValueError(f"vote_semantics: {len(cameras)} cameras but {len(confidences)} confidence maps")
    if view_weights is not None and len(view_weights) != len(cameras):
        raise ValueError(f"vote_semantics: {len(cameras)} cameras but {len(view_weights)} view weights")
    K = int(num_classes)
    if K < 1:
        raise ValueError("vote_semantics: num_classes must be >= 1")
    dev = model.device
    act = {k: v.detach() for k, v in model.activated().items()}
    N = model.num_gaussians
    votes = torch.zeros(N, K, dtype=torch.float32, device=dev)
    for i, cam in enumerate(cameras):
        lab = labels[i].to(dev).long()
        if tuple(lab.shape) != (cam.height, cam.width):
            raise ValueError(f"vote_semantics: label map {i} is {tuple(lab.shape)}, camera is {(cam.height, cam.width)}")
        valid = (lab != IGNORE_INDEX) & (lab >= 0) & (lab < K)
        w = valid.to(torch.float32)
        if confidences is not None and confidences[i] is not None:
            w = w * confidences[i].to(dev, torch.float32)
        if view_weights is not None:
            w = w * float(view_weights[i])
        if not bool(w.any()):
            continue
        target = torch.zeros(1, cam.height, cam.width, K, dtype=torch.float32, device=dev)
        target[0].scatter_(-1, torch.where(valid, lab, torch.zeros_like(lab))[..., None], w[..., None])
        vm, Ks, _ = (camera_tensors([cam], dev) if cam_tensors is None
                     else tuple(t[None] for t in cam_tensors[i]))
        feats = torch.zeros(1, N, K, dtype=torch.float32, device=dev, requires_grad=True)
        render, _, _ = rasterize(act["means"], act["quats"], act["scales"], act["opacities"], feats, vm, Ks,
                                 cam.width, cam.height, render_depth=False, backend=backend,
                                 rasterize_mode=model.rasterize_mode)
        (grad,) = torch.autograd.grad((render[..., :K] * target).sum(), feats)
        votes += grad[0]
    return votes


def lifted_logits(votes: torch.Tensor, prior_logits: torch.Tensor | None, *, prior: float = 1.0,
                  scale: float = 10.0, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K) semantic features ``scale * p`` with ``p = (votes + prior * softmax(prior_logits)) / (sum + prior)``.

    ``class_weights`` (K,) multiply the votes first: the per-Gaussian optimum of the fit's
    class-weighted cross-entropy for a fixed label mixture ``n_k`` is ``p_k ~ w_k n_k``, so the vote
    keeps the small parts the weights protect. Gaussians with neither votes nor prior get the
    uniform distribution.
    """
    if votes.dim() != 2:
        raise ValueError(f"lifted_logits: votes must be (N, K), got {tuple(votes.shape)}")
    if prior_logits is not None and prior_logits.shape != votes.shape:
        raise ValueError(f"lifted_logits: prior {tuple(prior_logits.shape)} differs from votes {tuple(votes.shape)}")
    v = votes.clamp_min(0.0)
    if class_weights is not None:
        if class_weights.shape != (votes.shape[1],):
            raise ValueError(f"lifted_logits: class_weights must be ({votes.shape[1]},), got {tuple(class_weights.shape)}")
        v = v * class_weights.to(v)
    if prior_logits is not None and prior > 0:
        v = v + float(prior) * torch.softmax(prior_logits.float(), dim=-1)
    total = v.sum(dim=-1, keepdim=True)
    uniform = torch.full_like(v, 1.0 / v.shape[-1])
    p = torch.where(total > 0, v / total.clamp_min(1e-12), uniform)
    return float(scale) * p


def vote_agreement(votes: torch.Tensor) -> dict:
    """How much the views agree on each Gaussian's class, from its votes (N, K).

    ``top_share``: the vote-weighted mean over the Gaussians of their top class's share of their
    votes, ``sum_g max_k v_gk / sum_g sum_k v_gk`` (1 = every view agrees everywhere; 1/K = no
    class wins anywhere); ``winning_threshold`` = 1/K + 0.05; ``no_class_wins`` when the share is
    below it (None when no Gaussian has votes).
    """
    if votes.dim() != 2 or votes.shape[1] < 1:
        raise ValueError(f"vote_agreement: votes must be (N, K), got {tuple(votes.shape)}")
    v = votes.clamp_min(0.0)
    total = float(v.sum())
    threshold = 1.0 / votes.shape[1] + 0.05
    if total <= 0.0:
        return {"top_share": None, "winning_threshold": round(threshold, 4), "no_class_wins": None}
    share = float(v.max(dim=-1).values.sum()) / total
    return {"top_share": round(share, 4), "winning_threshold": round(threshold, 4),
            "no_class_wins": share < threshold}


__all__ = ["lifted_logits", "vote_agreement", "vote_semantics"]
