"""Fit losses: RGB L1 + SSIM, semantic cross-entropy (ignore 255), palette L1, alpha/mask loss.

Shapes: images (C, H, W, 3) float in [0, 1]; logits (C, H, W, K); labels (C, H, W) int
class ids with 255 = ignore, or soft targets (C, H, W, K) probabilities; alpha and masks
(C, H, W) in [0, 1]. Every loss is a scalar mean over valid pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def _check(name: str, t: torch.Tensor, ndim: int) -> None:
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims, got shape {tuple(t.shape)}")


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if pred.shape != target.shape:
        raise ValueError(f"l1_loss: shapes differ {tuple(pred.shape)} vs {tuple(target.shape)}")
    return (pred - target).abs().mean()


def _gaussian_1d(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _band(n: int, g: torch.Tensor) -> torch.Tensor:
    """(n, n) matrix B with B[j, i] = g[j - i + r] (|j - i| <= r): ``v @ B`` blurs v with zero padding."""
    r = (len(g) - 1) // 2
    idx = torch.arange(n, device=g.device)
    off = idx[:, None] - idx[None, :] + r
    ok = (off >= 0) & (off < len(g))
    return torch.where(ok, g[off.clamp(0, len(g) - 1)], torch.zeros((), dtype=g.dtype, device=g.device))


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of images (C, H, W, ch) in [0, 1] (Gaussian window 11 / 1.5, zero padding, as 3DGS).

    The 2D Gaussian window is applied as two 1D passes (banded matrix products) over the five
    stacked statistics (x, y, x^2, y^2, xy): the same numbers as the 2D convolution, much
    cheaper on the CPU.
    """
    _check("pred", pred, 4)
    if pred.shape != target.shape:
        raise ValueError(f"ssim: shapes differ {tuple(pred.shape)} vs {tuple(target.shape)}")
    x = pred.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2)
    ch = x.shape[1]
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (C, 5ch, H, W)
    g = _gaussian_1d(window_size, sigma, x.device, x.dtype)
    H, W = stats.shape[-2:]
    stats = _band(H, g).T @ stats @ _band(W, g)  # zero-padded separable blur as two banded matmuls
    mu_x, mu_y, exx, eyy, exy = torch.split(stats, ch, dim=1)
    sxx = exx - mu_x * mu_x
    syy = eyy - mu_y * mu_y
    sxy = exy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2))
    return s.mean()


def rgb_loss(pred: torch.Tensor, target: torch.Tensor, ssim_lambda: float = 0.2) -> torch.Tensor:
    """(1 - l) * L1 + l * (1 - SSIM) for images (C, H, W, 3)."""
    loss = (1.0 - ssim_lambda) * l1_loss(pred, target)
    if ssim_lambda > 0:
        loss = loss + ssim_lambda * (1.0 - ssim(pred, target))
    return loss


def _hard_targets(target: torch.Tensor, K: int, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid mask, ids with invalid pixels set to 0) for integer targets: ``ignore_index``
    and ids outside [0, K) are invalid."""
    t = target.long()
    valid = (t != ignore_index) & (t >= 0) & (t < K)
    return valid, torch.where(valid, t, torch.zeros_like(t))


def _weighted_mean(per: torch.Tensor, w: torch.Tensor, confidence: torch.Tensor | None,
                   like: torch.Tensor) -> torch.Tensor:
    """Mean of per-pixel losses ``per`` under weights ``w`` (times ``confidence``); a zero that
    keeps the graph of ``like`` when no pixel has weight."""
    if confidence is not None:
        if confidence.shape != per.shape:
            raise ValueError(f"confidence shape {tuple(confidence.shape)} differs from {tuple(per.shape)}")
        w = w * confidence
    # no data-dependent branch (a host sync per step on a GPU): with no weight the numerator
    # is an exact 0 (masked, so a non-finite loss at an ignored pixel cannot leak) that still
    # belongs to the graph of ``like`` through ``per``
    denom = w.sum()
    num = torch.where(w > 0, per * w, torch.zeros_like(per)).sum()
    return num / torch.where(denom > 0, denom, torch.ones_like(denom))


def semantic_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    confidence: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    gce_q: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of softmax(``logits`` (C, H, W, K)) against ``target``.

    ``gce_q`` in (0, 1] switches to the generalized cross-entropy (1 - p_t^q) / q (Zhang &
    Sabuncu 2018), robust to label noise: its gradient is p_t^q x the cross-entropy's, so pixels
    the model finds implausible pull less; hard targets only, without label smoothing.

    ``target`` is (C, H, W) integer ids (``ignore_index`` skipped) or (C, H, W, K) soft
    probabilities (rows summing to 0 are skipped). ``confidence`` (C, H, W) in [0, 1]
    weights each pixel (a parser's confidence); ``class_weights`` (K,) weights classes.
    The mean is over non-ignored pixels (weighted by class weight x confidence).
    """
    _check("logits", logits, 4)
    K = logits.shape[-1]
    logp = F.log_softmax(logits, dim=-1)  # (C,H,W,K)
    if gce_q and (target.dim() == 4 or label_smoothing > 0):
        raise ValueError("generalized cross-entropy (gce_q > 0) takes hard targets without label smoothing")
    if target.dim() == 4:  # soft labels
        if target.shape != logits.shape:
            raise ValueError(f"soft target shape {tuple(target.shape)} differs from logits {tuple(logits.shape)}")
        valid = target.sum(-1) > 0
        q = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
        if label_smoothing > 0:
            q = (1 - label_smoothing) * q + label_smoothing / K
        cw = class_weights if class_weights is not None else None
        per = -(q * logp * (cw if cw is not None else 1.0)).sum(-1)
        w = valid.to(logits.dtype)
        if cw is not None:
            w = w * (q * cw).sum(-1)
            per = per / (q * cw).sum(-1).clamp_min(1e-12)
    else:
        _check("target", target, 3)
        if target.shape != logits.shape[:3]:
            raise ValueError(f"target shape {tuple(target.shape)} differs from logits {tuple(logits.shape[:3])}")
        valid, t_safe = _hard_targets(target, K, ignore_index)
        nll = -logp.gather(-1, t_safe[..., None])[..., 0]
        if gce_q:
            nll = (1.0 - torch.exp(-gce_q * nll)) / gce_q
        if label_smoothing > 0:
            nll = (1 - label_smoothing) * nll - label_smoothing * logp.mean(-1)
        per = nll
        w = valid.to(logits.dtype)
        if class_weights is not None:
            w = w * class_weights[t_safe]
    return _weighted_mean(per, w, confidence, logits)


def palette_loss(
    seg_rgb: torch.Tensor,
    target: torch.Tensor,
    palette: torch.Tensor,
    *,
    class_weights: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """L1 between a rendered palette image and the palette-coloured labels (the paper's variant).

    ``seg_rgb`` (C, H, W, 3) rendered semantic colours; ``target`` (C, H, W) integer class ids
    (``ignore_index`` and ids outside the palette are excluded); ``palette`` (K, 3) in [0, 1].
    Per pixel the mean absolute difference over the 3 channels to ``palette[target]``; the
    result is the mean over valid pixels, weighted by ``class_weights`` (K,) and
    ``confidence`` (C, H, W) like :func:`semantic_loss`.
    """
    _check("seg_rgb", seg_rgb, 4)
    _check("target", target, 3)
    if seg_rgb.shape[-1] != 3:
        raise ValueError(f"seg_rgb must have 3 channels, got shape {tuple(seg_rgb.shape)}")
    if target.shape != seg_rgb.shape[:3]:
        raise ValueError(f"target shape {tuple(target.shape)} differs from seg_rgb {tuple(seg_rgb.shape[:3])}")
    if palette.dim() != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3), got {tuple(palette.shape)}")
    K = palette.shape[0]
    valid, t_safe = _hard_targets(target, K, ignore_index)
    per = (seg_rgb - palette.to(seg_rgb)[t_safe]).abs().mean(-1)
    w = valid.to(seg_rgb.dtype)
    if class_weights is not None:
        w = w * class_weights[t_safe]
    return _weighted_mean(per, w, confidence, seg_rgb)


def palette_nearest(seg_rgb: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Class ids (...,) int64 of the nearest ``palette`` (K, 3) colour (RGB Euclidean) to ``seg_rgb`` (..., 3).

    The same assignment as ``labelsplat.extract.extract_palette(method="nearest")`` (ties to the
    lower id).
    """
    if seg_rgb.shape[-1] != 3:
        raise ValueError(f"seg_rgb must end in 3 channels, got shape {tuple(seg_rgb.shape)}")
    pal = palette.to(seg_rgb)
    return ((seg_rgb[..., None, :] - pal) ** 2).sum(-1).argmin(-1)


@torch.no_grad()
def palette_accuracy(seg_rgb: torch.Tensor, target: torch.Tensor, palette: torch.Tensor,
                     ignore_index: int = IGNORE_INDEX) -> float:
    """Pixel accuracy of the nearest palette class of ``seg_rgb`` (C, H, W, 3) against ids (C, H, W), ignoring 255."""
    valid = target.long() != ignore_index
    if int(valid.sum()) == 0:
        return float("nan")
    return float((palette_nearest(seg_rgb, palette) == target.long())[valid].float().mean())


def alpha_loss(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |alpha - mask| for alpha and mask (C, H, W) in [0, 1]."""
    if alpha.shape != mask.shape:
        raise ValueError(f"alpha_loss: shapes differ {tuple(alpha.shape)} vs {tuple(mask.shape)}")
    return (alpha - mask).abs().mean()


@torch.no_grad()
def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    mse = torch.mean((pred - target) ** 2).clamp_min(1e-10)
    return float(-10.0 * torch.log10(mse))


@torch.no_grad()
def label_accuracy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Pixel accuracy of argmax(logits) (C, H, W, K) against ids (C, H, W), ignoring 255."""
    valid = target.long() != ignore_index
    n = int(valid.sum())
    if n == 0 or logits.shape[-1] == 0:
        return float("nan")
    return float((logits.argmax(-1) == target.long())[valid].float().mean())
