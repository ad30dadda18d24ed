"""OHEM cross-entropy on hand-built cases; the learning-rate schedule; parameter groups."""

from __future__ import annotations

import math

import pytest
import torch

from labelsplat.parsers.bisenet import BiSeNet
from labelsplat.train.loss import OhemCELoss, ohem_ce_loss
from labelsplat.train.optim import WarmupPoly, make_optimizer, set_lr


def _logits_for(p_true: list[float]) -> torch.Tensor:
    """(1, 2, 1, N) logits whose softmax gives probability p to class 0 (the true class)."""
    p = torch.tensor(p_true, dtype=torch.float64)
    return torch.stack([p.log(), (1 - p).log()]).view(1, 2, 1, -1).float()


P = [0.9, 0.8, 0.5, 0.1]
L = [-math.log(p) for p in P]  # 0.105, 0.223, 0.693, 2.303; threshold -log(0.7) = 0.357


def test_ohem_keeps_pixels_above_threshold():
    logits, labels = _logits_for(P), torch.zeros(1, 1, 4, dtype=torch.long)
    got = ohem_ce_loss(logits, labels, thresh=0.7, n_min=1)
    assert got.item() == pytest.approx((L[3] + L[2]) / 2, rel=1e-5)


def test_ohem_keeps_at_least_n_min_hardest():
    logits, labels = _logits_for(P), torch.zeros(1, 1, 4, dtype=torch.long)
    got = ohem_ce_loss(logits, labels, thresh=0.7, n_min=3)
    assert got.item() == pytest.approx((L[3] + L[2] + L[1]) / 3, rel=1e-5)
    # n_min larger than the pixel count: all pixels
    assert ohem_ce_loss(logits, labels, thresh=0.7, n_min=100).item() == pytest.approx(sum(L) / 4, rel=1e-5)


def test_ohem_ignores_255_and_module_form():
    logits = _logits_for(P)
    labels = torch.tensor([[[0, 0, 0, 255]]])  # the hardest pixel is ignored
    got = OhemCELoss(0.7, 1)(logits, labels)
    # remaining losses 0.693, 0.223, 0.105: loss[1] = 0.223 < thresh -> the n_min = 1 hardest
    assert got.item() == pytest.approx(L[2], rel=1e-5)
    all_ignored = torch.full((1, 1, 4), 255)
    z = ohem_ce_loss(logits.requires_grad_(), all_ignored, n_min=2)
    assert z.item() == 0.0
    z.backward()


def test_ohem_shape_check():
    with pytest.raises(ValueError):
        ohem_ce_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 4, 4, dtype=torch.long), n_min=1)


def test_warmup_poly_schedule():
    s = WarmupPoly(lr=1e-2, iters=100, warmup_iters=10, warmup_start_lr=1e-5, power=0.9)
    assert s(0) == pytest.approx(1e-5)
    assert s(5) == pytest.approx(1e-5 * (1e3) ** 0.5)  # exponential warm-up, as the original
    assert s(10) == pytest.approx(1e-2)
    assert s(55) == pytest.approx(1e-2 * 0.5**0.9)
    lrs = [s(i) for i in range(10, 100)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert s(99) > 0


def test_param_groups_lr_mult_and_no_decay():
    m = BiSeNet(5)
    opt = make_optimizer(m, 0.01)
    set_lr(opt, 0.01)
    n_params = sum(1 for _ in m.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == n_params
    head_ids = {id(p) for n, p in m.named_parameters() if n.split(".")[0] in ("ffm", "conv_out", "conv_out16", "conv_out32")}
    for g in opt.param_groups:
        is_head = id(g["params"][0]) in head_ids
        assert all((id(p) in head_ids) == is_head for p in g["params"])
        assert g["lr"] == pytest.approx(0.1 if is_head else 0.01)
        if g["params"][0].dim() == 1:
            assert g["weight_decay"] == 0.0
        else:
            assert g["weight_decay"] == pytest.approx(5e-4)
