"""The fit's optimisers and densification strategy (:mod:`.densify`), and how ``semantic_grad=scaled:f`` is realised."""

from __future__ import annotations

import math

import torch

from .config import FitConfig
from .model import GaussianModel

#: backends on which ``semantic_grad=scaled:f`` is realised as a semantic-loss weight
SCALE_BY_LOSS_BACKENDS: frozenset[str] = frozenset({"gsplat"})


def make_optimizers(model: GaussianModel, cfg: FitConfig) -> dict[str, torch.optim.Optimizer]:
    """One Adam per parameter group (gsplat ``simple_trainer`` learning rates x ``lr_scale``,
    scaled for the batch size as gsplat does)."""
    s = cfg.lr_scale
    bs = math.sqrt(cfg.batch_size)
    lrs = {
        "means": cfg.means_lr * s, "scales": cfg.scales_lr * s, "quats": cfg.quats_lr * s,
        "opacities": cfg.opacities_lr, "sh0": cfg.sh0_lr * s, "shN": cfg.shN_lr * s, "sem": cfg.sem_lr,
    }
    # fused Adam on CUDA: one kernel per parameter group instead of a dozen (same update rule)
    fused = {"fused": True} if model.device.type == "cuda" else {}
    return {
        k: torch.optim.Adam([{"params": model.params[k], "lr": lr * bs, "name": k}], eps=1e-15 / bs,
                            betas=(1 - cfg.batch_size * (1 - 0.9), 1 - cfg.batch_size * (1 - 0.999)), **fused)
        for k, lr in lrs.items()
    }


def means_lr(cfg: FitConfig, step: int, batch_size: int) -> float:
    """The means' learning rate at ``step``: exponential decay to ``means_lr_final_factor``."""
    frac = step / max(1, cfg.steps)
    return cfg.means_lr * cfg.lr_scale * math.sqrt(batch_size) * cfg.means_lr_final_factor ** frac


def make_strategy(cfg: FitConfig):
    """The densification strategy ``cfg.strategy`` names (:mod:`.densify`): gsplat's ``DefaultStrategy``
    or ``MCMCStrategy`` with the configuration's thresholds and schedule."""
    from .densify import strategy_for  # lazy: gsplat is a heavy import, only a fit needs it

    return strategy_for(cfg)


def semantic_grad_plan(weight: float, backend: str, num_classes: int) -> tuple[float, float]:
    """(geometry-gradient weight given to the renderer, factor on the semantic loss).

    ``semantic_grad=scaled:f`` asks that the semantic channels contribute f times their
    gradient to the geometry while the semantic parameters learn from their exact gradient.
    With Adam (every parameter group here), an update is invariant to a constant scale of its
    gradient (up to the 1e-15 epsilon), so weighting the semantic loss by f gives the same
    updates: geometry receives f x the semantic gradient, the semantic parameters f x theirs,
    which Adam's normalisation removes. On the gsplat backend this replaces the two
    gradient-scaling autograd nodes per step (the rasteriser then runs as for ``full``); the
    CPU backend scales inside its kernels at no cost and keeps the literal form. ``none``
    (f = 0) cannot be a loss weight and stays with the renderer everywhere.
    """
    if num_classes > 0 and backend in SCALE_BY_LOSS_BACKENDS and weight > 0 and weight != 1:
        return 1.0, float(weight)
    return float(weight), 1.0


__all__ = ["SCALE_BY_LOSS_BACKENDS", "make_optimizers", "make_strategy", "means_lr", "semantic_grad_plan"]
