"""Rendering a :class:`~.model.GaussianModel`: camera tensors, one rasterisation of
[RGB | semantic head | extra channels], the backend choice and the views-seen count."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import LabelsplatError
from ..scene import Camera
from .model import GaussianModel
from .rasterize import rasterize


def camera_tensors(cameras: list[Camera], device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """viewmats (C,4,4) world->camera OpenCV, Ks (C,3,3), centres (C,3) for cameras in the model's frame."""
    viewmats = torch.tensor(np.stack([c.w2c_opencv for c in cameras]), dtype=dtype, device=device)
    Ks = torch.tensor(np.stack([c.K for c in cameras]), dtype=dtype, device=device)
    centres = torch.tensor(np.stack([c.center for c in cameras]), dtype=dtype, device=device)
    return viewmats, Ks, centres


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """``None``/``auto`` -> ``gsplat`` on CUDA, ``cpu`` otherwise; check explicit choices."""
    if backend in (None, "auto"):
        return "gsplat" if device.type == "cuda" else "cpu"
    if backend not in ("cpu", "gsplat", "naive"):
        raise LabelsplatError(f"unknown backend {backend!r}", hint="choose cpu or gsplat")
    if backend == "gsplat" and device.type != "cuda":
        raise LabelsplatError("--backend gsplat needs a CUDA device", hint="use --device cuda, or --backend cpu")
    if backend in ("cpu", "naive") and device.type != "cpu":
        raise LabelsplatError(f"--backend {backend} runs on the CPU only", hint="use --device cpu")
    return backend


def render_model(
    model: GaussianModel,
    cameras: list[Camera],
    *,
    backend: str = "cpu",
    active_sh: int | None = None,
    bg_rgb: torch.Tensor | None = None,
    bg_logit: float = 10.0,
    semantic_grad_weight: float = 1.0,
    extra: torch.Tensor | None = None,
    return_contrib: bool = False,
    cam_tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Render cameras (normalised frame, all the same size) in one rasterisation of [RGB | sem | extra].

    ``bg_rgb`` (C,3) background colour (default black); behind the semantic channels the head's
    background is composited (a logit head: ``bg_logit * one_hot(0)``, class 0 = background; a
    palette head: class 0's colour); the semantic channels' geometry gradients are scaled by
    ``semantic_grad_weight``. ``extra`` (N,E) optional per-Gaussian channels (background 0, no
    geometry gradient). ``cam_tensors``: the cameras' (viewmats, Ks, centres) already on the
    device (else built here).

    Returns rgb (C,H,W,3); the head's channels under ``model.head.key`` (``logits`` (C,H,W,K),
    K = 0: empty; or ``seg_rgb`` (C,H,W,3) unclamped palette colours); extra (C,H,W,E); depth
    (C,H,W) normalised-frame expected depth; alpha (C,H,W); info (the rasteriser's).
    """
    if len({(c.width, c.height) for c in cameras}) != 1:
        raise ValueError("render_model: all cameras of one call must have the same size")
    dev = model.device
    C = len(cameras)
    viewmats, Ks, centres = camera_tensors(cameras, dev) if cam_tensors is None else cam_tensors
    act = model.activated()
    head = model.head
    K = head.channels
    N = model.num_gaussians
    parts = [model.rgb(centres, active_sh)]
    if K > 0:
        parts.append(model.params["sem"][None].expand(C, N, K))
    E = 0
    if extra is not None:
        if extra.dim() != 2 or extra.shape[0] != N:
            raise ValueError(f"render_model: extra must be (N,E) with N={N}, got {tuple(extra.shape)}")
        E = extra.shape[1]
        parts.append(extra.to(dev, torch.float32)[None].expand(C, N, E))
    colors = torch.cat(parts, dim=-1)
    if bg_rgb is None:
        bg_rgb = torch.zeros(C, 3, device=dev)
    bg = torch.zeros(C, 3 + K + E, device=dev)
    bg[:, :3] = bg_rgb
    if K > 0:
        head.fill_background(bg[:, 3:3 + K], bg_logit)
    # on the host: the rasteriser decides the channel layout without a GPU sync
    ggw = (1.0,) * 3 + (float(semantic_grad_weight),) * K + (0.0,) * E
    render, alpha, info = rasterize(
        act["means"], act["quats"], act["scales"], act["opacities"], colors, viewmats, Ks,
        cameras[0].width, cameras[0].height, backgrounds=bg, render_depth=True,
        geom_grad_weights=ggw if (K + E) > 0 else None, backend=backend, return_contrib=return_contrib,
        rasterize_mode=model.rasterize_mode,
    )
    return {
        "rgb": render[..., :3],
        head.key: render[..., 3 : 3 + K],
        "extra": render[..., 3 + K : 3 + K + E],
        "depth": render[..., -1],
        "alpha": alpha[..., 0],
        "info": info,
    }


@torch.no_grad()
def count_views_seen(model: GaussianModel, cameras: list[Camera], *, backend: str, threshold: float) -> torch.Tensor:
    """(N,) int32: in how many of ``cameras`` (normalised frame) each Gaussian's blend-weight sum > threshold."""
    counts = torch.zeros(model.num_gaussians, dtype=torch.int32, device=model.device)
    for cam in cameras:
        out = render_model(model, [cam], backend=backend, return_contrib=True)
        contrib = out["info"]["contrib"][0]
        counts += (contrib > threshold).to(torch.int32)
    return counts


__all__ = ["camera_tensors", "count_views_seen", "render_model", "resolve_backend"]
