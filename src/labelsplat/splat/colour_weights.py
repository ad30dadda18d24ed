"""Colour-plausibility weights of input labels: the image itself as a second opinion.

Multiview consensus cannot undo an error that most views make (docs/quality.md): a parser that
calls a third of every ear "hair" in every profile view teaches the fit the same. The images carry
independent evidence: within one scene every class has its own colours (hair is dark, lips red,
eyes white and dark, skin/ears/nose/neck share skin tones). A label whose class rarely shows the
pixel's colour anywhere in the scene, while another class often does, is implausible.

Per scene, a smoothed colour histogram ``P(c | k)`` is estimated for every class ``k`` from all
labelled foreground pixels (``bins`` levels per RGB channel, Gaussian smoothing of ``sigma`` bins).
A pixel labelled ``l`` with colour ``c`` gets the weight::

    w = clip(P(c | l) / max_k P(c | k) / full_at, floor, 1)

where the max runs over classes with at least ``min_pixels`` samples: a label whose class is at
least ``full_at`` times as likely to show that colour as the most likely class keeps full weight
(``full_at`` 0.5 leaves 96 % of the weight of exact labels and still takes 2/3 of the weight off
wrong ones on the synthetic benchmark's noisy labels; docs/quality.md). Skin-toned ears labelled ear
keep w ~ 1 (ears and skin share colours); skin-toned pixels labelled hair, dark brow pixels labelled
skin or red lip pixels labelled skin get small weights. The weights only scale the semantic loss;
nothing is relabelled.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..io import IGNORE_INDEX


def colour_label_weights(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    num_classes: int,
    *,
    masks: Sequence[np.ndarray] | None = None,
    bins: int = 16,
    sigma: float = 1.0,
    floor: float = 0.1,
    full_at: float = 0.5,
    min_pixels: int = 200,
) -> list[np.ndarray]:
    """Per view (H, W) float32 weights in [floor, 1] (1 where the label is ignore or out of the mask).

    ``images[i]`` (H, W, 3) uint8 or float in [0, 1]; ``labels[i]`` (H, W) integer ids (255 ignore);
    ``masks[i]`` optional (H, W) bool foreground (the statistics and the weights use only it).
    """
    from scipy import ndimage  # scipy.ndimage: 0.5 s to import, only needed with label_colour_weight

    if len(images) != len(labels) or (masks is not None and len(masks) != len(images)):
        raise ValueError("colour_label_weights: images, labels (and masks) must have the same length")
    if not 2 <= bins <= 64:
        raise ValueError(f"colour_label_weights: bins must be in [2, 64], got {bins}")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"colour_label_weights: floor must be in [0, 1], got {floor}")
    if not 0.0 < full_at <= 1.0:
        raise ValueError(f"colour_label_weights: full_at must be in (0, 1], got {full_at}")
    K = int(num_classes)
    codes, valids = [], []
    hist = np.zeros((K, bins ** 3), dtype=np.float64)
    for i, (img, lab) in enumerate(zip(images, labels)):
        img = np.asarray(img)
        lab = np.asarray(lab)
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[:2] != lab.shape:
            raise ValueError(f"colour_label_weights: view {i}: image {img.shape} does not match labels {lab.shape}")
        q = np.clip(img.astype(np.float32) * (bins / 256.0 if img.dtype == np.uint8 else bins), 0, bins - 1)
        q = q.astype(np.int64)
        code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
        valid = (lab != IGNORE_INDEX) & (lab >= 0) & (lab < K)
        if masks is not None:
            valid &= np.asarray(masks[i], dtype=bool)
        np.add.at(hist, (lab[valid].astype(np.int64), code[valid]), 1.0)
        codes.append(code)
        valids.append(valid)
    counts = hist.sum(axis=1)
    dens = np.zeros_like(hist)
    for k in range(K):
        if counts[k] <= 0:
            continue
        cube = ndimage.gaussian_filter(hist[k].reshape(bins, bins, bins), sigma=sigma, mode="nearest")
        dens[k] = cube.ravel() / max(cube.sum(), 1e-12)
    reliable = counts >= min_pixels
    best = dens[reliable].max(axis=0) if reliable.any() else dens.max(axis=0)
    out = []
    for code, lab, valid in zip(codes, labels, valids):
        w = np.ones(code.shape, dtype=np.float32)
        lv = np.asarray(lab)[valid].astype(np.int64)
        cv = code[valid]
        ratio = dens[lv, cv] / np.maximum(best[cv], 1e-12) / full_at
        w[valid] = np.clip(ratio, floor, 1.0).astype(np.float32)
        out.append(w)
    return out


__all__ = ["colour_label_weights"]
