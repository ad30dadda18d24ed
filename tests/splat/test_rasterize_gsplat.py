"""gsplat backend: orchestration on CPU through injected ops, and agreement with the CPU backend
on CUDA (skipped without a GPU).

The CPU-side test swaps gsplat's CUDA functions for reference implementations (our projection,
gsplat's own pure-torch ``_isect_tiles``/``_isect_offset_encode``, our compositing kernel fed
with gsplat's tile lists) so the channel splitting, detached passes, gradient scaling and the
contribution trick are checked against the naive reference even on machines without CUDA.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from labelsplat.scene import look_at
from labelsplat.splat.rasterize import rasterize


def _scene(N=30, D=5, C=2, W=36, H=28, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(N, 3, generator=g, dtype=dtype) * 0.5
    quats = torch.randn(N, 4, generator=g, dtype=dtype)
    scales = torch.rand(N, 3, generator=g, dtype=dtype) * 0.15 + 0.04
    opac = torch.rand(N, generator=g, dtype=dtype) * 0.6 + 0.35
    colors = torch.randn(N, D, generator=g, dtype=dtype)
    centres = [[0.3, 0.2, 4.0], [3.0, 1.0, 2.2]]
    cams = [look_at(centres[i], [0, 0, 0], [0, 1, 0], 1.1 * W, 1.05 * W, W, H) for i in range(C)]
    vm = torch.tensor(np.stack([c.w2c_opencv for c in cams]), dtype=dtype)
    Ks = torch.tensor(np.stack([c.K for c in cams]), dtype=dtype)
    bg = torch.rand(C, D, generator=g, dtype=dtype)
    to = lambda t: t.to(device)  # noqa: E731
    return [to(t) for t in (means, quats, scales, opac, colors, vm, Ks)] + [W, H], to(bg)


def _fake_ops():
    from gsplat.cuda._torch_impl import _isect_offset_encode, _isect_tiles

    from labelsplat.splat._cpu_kernels import RasterizeToPixelsCPU
    from labelsplat.splat._torch_impl import project_gaussians

    def ffp(means, covars, quats, scales, viewmats, Ks, width, height, eps2d, near_plane,
            far_plane, radius_clip, packed, opacities, calc_compensations=False):
        p = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height,
                              near_plane=near_plane, far_plane=far_plane, eps2d=eps2d,
                              radius_clip=radius_clip, antialiased=calc_compensations)
        return p.radii, p.means2d, p.depths, p.conics, p.compensations

    def isect_tiles(means2d, radii, depths, tile_size, tile_w, tile_h, packed, n_images):
        return _isect_tiles(means2d, radii, depths, tile_size, tile_w, tile_h, sort=True)

    def rasterize_to_pixels(means2d, conics, colors, opac, width, height, tile_size,
                            isect_offsets, flatten_ids, backgrounds=None):
        C, N = opac.shape
        th, tw = isect_offsets.shape[-2:]
        binning = SimpleNamespace(
            offsets=np.concatenate([isect_offsets.reshape(-1).numpy().astype(np.int64), [len(flatten_ids)]]),
            ids=(flatten_ids % N).numpy().astype(np.int32), tile_size=tile_size, tile_w=tw,
            tile_h=th, n_tiles=tw * th,
        )
        big = torch.full((C, N, 2), width + height, dtype=torch.int32)  # no sub-block pruning
        wgeom = np.ones(colors.shape[-1], dtype=np.float64 if colors.dtype == torch.float64 else np.float32)
        r, a, _ = RasterizeToPixelsCPU.apply(means2d, conics, opac, big, colors.contiguous(),
                                             backgrounds, binning, width, height, wgeom, False)
        return r, a

    return SimpleNamespace(fully_fused_projection=ffp, isect_tiles=isect_tiles,
                           isect_offset_encode=_isect_offset_encode,
                           rasterize_to_pixels=rasterize_to_pixels)


def _grads(fn, args, seed=1):
    ps = [t.clone().requires_grad_(True) for t in args[:5]]
    render, alpha, info = fn(ps, args[5:])
    # the same upstream weights on every device (a CUDA generator draws other numbers)
    g = torch.Generator().manual_seed(seed)
    wr = torch.randn(render.shape, generator=g, dtype=render.dtype).to(render.device)
    wa = torch.randn(alpha.shape, generator=g, dtype=alpha.dtype).to(alpha.device)
    ((render * wr).sum() + (alpha * wa).sum()).backward()
    return render.detach(), alpha.detach(), [p.grad for p in ps], info


WEIGHTS = {"full": None, "none": [1, 1, 1, 0, 0], "scaled": [1, 1, 1, 0.1, 0.1],
           "mixed": [1, 0.5, 1, 0, 0.25], "all-zero": [0, 0, 0, 0, 0]}


def _close(a, b, rtol, name):
    scale = max(float(b.abs().max()), 1e-12)
    assert float((a - b).abs().max()) <= rtol * scale, name


@pytest.mark.parametrize("host", [False, True], ids=["weights-read-from-tensor", "weights-given-on-host"])
@pytest.mark.parametrize("mode", list(WEIGHTS))
def test_gsplat_backend_orchestration_matches_naive_with_reference_ops(mode, host):
    from labelsplat.splat._gsplat_backend import rasterize_gsplat

    args, bg = _scene()
    w = None if WEIGHTS[mode] is None else torch.tensor(WEIGHTS[mode], dtype=torch.float64)
    ops = _fake_ops()
    hw = tuple(WEIGHTS[mode]) if host and w is not None else None
    rg, ag, gg, ig = _grads(lambda p, rest: rasterize_gsplat(
        *p, *rest, backgrounds=bg, geom_grad_weights=w, return_contrib=True, ops=ops,
        geom_grad_host=hw), args)
    rn, an, gn, iname = _grads(lambda p, rest: rasterize(
        *p, *rest, backgrounds=bg, geom_grad_weights=w, return_contrib=True, backend="naive"), args)
    _close(rg, rn, 1e-9, "render")
    _close(ag, an, 1e-9, "alpha")
    for name, a, b in zip(("means", "quats", "scales", "opacities", "colors"), gg, gn):
        _close(a, b, 1e-8, f"grad {name}")
    _close(ig["contrib"], iname["contrib"], 1e-9, "contrib")


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat backend needs CUDA")


@needs_cuda
@pytest.mark.parametrize("raster_mode", ["classic", "antialiased"])
@pytest.mark.parametrize("mode", ["full", "none", "scaled"])
@pytest.mark.parametrize("D", [5, 22, 64])
def test_gsplat_and_cpu_backends_agree_on_cuda(mode, D, raster_mode):
    weights = {"full": None, "none": 0.0, "scaled": 0.1}[mode]
    args, bg = _scene(N=200, D=D, C=2, W=64, H=48, dtype=torch.float32, seed=D)
    w = None
    if weights is not None:
        w = torch.ones(D)
        w[3:] = weights
    outs = {}
    for backend, dev in (("cpu", "cpu"), ("gsplat", "cuda")):
        a = [t.to(dev) if torch.is_tensor(t) else t for t in args]
        # CUDA: the weights as a host sequence (the training loop's sync-free path); the CPU
        # backend gets the tensor
        wd = None if w is None else (w.tolist() if backend == "gsplat" else w)
        kw = dict(backgrounds=bg.to(dev), geom_grad_weights=wd,
                  return_contrib=True, backend=backend, rasterize_mode=raster_mode)
        r, al, g, info = _grads(lambda p, rest: rasterize(*p, *rest, **kw), a)
        outs[backend] = (r.cpu(), al.cpu(), [x.cpu() for x in g], info["contrib"].cpu(),
                         info["radii"].cpu())
    (rc, ac, gc, cc, radc), (rg, ag, gg, cg, radg) = outs["cpu"], outs["gsplat"]
    assert float((radc - radg).abs().max()) <= 1  # float rounding of ceil() may differ by 1 px
    _close(rg, rc, 1e-3, "render")
    _close(ag, ac, 1e-3, "alpha")
    for name, a, b in zip(("means", "quats", "scales", "opacities", "colors"), gg, gc):
        _close(a, b, 2e-2, f"grad {name}")
    _close(cg, cc, 1e-3, "contrib")


def test_grad_weights_on_the_host_are_analysed_without_the_device():
    from labelsplat.splat.rasterize import _grad_weights

    assert _grad_weights(None, torch.float32, torch.device("cpu")) == (None, None)
    assert _grad_weights([1, 1.0, 1], torch.float32, torch.device("cpu")) == (None, None)
    t, host = _grad_weights([1, 0.5, 0], torch.float32, torch.device("cpu"))
    assert host == (1.0, 0.5, 0.0) and t.tolist() == [1.0, 0.5, 0.0]
    t2, _ = _grad_weights(torch.tensor([1, 0.5, 0]), torch.float32, torch.device("cpu"))
    assert t2 is t  # one cached device copy per layout
    with pytest.raises(ValueError, match="geom_grad_weights must be"):
        args, bg = _scene()
        rasterize(*args[:5], *args[5:], geom_grad_weights=[1.0, 0.5], backend="naive")
