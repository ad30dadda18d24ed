"""Frozen, naive, pure-torch Gaussian splatting: the reference every backend is tested against.

Everything here is differentiable through torch autograd and deliberately simple:
compositing evaluates every (pixel, Gaussian) pair of every camera, so it costs
O(C * H * W * N) time and memory. Do not optimise this file; it is the tests' ground truth.

Conventions (identical to gsplat 1.5.3's CUDA kernels, which this mirrors):

* ``means`` (N, 3) world; ``quats`` (N, 4) ``wxyz`` (normalised here); ``scales`` (N, 3)
  positive standard deviations (already exponentiated); ``opacities`` (N,) in (0, 1).
* ``viewmats`` (C, 4, 4) world-to-camera, OpenCV (x right, y down, z forward);
  ``Ks`` (C, 3, 3) pinhole intrinsics in pixels.
* Pixel (i, j) (column i, row j) covers [i, i+1) x [j, j+1); its centre is (i + 0.5, j + 0.5),
  and ``cx, cy`` are in that convention.
* EWA splatting: the 3D covariance R S S^T R^T is mapped to camera space and through the
  perspective Jacobian (evaluated at the mean, with x/z and y/z clamped to 1.3x the field of
  view as gsplat does); ``eps2d`` is added to the diagonal of the 2D covariance (low-pass blur).
  In ``antialiased`` mode (gsplat's ``rasterize_mode="antialiased"``) each Gaussian's opacity in a
  camera is multiplied by ``sqrt(det(cov2d) / det(cov2d + eps2d I))``, so the blur spreads a small
  Gaussian's footprint without adding to its total weight; the culling and the extent below use
  that compensated opacity.
* A Gaussian is culled in a camera (``radii == 0``) when its depth is outside
  [near_plane, far_plane], its blurred 2D covariance is singular, its opacity is below 1/255,
  both radii are <= ``radius_clip`` or its bounding box misses the image. Radii use gsplat's
  opacity-aware extent ``min(3.33, sqrt(2 ln(255 * opacity)))`` standard deviations.
* Per pixel, Gaussians are blended front to back by camera depth: ``alpha = min(0.999,
  opacity * exp(-sigma))`` with ``sigma = 0.5 * d^T conic d``; pairs with ``alpha < 1/255``
  are skipped; blending stops *before* the Gaussian that would bring the transmittance to
  ``<= 1e-4`` (gsplat's exclusive early stop).
* Backgrounds are composited as ``out = sum_i w_i c_i + (1 - alpha) * bg``; the optional
  expected-depth channel is ``sum_i w_i z_i / max(alpha, 1e-10)`` (gsplat's ``"RGB+ED"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
TRANSMITTANCE_THRESHOLD = 1e-4
MAX_ALPHA = 0.999
RADIUS_EXTEND = 3.33


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) in ``wxyz`` order (normalised here)."""
    q = F.normalize(quats, p=2, dim=-1)
    w, x, y, z = torch.unbind(q, dim=-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return R.reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariances (N, 3, 3) = R diag(s^2) R^T from ``wxyz`` quats (N, 4) and scales (N, 3)."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


@dataclass
class Projection:
    """Per-camera 2D Gaussians (all (C, N, ...); entries with ``radii == 0`` are culled).

    ``means2d`` (C, N, 2) pixels, ``conics`` (C, N, 3) = upper triangle (a, b, c) of the inverse
    blurred 2D covariance, ``depths`` (C, N) camera z, ``radii`` (C, N, 2) int32 bounding-box
    half sizes in pixels (0 = culled), ``covars2d`` (C, N, 2, 2) blurred 2D covariances,
    ``compensations`` (C, N) the anti-aliasing opacity factors (None in classic mode).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    covars2d: Tensor | None
    compensations: Tensor | None = None

    def camera_opacities(self, opacities: Tensor) -> Tensor:
        """(C, N) opacities per camera: ``opacities`` (N,), times the compensations when there are any."""
        op = opacities[None, :].expand(self.depths.shape)
        return op if self.compensations is None else op * self.compensations

    @property
    def valid(self) -> Tensor:
        return (self.radii > 0).all(dim=-1)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    radius_clip: float = 0.0,
    antialiased: bool = False,
) -> Projection:
    """EWA projection of 3D Gaussians (N) into C pinhole cameras, differentiable (gsplat's
    ``fully_fused_projection`` with ``opacities`` given, unpacked; ``antialiased`` = its
    ``calc_compensations``)."""
    covars = covariance_3d(quats, scales)  # (N,3,3)
    R = viewmats[:, :3, :3]  # (C,3,3)
    t = viewmats[:, :3, 3]  # (C,3)
    means_c = means[None, :, :] @ R.transpose(-1, -2) + t[:, None, :]  # (C,N,3)
    covars_c = R[:, None] @ covars[None] @ R[:, None].transpose(-1, -2)  # (C,N,3,3) = R S R^T

    x, y, z = torch.unbind(means_c, dim=-1)  # (C,N)
    fx = Ks[:, 0, 0, None]
    fy = Ks[:, 1, 1, None]
    cx = Ks[:, 0, 2, None]
    cy = Ks[:, 1, 2, None]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    rz = 1.0 / z
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    zero = torch.zeros_like(z)
    J = torch.stack(
        [fx * rz, zero, -fx * tx * rz * rz, zero, fy * rz, -fy * ty * rz * rz], dim=-1
    ).reshape(z.shape + (2, 3))
    cov2d = J @ covars_c @ J.transpose(-1, -2)  # (C,N,2,2)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # (C,N,2)

    eye = torch.eye(2, dtype=means.dtype, device=means.device)
    det_raw = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    cov2d = cov2d + eps2d * eye
    det = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    comp = None
    if antialiased:  # sqrt(max(0, det_raw / det)); 0 (no gradient) where the ratio is not positive
        ratio = det_raw / det_safe
        pos = ratio > 0
        comp = torch.where(pos, torch.sqrt(torch.where(pos, ratio, torch.ones_like(ratio))), torch.zeros_like(ratio))
    conics = torch.stack(
        [cov2d[..., 1, 1] / det_safe, -cov2d[..., 0, 1] / det_safe, cov2d[..., 0, 0] / det_safe],
        dim=-1,
    )

    with torch.no_grad():
        op = opacities.detach()[None, :].expand_as(z)
        if comp is not None:
            op = op * comp.detach()
        extend = torch.clamp(
            torch.sqrt(2.0 * torch.log(torch.clamp(op / ALPHA_THRESHOLD, min=1.0))), max=RADIUS_EXTEND
        )
        var_x = cov2d[..., 0, 0].detach().clamp(min=0)
        var_y = cov2d[..., 1, 1].detach().clamp(min=0)
        rad_x = torch.ceil(extend * torch.sqrt(var_x))
        rad_y = torch.ceil(extend * torch.sqrt(var_y))
        m2 = means2d.detach()
        valid = (
            (z.detach() >= near_plane)
            & (z.detach() <= far_plane)
            & (det.detach() > 0)
            & (op >= ALPHA_THRESHOLD)
            & ~((rad_x <= radius_clip) & (rad_y <= radius_clip))
            & ~(m2[..., 0] + rad_x <= 0)
            & ~(m2[..., 0] - rad_x >= width)
            & ~(m2[..., 1] + rad_y <= 0)
            & ~(m2[..., 1] - rad_y >= height)
        )
        radii = torch.stack([rad_x, rad_y], dim=-1)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii))
        radii = torch.nan_to_num(radii, nan=0.0).to(torch.int32)
    return Projection(means2d=means2d, conics=conics, depths=z, radii=radii, covars2d=cov2d, compensations=comp)


def blend_weights(pix: Tensor, m: Tensor, q: Tensor, o: Tensor) -> Tensor:
    """(P, M) blending weights alpha x transmittance of M depth-sorted Gaussians (2D means ``m``,
    conics ``q``, opacities ``o``) at P pixel centres ``pix`` (x, y), with gsplat's thresholds."""
    d = m[None, :, :] - pix[:, None, :]  # (P,M,2)
    dx, dy = d[..., 0], d[..., 1]
    sigma = 0.5 * (q[:, 0] * dx * dx + q[:, 2] * dy * dy) + q[:, 1] * dx * dy
    alpha = torch.clamp_max(o * torch.exp(-sigma), MAX_ALPHA)
    keep = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    next_T = torch.cumprod(1.0 - alpha, dim=1)
    T = torch.cat([torch.ones_like(next_T[:, :1]), next_T[:, :-1]], dim=1)
    included = (next_T > TRANSMITTANCE_THRESHOLD).detach()
    return torch.where(included, alpha * T, torch.zeros_like(alpha))


def composite_all_pairs(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    depths: Tensor,
    valid: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Front-to-back alpha compositing of every pixel with every valid Gaussian.

    Args: ``means2d`` (C,N,2), ``conics`` (C,N,3), ``opacities`` (C,N), ``features`` (C,N,F),
    ``depths`` (C,N) (sort key only), ``valid`` (C,N) bool, ``backgrounds`` (C,F) or None.
    Returns ``render`` (C,H,W,F) (background composited), ``alpha`` (C,H,W,1) and ``contrib``
    (C,N) = sum over pixels of each Gaussian's blending weight (detached).
    """
    C, N, Fdim = features.shape
    device, dtype = means2d.device, means2d.dtype
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1) + 0.5  # (P,2)
    renders, alphas, contribs = [], [], []
    for c in range(C):
        idx = torch.nonzero(valid[c], as_tuple=False).reshape(-1)
        order = torch.argsort(depths[c, idx].detach(), stable=True)
        idx = idx[order]
        m = means2d[c, idx]  # (M,2)
        q = conics[c, idx]  # (M,3)
        o = opacities[c, idx]  # (M,)
        f = features[c, idx]  # (M,F)
        w = blend_weights(pix, m, q, o)  # (P,M)
        render = w @ f  # (P,F)
        acc = w.sum(dim=1, keepdim=True)  # (P,1)
        if backgrounds is not None:
            render = render + (1.0 - acc) * backgrounds[c][None, :]
        renders.append(render.reshape(height, width, Fdim))
        alphas.append(acc.reshape(height, width, 1))
        contrib = torch.zeros(N, dtype=dtype, device=device)
        contrib[idx] = w.detach().sum(dim=0)
        contribs.append(contrib)
    return torch.stack(renders), torch.stack(alphas), torch.stack(contribs)


def rasterize_naive(
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
    return_contrib: bool = False,
    antialiased: bool = False,
) -> tuple[Tensor, Tensor, dict]:
    """The naive reference of :func:`labelsplat.splat.rasterize.rasterize` (same arguments and
    outputs; ``colors`` (N,D) or (C,N,D)).

    ``geom_grad_weights`` (D,) is realised literally: channel k's output is
    ``w_k * f(live geometry) + (1 - w_k) * f(detached geometry)`` with live colours in both, so
    values are unchanged, colour gradients are exact and geometry gradients from channel k are
    scaled by ``w_k``. The depth channel and alpha always carry full geometry gradients.
    """
    C = viewmats.shape[0]
    N = means.shape[0]
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, radius_clip=radius_clip, antialiased=antialiased,
    )
    colors_c = colors if colors.dim() == 3 else colors[None].expand(C, N, colors.shape[-1])
    D = colors_c.shape[-1]
    op_c = proj.camera_opacities(opacities)
    valid = proj.valid
    feats = colors_c
    bgs = backgrounds
    if render_depth:
        feats = torch.cat([colors_c, proj.depths[..., None]], dim=-1)
        if backgrounds is not None:
            bgs = torch.cat([backgrounds, torch.zeros_like(backgrounds[:, :1])], dim=-1)
    render, alpha, contrib = composite_all_pairs(
        proj.means2d, proj.conics, op_c, feats, proj.depths, valid, width, height, bgs
    )
    if geom_grad_weights is not None:
        w = geom_grad_weights.to(dtype=render.dtype, device=render.device)
        det_render, _, _ = composite_all_pairs(
            proj.means2d.detach(), proj.conics.detach(), op_c.detach(), colors_c,
            proj.depths.detach(), valid, width, height, backgrounds,
        )
        mixed = w * render[..., :D] + (1.0 - w) * det_render
        render = torch.cat([mixed, render[..., D:]], dim=-1)
    if render_depth:
        render = torch.cat(
            [render[..., :-1], render[..., -1:] / alpha.clamp(min=1e-10)], dim=-1
        )
    info = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": op_c,
        "tile_width": None,
        "tile_height": None,
        "tiles_per_gauss": None,
        "isect_ids": None,
        "flatten_ids": None,
        "isect_offsets": None,
        "width": width,
        "height": height,
        "tile_size": None,
        "n_batches": 1,
        "n_cameras": C,
    }
    if return_contrib:
        info["contrib"] = contrib
    return render, alpha, info


__all__ = [
    "ALPHA_THRESHOLD",
    "MAX_ALPHA",
    "RADIUS_EXTEND",
    "TRANSMITTANCE_THRESHOLD",
    "Projection",
    "composite_all_pairs",
    "covariance_3d",
    "project_gaussians",
    "quat_to_rotmat",
    "rasterize_naive",
]
