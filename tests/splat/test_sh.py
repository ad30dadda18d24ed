"""Torch spherical harmonics in gsplat's convention."""

from __future__ import annotations

import pytest
import torch

from labelsplat.splat.sh import C0, RGB2SH, SH2RGB, eval_sh, num_sh_bases, rgb_from_sh, view_dirs


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
def test_eval_sh_matches_gsplat_torch_reference(degree):
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(degree)
    sh = torch.randn(9, 25, 3, generator=g, dtype=torch.float64)  # extra bands must be ignored
    dirs = torch.randn(2, 9, 3, generator=g, dtype=torch.float64) * 3.0  # not unit length
    ours = eval_sh(degree, sh, dirs)
    ref = _spherical_harmonics(degree, dirs, sh[None].expand(2, 9, 25, 3))
    assert ours.shape == (2, 9, 3)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_dc_roundtrip_and_rgb_from_sh():
    rgb = torch.tensor([[0.0, 0.5, 1.0], [0.2, 0.7, 0.9]])
    assert C0 == 0.28209479177387814
    torch.testing.assert_close(SH2RGB(RGB2SH(rgb)), rgb)
    sh = torch.zeros(2, num_sh_bases(3), 3)
    sh[:, 0] = RGB2SH(rgb)
    dirs = torch.randn(4, 2, 3)
    out = rgb_from_sh(3, sh, dirs)  # only DC: view independent
    torch.testing.assert_close(out, rgb.expand(4, 2, 3))
    assert float(rgb_from_sh(0, torch.full((1, 1, 3), -10.0), dirs[:, :1]).min()) == 0.0  # clamp


def test_eval_sh_is_differentiable_and_checks_shapes():
    sh = torch.randn(3, 16, 3, dtype=torch.float64, requires_grad=True)
    dirs = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: eval_sh(3, a, b), (sh, dirs))
    with pytest.raises(ValueError, match="degree"):
        eval_sh(2, torch.zeros(3, 4, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="dirs"):
        eval_sh(1, torch.zeros(3, 4, 3), torch.zeros(2, 3))


def test_view_dirs_point_from_camera_centre_to_gaussians():
    from labelsplat.scene import look_at

    cam = look_at([1.0, 2.0, 3.0], [0, 0, 0], [0, 1, 0], 50, 50, 32, 32)
    vm = torch.tensor(cam.w2c_opencv)[None]
    means = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    d = view_dirs(means, vm)
    torch.testing.assert_close(d[0], means - torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
