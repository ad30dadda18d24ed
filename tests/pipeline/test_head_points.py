"""The head points the view sampler measures head coverage with."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from labelsplat.pipeline import _head_points
from labelsplat.splat import Normalization


def _run(n: int, solid: int):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g)
    op = torch.full((n,), -3.0)  # logit: opacity ~0.05
    op[:solid] = 3.0  # opacity ~0.95
    return SimpleNamespace(model=SimpleNamespace(params={"means": means, "opacities": op}),
                           norm=Normalization.identity())


def test_the_solid_gaussians_give_the_head_points():
    pts = _head_points(_run(1000, 400))
    assert 380 <= len(pts) <= 400  # the solid ones, less the 2 % farthest


def test_a_model_of_faint_gaussians_gives_its_most_opaque_tenth():
    # an MCMC fit: large faint Gaussians, few solid ones; the solid ones alone would make the head
    # look smaller than it is
    pts = _head_points(_run(1000, 50))
    assert 95 <= len(pts) <= 100  # the 100 most opaque, less the 2 % farthest
    assert len(_head_points(_run(50, 3))) >= 45  # too few Gaussians to take a tenth: all of them
