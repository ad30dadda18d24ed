"""Fit losses: RGB L1 + SSIM, semantic cross-entropy (ignore 255), palette L1, alpha/mask loss,
and the label-noise transition model of the semantic loss (:class:`NoiseTransition`).

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
    transition: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of softmax(``logits`` (C, H, W, K)) against ``target``.

    ``transition`` (K, K) row-stochastic T, T[i, j] = P(observed label j | true class i), applies
    forward loss correction (Patrini et al. 2017): softmax(logits) = p is the clean class
    distribution, the observed label is drawn from q = p @ T and the per-pixel loss is
    -log q[target] = -logsumexp_i(log p_i + log T[i, target]) (exactly the cross-entropy when T is
    the identity); hard targets only, without label smoothing or ``gce_q``.

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
    if transition is not None:
        if target.dim() == 4 or label_smoothing > 0 or gce_q:
            raise ValueError("the noise transition takes hard targets, without label smoothing or gce_q")
        if transition.shape != (K, K):
            raise ValueError(f"transition must be ({K}, {K}), got {tuple(transition.shape)}")
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
        if transition is not None:  # log q_t = logsumexp_i(log p_i + log T[i, t]); log 0 = -inf is fine
            log_t = torch.log(transition.to(logp.dtype)).t()  # (K observed, K true)
            nll = -torch.logsumexp(logp + log_t[t_safe], dim=-1)
        else:
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


def confusion_counts(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Soft confusion (K true, K observed) of softmax(``logits`` (C, H, W, K)) against ids ``target``
    (C, H, W): entry [i, j] = sum over the pixels labelled j of p_i (``ignore_index`` skipped); no grad."""
    _check("logits", logits, 4)
    _check("target", target, 3)
    K = logits.shape[-1]
    with torch.no_grad():
        valid, t_safe = _hard_targets(target, K, ignore_index)
        p = torch.softmax(logits.detach().float(), dim=-1) * valid[..., None].float()
        out = torch.zeros(K, K, dtype=torch.float32, device=logits.device)
        out.index_add_(0, t_safe.reshape(-1), p.reshape(-1, K))  # (observed, true)
    return out.t()


def floor_diagonal(rows: torch.Tensor, floor: float) -> torch.Tensor:
    """Row-stochastic (K, K) from non-negative ``rows``: each row normalised, empty rows -> identity,
    and a diagonal below ``floor`` raised to ``floor`` with the row's off-diagonal mass scaled to 1 - floor."""
    K = rows.shape[0]
    eye = torch.eye(K, dtype=rows.dtype, device=rows.device)
    tot = rows.sum(1, keepdim=True)
    t = torch.where(tot > 0, rows / tot.clamp_min(1e-30), eye)
    d = t.diagonal()[:, None]
    off = t * (1 - eye)
    off_sum = off.sum(1, keepdim=True)
    low = d < floor
    fixed = off * ((1 - floor) / off_sum.clamp_min(1e-30)) + floor * eye
    return torch.where(low, fixed, t)


class NoiseTransition:
    """One K x K label-noise transition matrix T for a whole scene (all views), used by
    :func:`semantic_loss` (``transition=``) for forward loss correction.

    T[i, j] = P(input label j | true class i); rows sum to 1. ``spec`` is a
    :class:`~labelsplat.splat.config.LabelNoiseSpec`:

    * ``em``: T = rows of the exponential moving average (decay :attr:`EMA` per step) of the
      soft confusion between the rendered class probabilities p (detached) and the input labels
      (:func:`confusion_counts`, updated every step from the start), row-normalised with the
      diagonal raised to ``spec.floor`` (:func:`floor_diagonal`); a class that is the argmax of
      fewer than :attr:`MIN_HITS` pixels per step (moving average) keeps an identity row instead of
      the shape of its softmax leakage; the identity (plain
      cross-entropy) before ``spec.warmup`` x steps. No gradient flows into T.
    * ``learn``: T = row-softmax of K x K logits (Adam, lr :attr:`LR`), initialised with
      diagonal ``spec.init_diag``, frozen before ``spec.warmup`` x steps; the loss gains
      ``spec.trace`` x mean(diag T) (trace regularisation, Tanno et al. 2019).
    """

    EMA = 0.98
    MIN_HITS = 0.5  # ``em``: argmax pixels per step (moving average) below which a row stays identity
    LR = 1e-2

    def __init__(self, spec, num_classes: int, device) -> None:
        if spec.mode not in ("em", "learn"):
            raise ValueError(f"unknown label-noise mode {spec.mode!r}")
        self.spec = spec
        self.K = int(num_classes)
        self.device = torch.device(device)
        K = self.K
        self.counts = torch.zeros(K, K, dtype=torch.float32, device=self.device)
        self.hits = torch.zeros(K, dtype=torch.float32, device=self.device)  # argmax pixels per class (EMA)
        self.logits = None
        self.opt = None
        if spec.mode == "learn":
            d = spec.init_diag
            init = torch.full((K, K), 0.0)
            if K > 1:
                init.fill_diagonal_(float(torch.log(torch.tensor(d * (K - 1) / (1 - d)))))
            self.logits = torch.nn.Parameter(init.to(self.device))
            self.opt = torch.optim.Adam([self.logits], lr=self.LR)

    def active(self, step: int, steps: int) -> bool:
        """Whether T is estimated/learned (not the warm-up value) at ``step`` of ``steps``."""
        return step >= self.spec.warmup * steps

    def matrix(self) -> torch.Tensor:
        """The current T (K, K), detached."""
        with torch.no_grad():
            if self.spec.mode == "learn":
                return torch.softmax(self.logits.detach(), dim=1)
            seen = (self.hits >= self.MIN_HITS)[:, None]
            return floor_diagonal(torch.where(seen, self.counts, torch.zeros_like(self.counts)), self.spec.floor)

    def for_loss(self, step: int, steps: int) -> torch.Tensor:
        """T as the loss at ``step`` uses it: identity (``em``) or the frozen start (``learn``)
        during the warm-up; afterwards the estimate (``em``, detached) or the live softmax (``learn``)."""
        if self.spec.mode == "learn":
            return torch.softmax(self.logits, dim=1) if self.active(step, steps) else self.matrix()
        if not self.active(step, steps):
            return torch.eye(self.K, dtype=torch.float32, device=self.device)
        return self.matrix()

    def penalty(self, T: torch.Tensor, step: int, steps: int) -> torch.Tensor | None:
        """``trace`` x mean(diag T) in ``learn`` mode after the warm-up, else None."""
        if self.spec.mode != "learn" or not self.spec.trace or not self.active(step, steps):
            return None
        return self.spec.trace * T.diagonal().mean()

    def observe(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """``em``: fold the step's soft confusion (rendered logits vs input labels) into the average."""
        if self.spec.mode == "em":
            self.counts.mul_(self.EMA).add_(confusion_counts(logits, target), alpha=1.0 - self.EMA)
            with torch.no_grad():
                valid = (target.long() != IGNORE_INDEX) & (target.long() >= 0) & (target.long() < self.K)
                # index_add_ over every pixel (no boolean indexing or bincount: no host sync on a GPU)
                hits = torch.zeros(self.K, dtype=torch.float32, device=logits.device).index_add_(
                    0, logits.detach().argmax(-1).reshape(-1), valid.reshape(-1).float())
            self.hits.mul_(self.EMA).add_(hits, alpha=1.0 - self.EMA)

    def step(self, step: int, steps: int) -> None:
        """``learn``: one Adam step on T's logits after the warm-up (call after ``backward``)."""
        if self.opt is not None:
            if self.active(step, steps) and self.logits.grad is not None:
                self.opt.step()
            self.opt.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        d = {"counts": self.counts.detach().cpu().clone(), "hits": self.hits.detach().cpu().clone()}
        if self.logits is not None:
            d["logits"] = self.logits.detach().cpu().clone()
            d["opt"] = self.opt.state_dict()
        return d

    def load_state_dict(self, d: dict) -> None:
        self.counts.copy_(d["counts"].to(self.device))
        self.hits.copy_(d["hits"].to(self.device))
        if self.logits is not None:
            with torch.no_grad():
                self.logits.copy_(d["logits"].to(self.device))
            self.opt.load_state_dict(d["opt"])

    def summary(self, class_names: list[str] | None = None, top: int = 15) -> dict:
        """JSON-able record: mode, settings, T (rounded) and its largest off-diagonal entries."""
        T = self.matrix().cpu().double().numpy()
        names = list(class_names) if class_names is not None and len(class_names) == self.K else [str(i) for i in range(self.K)]
        off = [(float(T[i, j]), i, j) for i in range(self.K) for j in range(self.K) if i != j]
        off.sort(reverse=True)
        return {
            "mode": self.spec.mode, "warmup": self.spec.warmup,
            **({"floor": self.spec.floor} if self.spec.mode == "em" else
               {"trace": self.spec.trace, "init_diag": self.spec.init_diag, "lr": self.LR}),
            **({"ema": self.EMA, "min_hits": self.MIN_HITS} if self.spec.mode == "em" else {}),
            "classes": names,
            "diagonal": {names[i]: round(float(T[i, i]), 4) for i in range(self.K)},
            "top_confusions": [{"true": names[i], "observed": names[j], "p": round(v, 4)}
                               for v, i, j in off[:top] if v > 0],
            "matrix": [[round(float(x), 5) for x in row] for row in T],
        }


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
