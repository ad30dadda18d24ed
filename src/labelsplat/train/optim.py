"""SGD and the learning-rate schedule of face-parsing.PyTorch (``optimizer.py``).

Parameter groups as the original ``get_params``: weights with weight decay, biases and
BatchNorm parameters without; the fusion module and the three heads (``ffm``, ``conv_out*``)
get 10x the learning rate. Schedule: exponential warm-up from ``warmup_start_lr`` to ``lr``
over ``warmup_iters`` (``lr = start * (lr / start) ** (it / warmup)``), then poly decay
``lr * (1 - (it - warmup) / (iters - warmup)) ** power``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    heads = tuple(f"{p}." for p in ("ffm", "conv_out", "conv_out16", "conv_out32"))
    groups = {(h, wd): [] for h in (False, True) for wd in (True, False)}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith(heads)
        decays = p.dim() > 1  # conv weights; biases and BN affine params (1-D) get no decay
        groups[(is_head, decays)].append(p)
    out = []
    for (is_head, decays), params in groups.items():
        if params:
            out.append({"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_mul": 10.0 if is_head else 1.0})
    return out


def make_optimizer(model: torch.nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(param_groups(model, weight_decay), lr=lr, momentum=momentum, weight_decay=weight_decay)


@dataclass(frozen=True)
class WarmupPoly:
    """Learning rate at iteration ``it`` (0-based) of ``iters``."""

    lr: float
    iters: int
    warmup_iters: int = 1000
    warmup_start_lr: float = 1e-5
    power: float = 0.9

    def __call__(self, it: int) -> float:
        if self.warmup_iters > 0 and it < self.warmup_iters:
            start = min(self.warmup_start_lr, self.lr)
            return start * (self.lr / start) ** (it / self.warmup_iters)
        span = max(1, self.iters - self.warmup_iters)
        frac = min(1.0, max(0.0, (it - self.warmup_iters) / span))
        return self.lr * (1.0 - frac) ** self.power


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mul", 1.0)
