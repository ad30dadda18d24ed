"""Real spherical harmonics in torch, in gsplat's convention (so CPU and CUDA fits agree).

gsplat's ``spherical_harmonics`` is CUDA-only; this is the same basis (Sloan's "Efficient
Spherical Harmonic Evaluation", JCGT 2013; coefficient order and signs as gsplat / the Inria
3DGS code) for degrees 0..4, differentiable with respect to coefficients and directions.

* ``sh`` (N, B, 3) coefficients with ``B >= (degree + 1)^2`` (extra bands are ignored, so a
  model can grow its degree progressively); ``dirs`` (..., N, 3) viewing directions from the
  camera centre to the Gaussian (``means - campos``), normalised here.
* Colour = ``clamp_min(eval_sh(...) + 0.5, 0)`` (:func:`rgb_from_sh`), so a DC coefficient
  ``RGB2SH(c) = (c - 0.5) / C0`` gives colour ``c``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

C0 = 0.28209479177387814
MAX_SH_DEGREE = 4


def RGB2SH(rgb: Tensor) -> Tensor:
    """DC SH coefficient giving colour ``rgb`` (any shape): ``(rgb - 0.5) / C0``."""
    return (rgb - 0.5) / C0


def SH2RGB(sh: Tensor) -> Tensor:
    """Colour of a DC SH coefficient (any shape): ``sh * C0 + 0.5``."""
    return sh * C0 + 0.5


def num_sh_bases(degree: int) -> int:
    """Number of SH basis functions up to ``degree``: ``(degree + 1)^2``."""
    return (int(degree) + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """SH basis values (..., (degree+1)^2) at unit directions ``dirs`` (..., 3)."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_bases: degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    out = [torch.full_like(dirs[..., 0], C0)]
    if degree >= 1:
        x, y, z = dirs.unbind(-1)
        a = -0.48860251190292
        # order: index 1 = y, 2 = z, 3 = x (gsplat / Inria)
        out += [a * y, -a * z, a * x]
    if degree >= 2:
        z2 = z * z
        tb = -1.092548430592079 * z
        ta = 0.5462742152960395
        c1 = x * x - y * y
        s1 = 2 * x * y
        out += [ta * s1, tb * y, 0.9461746957575601 * z2 - 0.3153915652525201, tb * x, ta * c1]
    if degree >= 3:
        tc = -2.285228997322329 * z2 + 0.4570457994644658
        tb = 1.445305721320277 * z
        ta = -0.5900435899266435
        c2 = x * c1 - y * s1
        s2 = x * s1 + y * c1
        out += [ta * s2, tb * s1, tc * y, z * (1.865881662950577 * z2 - 1.119528997770346),
                tc * x, tb * c1, ta * c2]
    if degree >= 4:
        td = z * (-4.683325804901025 * z2 + 2.007139630671868)
        tc = 3.31161143515146 * z2 - 0.47308734787878
        tb = -1.770130769779931 * z
        ta = 0.6258357354491763
        c3 = x * c2 - y * s2
        s3 = x * s2 + y * c2
        b20 = 1.984313483298443 * z2 * (1.865881662950577 * z2 - 1.119528997770346) + (
            -1.006230589874905 * (0.9461746957575601 * z2 - 0.3153915652525201)
        )
        out += [ta * s3, tb * s2, tc * s1, td * y, b20, td * x, tc * c1, tb * c2, ta * c3]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, sh: Tensor, dirs: Tensor) -> Tensor:
    """Evaluate SH colours: ``sh`` (N, B, 3), ``dirs`` (..., N, 3) -> (..., N, 3) (no +0.5).

    Uses the first ``(degree + 1)^2`` coefficients of ``sh``; ``dirs`` need not be unit length.
    """
    nb = num_sh_bases(degree)
    if sh.dim() != 3 or sh.shape[-1] != 3 or sh.shape[1] < nb:
        raise ValueError(
            f"eval_sh: sh must be (N,B,3) with B >= {nb} for degree {degree}, got {tuple(sh.shape)}"
        )
    if dirs.shape[-1] != 3 or dirs.dim() < 2 or dirs.shape[-2] != sh.shape[0]:
        raise ValueError(
            f"eval_sh: dirs must be (...,N,3) with N={sh.shape[0]}, got {tuple(dirs.shape)}"
        )
    basis = sh_bases(degree, F.normalize(dirs, p=2, dim=-1))  # (...,N,nb)
    return torch.einsum("...nb,nbc->...nc", basis, sh[:, :nb, :])


def rgb_from_sh(degree: int, sh: Tensor, dirs: Tensor) -> Tensor:
    """Colours (..., N, 3) = ``clamp_min(eval_sh + 0.5, 0)`` as gsplat's rasterization does."""
    return torch.clamp_min(eval_sh(degree, sh, dirs) + 0.5, 0.0)


def view_dirs(means: Tensor, viewmats: Tensor) -> Tensor:
    """Directions (C, N, 3) from each camera centre to each Gaussian mean (``means - campos``),
    with ``viewmats`` (C, 4, 4) world-to-camera (any convention: only the centre is used)."""
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3]
    campos = -torch.einsum("cji,cj->ci", R, t)  # R^T t
    return means[None, :, :] - campos[:, None, :]


__all__ = ["C0", "MAX_SH_DEGREE", "RGB2SH", "SH2RGB", "eval_sh", "num_sh_bases", "rgb_from_sh",
           "sh_bases", "view_dirs"]
