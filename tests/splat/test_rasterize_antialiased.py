"""``rasterize_mode="antialiased"``: the opacity compensation for the 2D blur, on every backend,
and the model carrying its mode into every render."""

from __future__ import annotations

import math

import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.splat._torch_impl import project_gaussians
from labelsplat.splat.config import FitConfig
from labelsplat.splat.model import GaussianModel
from labelsplat.splat.rasterize import rasterize

from test_rasterize import _assert_close, _assert_same_run, _run, _scene
from test_rasterize_gsplat import _fake_ops, _grads
from test_rasterize_gsplat import _scene as _scene_bg


def _one_gaussian(sigma_px: float, eps2d: float, mode: str) -> float:
    """Alpha summed over the image of one isotropic Gaussian of ``sigma_px`` pixels, camera on its axis."""
    f, z, W = 50.0, 4.0, 48
    s = sigma_px * z / f  # world standard deviation giving sigma_px on the image
    args = (torch.tensor([[0.0, 0.0, z]], dtype=torch.float64), torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
            torch.full((1, 3), s, dtype=torch.float64), torch.tensor([0.9], dtype=torch.float64),
            torch.ones(1, 1, dtype=torch.float64), torch.eye(4, dtype=torch.float64)[None],
            torch.tensor([[[f, 0, W / 2], [0, f, W / 2], [0, 0, 1]]], dtype=torch.float64), W, W)
    _, alpha, _ = rasterize(*args, eps2d=eps2d, backend="cpu", rasterize_mode=mode, render_depth=False)
    return float(alpha.sum())


def test_antialiased_footprint_weight_does_not_depend_on_the_blur():
    # a Gaussian's alpha integrates to ~ 2 pi opacity (var + eps2d) in classic mode; the
    # compensation sqrt(var^2 / (var + eps2d)^2) makes it 2 pi opacity var, whatever the blur
    # (up to the 1/255 cut-off of faint pixels)
    sigma = 0.4  # sub-pixel: the blur dominates
    aa = [_one_gaussian(sigma, e, "antialiased") for e in (0.3, 0.9)]
    classic = [_one_gaussian(sigma, e, "classic") for e in (0.3, 0.9)]
    expect = 2 * math.pi * 0.9 * sigma ** 2
    assert aa[0] == pytest.approx(expect, rel=0.04) and aa[1] == pytest.approx(expect, rel=0.04)
    assert classic[1] > 2 * classic[0] > 2 * aa[0]


def test_large_gaussians_are_nearly_unchanged():
    assert _one_gaussian(6.0, 0.3, "antialiased") == pytest.approx(_one_gaussian(6.0, 0.3, "classic"), rel=0.02)


def test_cpu_backend_matches_naive_reference_in_antialiased_mode():
    scene = _scene(N=45, D=4, C=2, seed=7)
    # small Gaussians, so that the compensation is far from 1
    scene = (scene[0], scene[1], scene[2] * 0.15) + scene[3:]
    rn, an, gn, infon = _run("naive", scene, rasterize_mode="antialiased", return_contrib=True)
    rc, ac, gc, infoc = _run("cpu", scene, rasterize_mode="antialiased", return_contrib=True)
    rcl, _, _, _ = _run("cpu", scene, return_contrib=True)
    assert float((rc - rcl).abs().max()) > 1e-3  # the mode changes the picture
    _assert_same_run((rc, ac, gc, infoc), (rn, an, gn, infon))


def test_compensation_gradients_match_finite_differences():
    means, quats, scales, opac, colors, vm, Ks, W, H = _scene(N=3, D=1, C=1, W=12, H=10, seed=2)
    scales = scales * 0.2

    def comp(s):
        return project_gaussians(means, quats, s, opac, vm, Ks, W, H, antialiased=True).compensations

    assert torch.autograd.gradcheck(comp, (scales.clone().requires_grad_(True),))


def test_compensation_matches_gsplat_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    means, quats, scales, opac, colors, vm, Ks, W, H = _scene(N=50, C=3, seed=4)
    proj = project_gaussians(means, quats, scales * 0.2, opac, vm, Ks, W, H, antialiased=True)
    covars, _ = _quat_scale_to_covar_preci(quats, scales * 0.2, True, False)
    radii, _, _, _, comp = _fully_fused_projection(means, covars, vm, Ks, W, H, calc_compensations=True)
    v = proj.valid
    torch.testing.assert_close(proj.compensations[v], comp[v])


def test_gsplat_backend_orchestration_passes_the_compensation():
    from labelsplat.splat._gsplat_backend import rasterize_gsplat

    args, bg = _scene_bg()
    args = args[:2] + [args[2] * 0.2] + args[3:]
    rg, ag, gg, _ = _grads(lambda p, rest: rasterize_gsplat(*p, *rest, backgrounds=bg, ops=_fake_ops(),
                                                            antialiased=True), args)
    rn, an, gn, _ = _grads(lambda p, rest: rasterize(*p, *rest, backgrounds=bg, backend="naive",
                                                     rasterize_mode="antialiased"), args)
    _assert_close(rg, rn, 1e-9, "render")
    _assert_close(ag, an, 1e-9, "alpha")
    for name, a, b in zip(("means", "quats", "scales", "opacities", "colors"), gg, gn):
        _assert_close(a, b, 1e-8, f"grad {name}")


def test_unknown_mode_is_refused():
    scene = _scene(N=4, C=1)
    with pytest.raises(ValueError, match="rasterize_mode"):
        rasterize(*scene, backend="cpu", rasterize_mode="mip")
    with pytest.raises(LabelsplatError, match="rasterize_mode"):
        FitConfig(rasterize_mode="mip")


def test_the_model_keeps_its_mode_through_its_state():
    import numpy as np

    pts = np.random.default_rng(0).normal(size=(20, 3))
    classic = GaussianModel.from_points(pts, np.full((20, 3), 0.5), None, sh_degree=0, num_classes=0)
    assert "rasterize_mode" not in classic.state_dict()  # classic checkpoints are unchanged
    aa = GaussianModel.from_points(pts, np.full((20, 3), 0.5), None, sh_degree=0, num_classes=0,
                                   rasterize_mode="antialiased")
    back = GaussianModel.from_state_dict(aa.state_dict())
    assert back.rasterize_mode == "antialiased"
    assert GaussianModel.from_state_dict(classic.state_dict()).rasterize_mode == "classic"
