"""gsplat (CUDA) backend of :func:`labelsplat.splat.rasterize.rasterize`.

Built on gsplat 1.5.3's low-level API, which is exactly what ``gsplat.rasterization`` does in
unpacked classic mode: ``fully_fused_projection`` (with ``opacities`` for the opacity-aware
radii) -> ``isect_tiles`` -> ``isect_offset_encode`` -> ``rasterize_to_pixels`` (channels split
in chunks of ``channel_chunk`` = 32 like ``rasterization``). Projecting and binning once lets the
geometry-gradient weights be realised without extra projections:

* all weights 1 (``semantic_grad=full``): one rasterisation of [features | depth];
* weights 0 on some channels (``none``): those channels are rasterised with *detached*
  means2d/conics/opacities, the others (and depth, and alpha) with live ones -- two passes over
  the same tile lists;
* weights in (0, 1) (``scaled:f``): gradient scaling around a single pass: the output channel's
  gradient is multiplied by ``w`` before gsplat's backward (so geometry receives ``w`` times
  that channel's contribution) and the colour gradient is divided by ``w`` afterwards (so
  colours stay exact).

``return_contrib`` is computed exactly with one extra 1-channel pass: the gradient of the
rendered sum of a constant-one channel with respect to that channel's per-(camera, Gaussian)
value is the sum over pixels of the Gaussian's blending weight.

gsplat is imported lazily here (its CUDA extension compiles on first use); this module never
runs on CPU tensors except through the injectable ``ops`` used by the orchestration test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor

from ._constants import device_constant

CHANNEL_CHUNK = 32


def gsplat_ops() -> SimpleNamespace:
    """The gsplat functions this backend calls (imported lazily)."""
    # gsplat: a heavy import, and its CUDA extension compiles on first use
    from gsplat import fully_fused_projection, isect_offset_encode, isect_tiles, rasterize_to_pixels

    return SimpleNamespace(
        fully_fused_projection=fully_fused_projection,
        isect_tiles=isect_tiles,
        isect_offset_encode=isect_offset_encode,
        rasterize_to_pixels=rasterize_to_pixels,
    )


class _GradScale(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``scale`` (broadcast on the last dim)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        (scale,) = ctx.saved_tensors
        return g * scale, None


def _index(ids: list[int], device) -> Tensor:
    """A cached long tensor of channel indices on ``device`` (built once per channel layout)."""
    return device_constant(tuple(ids), torch.long, device)


def _chunked(ops, means2d, conics, feats, opac, width, height, tile_size, isect_offsets,
             flatten_ids, backgrounds):
    """rasterize_to_pixels over channel chunks of CHANNEL_CHUNK (as gsplat.rasterization)."""
    D = feats.shape[-1]
    if D <= CHANNEL_CHUNK:
        return ops.rasterize_to_pixels(means2d, conics, feats, opac, width, height, tile_size,
                                       isect_offsets, flatten_ids, backgrounds=backgrounds)
    renders, alpha = [], None
    for i in range(0, D, CHANNEL_CHUNK):
        bg = None if backgrounds is None else backgrounds[..., i:i + CHANNEL_CHUNK]
        r, a = ops.rasterize_to_pixels(means2d, conics, feats[..., i:i + CHANNEL_CHUNK], opac,
                                       width, height, tile_size, isect_offsets, flatten_ids,
                                       backgrounds=bg)
        renders.append(r)
        alpha = a if alpha is None else alpha
    return torch.cat(renders, dim=-1), alpha


@dataclass
class _Binned:
    """One projection and tile binning of the Gaussians, shared by every rasterisation pass."""

    radii: Tensor
    means2d: Tensor
    depths: Tensor
    conics: Tensor
    opacities: Tensor  # (C, N)
    tile_w: int
    tile_h: int
    tiles_per_gauss: Tensor
    isect_ids: Tensor
    flatten_ids: Tensor
    isect_offsets: Tensor


def _project_and_bin(ops, means, quats, scales, opacities, viewmats, Ks, width, height, *, eps2d, near_plane,
                     far_plane, radius_clip, tile_size, antialiased=False) -> _Binned:
    C, N = viewmats.shape[0], means.shape[0]
    radii, means2d, depths, conics, comp = ops.fully_fused_projection(
        means, None, quats, scales, viewmats, Ks, width, height, eps2d=eps2d,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, packed=False,
        calc_compensations=antialiased, opacities=opacities,
    )
    op_c = torch.broadcast_to(opacities[None, :], (C, N))
    if comp is not None:
        op_c = op_c * comp
    tile_w = math.ceil(width / tile_size)
    tile_h = math.ceil(height / tile_size)
    tiles_per_gauss, isect_ids, flatten_ids = ops.isect_tiles(
        means2d, radii, depths, tile_size, tile_w, tile_h, packed=False, n_images=C
    )
    isect_offsets = ops.isect_offset_encode(isect_ids, C, tile_w, tile_h).reshape(C, tile_h, tile_w)
    return _Binned(radii, means2d, depths, conics, op_c, tile_w, tile_h, tiles_per_gauss, isect_ids, flatten_ids,
                   isect_offsets)


def _channel_layout(w: Tensor | None, host_w: tuple[float, ...] | None, D: int):
    """(host weights or None, live channels, detached channels). Which channels are live / detached
    / scaled is decided on the host: from ``host_w`` when the caller has it (no sync), else from one
    read of the device weights."""
    host = None if w is None else (tuple(host_w) if host_w is not None else tuple(w.tolist()))
    det = [] if host is None else [i for i, x in enumerate(host) if x == 0]
    live = [i for i in range(D) if host is None or host[i] != 0]
    return host, live, det


def _live_pass(raster, b: _Binned, colors_c, backgrounds, w, host, live, det, render_depth, device):
    """The pass over the live channels (+ depth, + alpha): returns (live render incl. depth, alpha,
    the live channels with their gradient scaling applied, their count)."""
    live_idx = _index(live, device) if det else None
    live_colors = colors_c[..., live_idx] if det else colors_c
    live_bg = None
    if backgrounds is not None:
        live_bg = backgrounds[..., live_idx] if det else backgrounds
    w_live = None
    if host is not None and live and any(host[i] != 1 for i in live):
        w_live = w[live_idx] if det else w
        live_colors = _GradScale.apply(live_colors, 1.0 / w_live)
        if live_bg is not None and live_bg.requires_grad:
            live_bg = _GradScale.apply(live_bg, 1.0 / w_live)

    n_live = live_colors.shape[-1]
    feats = [live_colors]
    if render_depth:
        feats.append(b.depths[..., None])
        if live_bg is not None:
            live_bg = torch.cat([live_bg, torch.zeros_like(live_bg[..., :1])], dim=-1)
    if n_live == 0 and not render_depth:  # alpha still needs a live pass
        feats.append(torch.zeros_like(b.depths[..., None]))
        if live_bg is not None:
            live_bg = torch.cat([live_bg, torch.zeros_like(live_bg[..., :1])], dim=-1)
    feats = torch.cat(feats, dim=-1) if len(feats) > 1 else feats[0]
    render_live, alpha = raster(b.means2d, b.conics, feats, b.opacities, live_bg)
    live_part = render_live[..., :n_live]
    if w_live is not None:
        live_part = _GradScale.apply(live_part, w_live)
    return render_live, alpha, live_part, n_live


def _info(b: _Binned, width: int, height: int, tile_size: int, C: int) -> dict:
    return {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": b.radii,
        "means2d": b.means2d,
        "depths": b.depths,
        "conics": b.conics,
        "opacities": b.opacities,
        "tile_width": b.tile_w,
        "tile_height": b.tile_h,
        "tiles_per_gauss": b.tiles_per_gauss,
        "isect_ids": b.isect_ids,
        "flatten_ids": b.flatten_ids,
        "isect_offsets": b.isect_offsets,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_batches": 1,
        "n_cameras": C,
    }


def _contrib(ops, b: _Binned, means: Tensor, width: int, height: int, tile_size: int) -> Tensor:
    """(C, N) blend-weight sums: the gradient of a rendered constant-one channel's sum."""
    C, N = b.opacities.shape
    with torch.enable_grad():
        ones = torch.ones(C, N, 1, dtype=means.dtype, device=means.device, requires_grad=True)
        r1, _ = ops.rasterize_to_pixels(b.means2d.detach(), b.conics.detach(), ones, b.opacities.detach(),
                                        width, height, tile_size, b.isect_offsets, b.flatten_ids)
        (contrib,) = torch.autograd.grad(r1.sum(), ones)
    return contrib[..., 0].detach()


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    backgrounds: Tensor | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    radius_clip: float = 0.0,
    render_depth: bool = True,
    geom_grad_weights: Tensor | None = None,
    tile_size: int = 16,
    return_contrib: bool = False,
    ops: SimpleNamespace | None = None,
    geom_grad_host: tuple[float, ...] | None = None,
    antialiased: bool = False,
) -> tuple[Tensor, Tensor, dict]:
    """gsplat backend (inputs validated by :func:`~labelsplat.splat.rasterize.rasterize`).

    ``geom_grad_host``: the weights' values on the host (given by ``rasterize`` when the caller
    passed them as a sequence or CPU tensor), so that the channel layout costs no GPU sync.
    """
    ops = gsplat_ops() if ops is None else ops
    C, N = viewmats.shape[0], means.shape[0]
    b = _project_and_bin(ops, means, quats, scales, opacities, viewmats, Ks, width, height, eps2d=eps2d,
                         near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, tile_size=tile_size,
                         antialiased=antialiased)
    colors_c = colors if colors.dim() == 3 else torch.broadcast_to(colors[None], (C, N, colors.shape[-1]))
    D = colors_c.shape[-1]
    raster = lambda m, q, f, o, bg: _chunked(  # noqa: E731
        ops, m, q, f, o, width, height, tile_size, b.isect_offsets, b.flatten_ids, bg
    )
    w = geom_grad_weights
    host, live, det = _channel_layout(w, geom_grad_host, D)
    render_live, alpha, live_part, n_live = _live_pass(raster, b, colors_c, backgrounds, w, host, live, det,
                                                       render_depth, means.device)
    if det:
        det_idx = _index(det, means.device)
        det_bg = None if backgrounds is None else backgrounds[..., det_idx]
        render_det, _ = raster(b.means2d.detach(), b.conics.detach(), colors_c[..., det_idx],
                               b.opacities.detach(), det_bg)
        order = [0] * D
        for j, i in enumerate(live + det):
            order[i] = j
        render = torch.cat([live_part, render_det], dim=-1)[..., _index(order, means.device)]
    else:
        render = live_part
    if render_depth:
        depth = render_live[..., n_live:n_live + 1] / alpha.clamp(min=1e-10)
        render = torch.cat([render, depth], dim=-1)
    info = _info(b, width, height, tile_size, C)
    if return_contrib:
        info["contrib"] = _contrib(ops, b, means, width, height, tile_size)
    return render, alpha, info


__all__ = ["CHANNEL_CHUNK", "gsplat_ops", "rasterize_gsplat"]
