"""Label maps from rendered semantics: argmax of logits, or the paper's palette-colour variant.

Shapes: batches of views, channels last. ``logits`` (B, H, W, K), ``alpha`` (B, H, W) in [0, 1],
``rgb_seg`` (B, H, W, 3). Outputs are numpy: ``labels`` uint8 (B, H, W) class ids in the
scheme's order, ``confidence`` float32 (B, H, W) in [0, 1], ``entropy`` float32 (B, H, W) in nats.

Background by alpha: pixels whose accumulated opacity is below ``alpha_threshold`` are labelled
``background_index``; their confidence is ``1 - alpha`` (how sure the render is that nothing is
there: >= 1 - threshold) and their entropy is the binary entropy of ``alpha``. ``alpha=None``
skips this step (the logits alone decide, e.g. when a background logit vector was composited).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LabelsplatError
from ..schemes import get_scheme


@dataclass
class ExtractResult:
    """``labels`` uint8 (B, H, W); ``confidence`` float32 (B, H, W) = max class probability;
    ``entropy`` float32 (B, H, W) of the class distribution in nats (0 = certain, log K = uniform)."""

    labels: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _as_tensor(x, name: str):
    import torch  # lazy: torch (~1 s); extract's post-processing runs without it

    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as exc:
            raise LabelsplatError(f"{name} must be a numeric array or tensor") from exc
    if not (t.is_floating_point() or t.dtype == torch.uint8):
        raise LabelsplatError(f"{name} must hold floats (or uint8 for colours), got {t.dtype}")
    return t


def _check_alpha(alpha, shape: tuple[int, int, int], device):
    import torch  # lazy: torch (~1 s); extract's post-processing runs without it

    a = _as_tensor(alpha, "alpha").to(device=device, dtype=torch.float32)
    if tuple(a.shape) == shape + (1,):
        a = a[..., 0]
    if tuple(a.shape) != shape:
        raise LabelsplatError(f"alpha must have shape (B, H, W) = {shape}, got {tuple(a.shape)}")
    return a


def _background_fill(labels, conf, ent, alpha, alpha_threshold: float, background_index: int):
    import torch  # lazy: torch (~1 s); extract's post-processing runs without it

    bg = alpha < alpha_threshold
    a = alpha.clamp(1e-7, 1 - 1e-7)
    bin_ent = -(a * torch.log(a) + (1 - a) * torch.log1p(-a))
    labels = torch.where(bg, torch.full_like(labels, background_index), labels)
    conf = torch.where(bg, (1.0 - alpha).clamp(0.0, 1.0), conf)
    ent = torch.where(bg, bin_ent, ent)
    return labels, conf, ent


def _result(labels, conf, ent) -> ExtractResult:
    import torch  # lazy: torch (~1 s); extract's post-processing runs without it

    return ExtractResult(
        labels.to("cpu", dtype=torch.uint8).numpy(),
        conf.to("cpu").float().numpy(),
        ent.to("cpu").float().numpy(),
    )


def extract_argmax(
    logits,
    alpha=None,
    *,
    alpha_threshold: float = 0.5,
    background_index: int = 0,
    chunk: int = 8,
) -> ExtractResult:
    """Argmax labels, max-softmax confidence and entropy from rendered logits (B, H, W, K).

    ``logits`` and ``alpha`` may be numpy arrays or torch tensors (computed on the tensor's
    device, ``chunk`` views at a time to bound memory). See the module docstring for alpha.
    """
    import torch  # lazy: torch (~1 s); extract's post-processing runs without it

    t = _as_tensor(logits, "logits")
    if t.ndim != 4:
        raise LabelsplatError(f"logits must have shape (B, H, W, K), got {tuple(t.shape)}")
    B, H, W, K = t.shape
    if K < 1 or K > 255:
        raise LabelsplatError(f"logits must have 1..255 classes in the last axis, got {K}")
    if not 0 <= background_index < K:
        raise LabelsplatError(f"background_index {background_index} is outside the {K} classes")
    if not 0.0 <= alpha_threshold <= 1.0:
        raise LabelsplatError(f"alpha_threshold must be in [0, 1], got {alpha_threshold}")
    a = None if alpha is None else _check_alpha(alpha, (B, H, W), t.device)
    out_l, out_c, out_e = [], [], []
    for s in range(0, B, max(1, int(chunk))):
        x = t[s : s + chunk].float()
        # softmax statistics in few passes: p_k = e^{z_k} / S with z = x - max, S = sum e^z;
        # confidence = 1 / S; entropy = log S - sum_k p_k z_k
        m, lab = x.max(dim=-1)
        z = x - m[..., None]
        ez = z.exp()
        ssum = ez.sum(dim=-1)
        conf = ssum.reciprocal()
        ent = (torch.log(ssum) - (ez * z).sum(dim=-1) * conf).clamp_min(0.0)
        if not (torch.isfinite(conf).all() and torch.isfinite(ent).all()):
            raise LabelsplatError("logits contain NaN or infinite values")
        if a is not None:
            lab, conf, ent = _background_fill(lab, conf, ent, a[s : s + chunk], alpha_threshold, background_index)
        out_l.append(lab)
        out_c.append(conf)
        out_e.append(ent)
    return _result(torch.cat(out_l), torch.cat(out_c), torch.cat(out_e))


def _palette_unit(scheme) -> np.ndarray:
    return scheme.palette_array().astype(np.float32) / 255.0


def default_sigma(palette: np.ndarray) -> float:
    """Colour-distance scale for palette confidences: a quarter of the smallest distance between
    two palette colours (in [0, 1] RGB units). A pixel exactly on a palette colour then gets a
    confidence > 0.999; one half-way between two colours gets 0.5."""
    from ..splat.heads import palette_sigma  # splat loads torch; importing labelsplat.extract must not

    return palette_sigma(palette)


def _soft_assign(x, centres, centre_class, num_classes: int, sigma: float):
    """(label, max class probability, class entropy) of colours ``x`` by their distances to
    ``centres`` (the palette head's decoding, :func:`labelsplat.splat.heads.soft_assign`)."""
    from ..splat.heads import soft_assign  # splat loads torch; importing labelsplat.extract must not

    return soft_assign(x, centres, centre_class, num_classes, sigma)


def extract_palette(
    rgb_seg,
    scheme,
    method: str = "nearest",
    *,
    alpha=None,
    alpha_threshold: float = 0.5,
    background_index: int | None = None,
    sigma: float | None = None,
    kmeans_iters: int = 20,
    kmeans_samples: int = 200_000,
    seed: int = 0,
    chunk: int = 8,
) -> ExtractResult:
    """Labels from a rendered palette image (the paper's variant: SEG fitted as colours).

    ``rgb_seg`` (B, H, W, 3): float in [0, 1] or uint8. ``scheme``: a scheme or its name.

    * ``method="nearest"``: each pixel takes the nearest palette colour (RGB Euclidean).
    * ``method="kmeans"``: k-means on the colours of all views (K clusters initialised at the
      palette colours, ``kmeans_iters`` Lloyd steps on a seeded subsample of ``kmeans_samples``
      pixels), each pixel takes its nearest cluster centre and each centre the class of its
      nearest palette colour (absorbs global colour shifts of the render).

    Confidence and entropy come from a distance-based soft assignment over palette colours
    (nearest) or cluster centres (kmeans): ``softmax(-d^2 / (2 sigma^2))``, ``sigma`` by default
    :func:`default_sigma` of the palette. ``background_index`` defaults to the scheme's
    ``background`` class (or 0).
    """
    import torch  # lazy: torch (~1 s); extract's post-processing runs without it

    s = get_scheme(scheme)
    if method not in ("nearest", "kmeans"):
        raise LabelsplatError(f"palette extraction method must be 'nearest' or 'kmeans', got {method!r}")
    t = _as_tensor(rgb_seg, "rgb_seg")
    if t.ndim != 4 or t.shape[-1] != 3:
        raise LabelsplatError(f"rgb_seg must have shape (B, H, W, 3), got {tuple(t.shape)}")
    x_all = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if not torch.isfinite(x_all).all():
        raise LabelsplatError("rgb_seg contains NaN or infinite values")
    B, H, W, _ = x_all.shape
    if background_index is None:
        background_index = s.index("background") if "background" in s.concepts else 0
    pal_np = _palette_unit(s)
    pal = torch.as_tensor(pal_np, device=x_all.device)
    sig = float(sigma) if sigma is not None else default_sigma(pal_np)
    if not sig > 0:
        raise LabelsplatError(f"sigma must be positive, got {sig}")
    a = None if alpha is None else _check_alpha(alpha, (B, H, W), x_all.device)

    centre_class = torch.arange(s.num_classes, device=x_all.device)
    centres = pal
    if method == "kmeans":
        flat = x_all.reshape(-1, 3)
        if a is not None:
            flat = flat[(a.reshape(-1) >= alpha_threshold)]
        if flat.shape[0] > 0:
            g = torch.Generator(device="cpu").manual_seed(int(seed))
            if flat.shape[0] > kmeans_samples:
                idx = torch.randperm(flat.shape[0], generator=g)[:kmeans_samples].to(flat.device)
                flat = flat[idx]
            c = pal.clone()
            for _ in range(int(kmeans_iters)):
                assign = ((flat[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
                sums = torch.zeros_like(c).index_add_(0, assign, flat)
                cnt = torch.bincount(assign, minlength=c.shape[0]).float()
                moved = torch.where(cnt[:, None] > 0, sums / cnt.clamp_min(1.0)[:, None], c)
                if torch.allclose(moved, c, atol=1e-6):
                    c = moved
                    break
                c = moved
            centres = c
            centre_class = ((c[:, None, :] - pal[None]) ** 2).sum(-1).argmin(1)
    out_l, out_c, out_e = [], [], []
    for st in range(0, B, max(1, int(chunk))):
        lab, conf, ent = _soft_assign(x_all[st : st + chunk], centres, centre_class, s.num_classes, sig)
        if a is not None:
            lab, conf, ent = _background_fill(lab, conf, ent, a[st : st + chunk], alpha_threshold, background_index)
        out_l.append(lab)
        out_c.append(conf)
        out_e.append(ent)
    return _result(torch.cat(out_l), torch.cat(out_c), torch.cat(out_e))


__all__ = ["ExtractResult", "extract_argmax", "extract_palette", "default_sigma"]
