"""One call renders RGB + K semantic logits + expected depth + alpha for a batch of cameras.

:func:`rasterize` mirrors ``gsplat.rasterization`` (gsplat 1.5.3, unpacked, classic mode,
``render_mode="RGB+ED"`` when ``render_depth``) with three interchangeable backends:

* ``"cpu"`` -- tile-binned (16x16) numba kernels, forward and backward, behind a custom
  ``torch.autograd.Function`` (:mod:`._cpu_kernels`); the projection to 2D stays in torch
  autograd. Float32 or float64, CPU tensors.
* ``"naive"`` -- the frozen all-pairs pure-torch reference (:mod:`._torch_impl`); slow, for tests.
* ``"gsplat"`` -- gsplat's CUDA kernels (:mod:`._gsplat_backend`); CUDA float32 tensors only.

Conventions (all backends):

* ``means`` (N,3) world; ``quats`` (N,4) ``wxyz`` (normalised inside); ``scales`` (N,3)
  positive (already exponentiated); ``opacities`` (N,) in (0,1) (already through the sigmoid);
  ``colors`` (N,D) or per camera (C,N,D): any number of feature channels, e.g. RGB (after SH
  evaluation) followed by K semantic logits.
* ``viewmats`` (C,4,4) world-to-camera in the OpenCV convention (x right, y down, z forward),
  e.g. ``Camera.w2c_opencv``; ``Ks`` (C,3,3) pinhole intrinsics in pixels, pixel centres at
  +0.5 (pixel (i, j) covers [i, i+1) x [j, j+1)).
* Returns ``render`` (C,H,W,D) -- or (C,H,W,D+1) with the expected depth (camera z, normalised by
  alpha) appended when ``render_depth`` -- ``alpha`` (C,H,W,1) and ``info`` (gsplat's keys:
  ``means2d`` (C,N,2) whose ``.grad`` is filled by backward once ``retain_grad()`` was called,
  as gsplat's ``DefaultStrategy.step_pre_backward`` does; ``radii`` (C,N,2) int32, 0 = culled;
  ``depths`` (C,N); ``conics`` (C,N,3); ``opacities`` (C,N); ``width``; ``height``;
  ``n_cameras``; ``gaussian_ids`` None (unpacked); tile data where the backend has it; and
  ``contrib`` (C,N) when ``return_contrib``).
* ``backgrounds`` (C,D): composited behind the Gaussians on the feature channels,
  ``out = sum_i w_i c_i + (1 - alpha) * bg`` (the depth channel gets background 0).
* ``geom_grad_weights`` (D,): the weight of each feature channel's contribution to the
  gradients of the geometry (means, quats, scales, opacities). 1 everywhere (or None) = exact
  gradients (``semantic_grad=full``); 0 on the logit channels = stop-gradient of semantics
  into geometry (``none``); f = ``scaled:f``. Colour gradients are always exact; the depth
  channel and alpha always carry full geometry gradients. A sequence of floats or a CPU
  tensor is preferred in loops: it is analysed on the host (no GPU sync per call).
* ``rasterize_mode``: ``"classic"`` or ``"antialiased"`` (gsplat's names): in antialiased mode
  each Gaussian's opacity in a camera is multiplied by ``sqrt(det(cov2d) / det(cov2d + eps2d I))``,
  so the ``eps2d`` low-pass blur widens a sub-pixel Gaussian without brightening it (a model
  fitted in one mode must be rendered in the same mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ._constants import device_constant
from ._gsplat_backend import rasterize_gsplat
from ._torch_impl import rasterize_naive
from .config import RASTERIZE_MODES

Backend = Literal["cpu", "naive", "gsplat"]
BACKENDS = ("cpu", "naive", "gsplat")
RasterizeMode = Literal["classic", "antialiased"]


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                  backgrounds, geom_grad_weights, backend, rasterize_mode) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"rasterize: unknown backend {backend!r}; choose one of {BACKENDS}")
    if rasterize_mode not in RASTERIZE_MODES:
        raise ValueError(f"rasterize: unknown rasterize_mode {rasterize_mode!r}; choose one of {RASTERIZE_MODES}")
    tensors = {"means": means, "quats": quats, "scales": scales, "opacities": opacities,
               "colors": colors, "viewmats": viewmats, "Ks": Ks}
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise ValueError(f"rasterize: {name} must be a torch.Tensor, got {type(t).__name__}")
    if means.dim() != 2 or means.shape[1] != 3:
        raise ValueError(f"rasterize: means must be (N,3), got {tuple(means.shape)}")
    N = means.shape[0]
    if tuple(quats.shape) != (N, 4):
        raise ValueError(f"rasterize: quats must be (N,4)=({N},4) wxyz, got {tuple(quats.shape)}")
    if tuple(scales.shape) != (N, 3):
        raise ValueError(f"rasterize: scales must be (N,3)=({N},3), got {tuple(scales.shape)}")
    if tuple(opacities.shape) != (N,):
        raise ValueError(f"rasterize: opacities must be (N,)=({N},), got {tuple(opacities.shape)}")
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"rasterize: viewmats must be (C,4,4), got {tuple(viewmats.shape)}")
    C = viewmats.shape[0]
    if tuple(Ks.shape) != (C, 3, 3):
        raise ValueError(f"rasterize: Ks must be (C,3,3)=({C},3,3), got {tuple(Ks.shape)}")
    if not ((colors.dim() == 2 and colors.shape[0] == N) or
            (colors.dim() == 3 and colors.shape[:2] == (C, N))):
        raise ValueError(
            f"rasterize: colors must be (N,D) or (C,N,D) with N={N}, C={C}, got {tuple(colors.shape)}"
        )
    D = colors.shape[-1]
    if D < 1:
        raise ValueError("rasterize: colors needs at least one channel")
    if backgrounds is not None and tuple(backgrounds.shape) != (C, D):
        raise ValueError(
            f"rasterize: backgrounds must be (C,D)=({C},{D}), got {tuple(backgrounds.shape)}"
        )
    if geom_grad_weights is not None:
        shape = (tuple(geom_grad_weights.shape) if isinstance(geom_grad_weights, Tensor)
                 else (len(geom_grad_weights),))
        if shape != (D,):
            raise ValueError(f"rasterize: geom_grad_weights must be (D,)=({D},), got {shape}")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"rasterize: width and height must be positive, got {width}x{height}")
    dtype = means.dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"rasterize: means must be float32 or float64, got {dtype}")
    for name, t in tensors.items():
        if t.dtype != dtype:
            raise ValueError(f"rasterize: {name} has dtype {t.dtype}, expected {dtype} like means")
        if t.device != means.device:
            raise ValueError(f"rasterize: {name} is on {t.device}, expected {means.device} like means")
    if backend == "gsplat":
        if means.device.type != "cuda":
            raise ValueError("rasterize: backend='gsplat' needs CUDA tensors; use backend='cpu' on CPU")
        if dtype != torch.float32:
            raise ValueError("rasterize: backend='gsplat' needs float32 tensors")
    elif backend == "cpu" and means.device.type != "cpu":
        raise ValueError(
            f"rasterize: backend='cpu' needs CPU tensors, got {means.device}; use backend='gsplat' on CUDA"
        )


def _grad_weights(w, dtype, device) -> tuple[Tensor | None, tuple[float, ...] | None]:
    """``geom_grad_weights`` -> (tensor on the device or None when all are 1, host copy or None).

    A sequence of floats or a CPU tensor is analysed on the host and its device copy cached (a
    training loop passes the same weights every step: no host<->device traffic, no sync). A
    tensor already on an accelerator is tested there, which costs one host sync per call.
    """
    if w is None:
        return None, None
    if isinstance(w, Tensor) and w.device.type != "cpu":
        w = w.detach().to(dtype=dtype, device=device)
        return (None, None) if bool((w == 1).all()) else (w, None)
    host = tuple(float(x) for x in (w.detach().tolist() if isinstance(w, Tensor) else w))
    if all(x == 1.0 for x in host):
        return None, None
    return device_constant(host, dtype, device), host


def rasterize(
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
    geom_grad_weights: Tensor | Sequence[float] | None = None,
    backend: Backend = "cpu",
    tile_size: int = 16,
    return_contrib: bool = False,
    rasterize_mode: RasterizeMode = "classic",
) -> tuple[Tensor, Tensor, dict]:
    """Render C cameras of N Gaussians with D feature channels (see the module docstring).

    Returns ``(render (C,H,W,D[+1]), alpha (C,H,W,1), info)``.
    """
    width, height = int(width), int(height)
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                  backgrounds, geom_grad_weights, backend, rasterize_mode)
    if backgrounds is not None:
        backgrounds = backgrounds.to(dtype=means.dtype, device=means.device)
    geom_grad_weights, geom_grad_host = _grad_weights(geom_grad_weights, means.dtype, means.device)
    kwargs = dict(
        backgrounds=backgrounds, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d,
        radius_clip=radius_clip, render_depth=render_depth, geom_grad_weights=geom_grad_weights,
        return_contrib=return_contrib, antialiased=rasterize_mode == "antialiased",
    )
    args = (means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    if backend == "naive":
        return rasterize_naive(*args, **kwargs)
    if backend == "gsplat":
        return rasterize_gsplat(*args, tile_size=tile_size, geom_grad_host=geom_grad_host, **kwargs)
    from ._cpu_kernels import rasterize_cpu  # numba: compiling/loading the kernels costs start-up time

    return rasterize_cpu(*args, tile_size=tile_size, **kwargs)


__all__ = ["BACKENDS", "Backend", "RASTERIZE_MODES", "RasterizeMode", "device_constant", "rasterize"]
