"""The operations of 3D Gaussian Splatting as Markov chain Monte Carlo (Kheradmand et al. 2024) in
plain torch, so that gsplat's ``MCMCStrategy`` runs on every backend (:class:`.densify.MCMCDensify`).

gsplat 1.5.3's ``relocate`` / ``sample_add`` (``gsplat/strategy/ops.py``) call its CUDA-only
``gsplat.relocation.compute_relocation`` and ``inject_noise_to_position`` its CUDA
``quat_scale_to_covar_preci``. The functions here do the same edits of the parameters and of the
Adam state: :func:`compute_relocation` runs gsplat's kernel on CUDA tensors and
:func:`relocation_torch` (the frozen reference, eq. 9 of the paper, the form of gsplat's
``relocation_kernel``) elsewhere; the noise uses :func:`._torch_impl.covariance_3d` everywhere.

Relocation: ``n`` copies of a Gaussian of opacity ``o`` and scale ``s`` replace it with opacity
``o' = 1 - (1 - o)^(1/n)`` (so the copies together are as opaque as the original) and scale
``s * o / sum_{i=1..n} sum_{k=0..i-1} C(i-1, k) (-1)^k / sqrt(k + 1) o'^(k+1)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ._torch_impl import covariance_3d


def relocation_torch(opacities: Tensor, scales: Tensor, ratios: Tensor, binoms: Tensor) -> tuple[Tensor, Tensor]:
    """(new opacities (N,), new scales (N, 3)) of Gaussians copied ``ratios`` (N,) times each; ratios
    are clamped to [1, n_max] as gsplat does. Evaluated in float64 (the alternating sum cancels),
    returned in the inputs' dtype."""
    n_max = binoms.shape[0]
    n = ratios.long().clamp(1, n_max)
    o = opacities.double()
    new_o = 1.0 - (1.0 - o) ** (1.0 / n.double())
    k = torch.arange(n_max, dtype=torch.float64, device=o.device)
    # sum_{i=1..n} C(i-1, k) = row n-1 of the cumulative sum of the table over its rows
    coef = binoms.double().to(o.device).cumsum(0)[n - 1] * ((-1.0) ** k / torch.sqrt(k + 1))
    denom = (coef * new_o[:, None] ** (k + 1)).sum(-1)
    new_s = (o / denom)[:, None] * scales.double()
    return new_o.to(opacities.dtype), new_s.to(scales.dtype)


def compute_relocation(opacities: Tensor, scales: Tensor, ratios: Tensor, binoms: Tensor) -> tuple[Tensor, Tensor]:
    """gsplat's CUDA relocation kernel on CUDA tensors, :func:`relocation_torch` elsewhere."""
    if opacities.is_cuda:
        from gsplat.relocation import compute_relocation as cuda_relocation  # lazy: gsplat, only on CUDA

        return cuda_relocation(opacities, scales, ratios.clone(), binoms)
    return relocation_torch(opacities, scales, ratios, binoms)


@torch.no_grad()
def _edit_rows(params, optimizers: dict[str, torch.optim.Optimizer], param_fn: Callable[[str, Tensor], Tensor],
               moment_fn: Callable[[Tensor], Tensor]) -> None:
    """Replace every parameter by ``param_fn(name, p)`` and its Adam moments by ``moment_fn(v)``
    (the step counters kept), as gsplat's strategy ops do."""
    for name in list(params.keys()):
        old = params[name]
        new = torch.nn.Parameter(param_fn(name, old), requires_grad=old.requires_grad)
        params[name] = new
        opt = optimizers.get(name)
        if opt is None:
            continue
        state = opt.state.pop(old, {})
        opt.state[new] = {key: (v if key == "step" else moment_fn(v)) for key, v in state.items()}
        opt.param_groups[0]["params"] = [new]


def _sample(weights: Tensor, n: int) -> Tensor:
    return torch.multinomial(weights, n, replacement=True)


def _relocated(params, idx: Tensor, binoms: Tensor, min_opacity: float) -> tuple[Tensor, Tensor]:
    """Logit opacities and log scales of the Gaussians ``idx`` (with repeats) once each is split
    into as many copies as it appears in ``idx`` plus one."""
    opac = torch.sigmoid(params["opacities"].detach())
    ratios = torch.bincount(idx)[idx] + 1
    new_o, new_s = compute_relocation(opac[idx], torch.exp(params["scales"].detach())[idx], ratios, binoms)
    new_o = new_o.clamp(min=min_opacity, max=1.0 - torch.finfo(torch.float32).eps)
    return torch.logit(new_o), torch.log(new_s)


@torch.no_grad()
def relocate(params, optimizers, dead: Tensor, binoms: Tensor, min_opacity: float = 0.005) -> int:
    """Move the Gaussians of the mask ``dead`` onto live ones drawn by opacity (gsplat's ``relocate``);
    returns how many moved (none when no Gaussian is alive)."""
    dead_idx = dead.nonzero(as_tuple=True)[0]
    alive_idx = (~dead).nonzero(as_tuple=True)[0]
    if len(dead_idx) == 0 or len(alive_idx) == 0:
        return 0
    probs = torch.sigmoid(params["opacities"].detach())[alive_idx].flatten()
    src = alive_idx[_sample(probs, len(dead_idx))]
    logit_o, log_s = _relocated(params, src, binoms, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = _with_relocated(name, p, src, logit_o, log_s)
        p[dead_idx] = p[src]
        return p

    def moment_fn(v: Tensor) -> Tensor:
        v = v.clone()
        v[src] = 0
        return v

    _edit_rows(params, optimizers, param_fn, moment_fn)
    return len(dead_idx)


def _with_relocated(name: str, p: Tensor, src: Tensor, logit_o: Tensor, log_s: Tensor) -> Tensor:
    """A detached copy of parameter ``name`` whose rows ``src`` take their relocated opacity / scale."""
    p = p.detach().clone()
    if name == "opacities":
        p[src] = logit_o
    elif name == "scales":
        p[src] = log_s
    return p


@torch.no_grad()
def sample_add(params, optimizers, n: int, binoms: Tensor, min_opacity: float = 0.005) -> int:
    """Add ``n`` Gaussians copied from ones drawn by opacity (gsplat's ``sample_add``); returns ``n``."""
    if n <= 0:
        return 0
    src = _sample(torch.sigmoid(params["opacities"].detach()).flatten(), n)
    logit_o, log_s = _relocated(params, src, binoms, min_opacity)

    def param_fn(name: str, p: Tensor) -> Tensor:
        p = _with_relocated(name, p, src, logit_o, log_s)
        return torch.cat([p, p[src]])

    def moment_fn(v: Tensor) -> Tensor:
        return torch.cat([v, torch.zeros((n, *v.shape[1:]), dtype=v.dtype, device=v.device)])

    _edit_rows(params, optimizers, param_fn, moment_fn)
    return n


@torch.no_grad()
def inject_position_noise(params, scaler: float) -> None:
    """Move the near-transparent Gaussians' means by Gaussian noise shaped by their covariance
    (gsplat's ``inject_noise_to_position``: the gate ``sigmoid(100 (1 - o - 0.995))`` leaves the
    opaque ones in place)."""
    opac = torch.sigmoid(params["opacities"].detach().flatten())
    cov = covariance_3d(params["quats"].detach(), torch.exp(params["scales"].detach()))
    gate = torch.sigmoid(100.0 * ((1.0 - opac) - 0.995))
    noise = torch.randn_like(params["means"]) * gate[:, None] * scaler
    params["means"].add_(torch.einsum("bij,bj->bi", cov, noise))


__all__ = ["compute_relocation", "inject_position_noise", "relocate", "relocation_torch",
           "sample_add"]
