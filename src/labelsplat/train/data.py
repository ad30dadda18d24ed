"""Training data: datasets in the docs/design.md layout, mixing, augmentation, batches.

Each sample: the image (uint8 RGB via :func:`labelsplat.io.read_rgb`) and its label map
(converted from the dataset's ``label_scheme`` to the model's with
:func:`labelsplat.schemes.convert_labels`; 255 = ignore kept) are resized to
``input_size x input_size`` (image PIL bilinear, labels nearest, as inference does), then
augmented as face-parsing.PyTorch's ``face_dataset.py``: random scale from
``(0.75, 1, 1.25, 1.5, 1.75, 2)``, random crop to ``crop_size`` (upscaling first when the image
is smaller, as the original ``RandomCrop``), colour jitter (brightness, contrast, saturation
factors uniform in [0.5, 1.5]), horizontal flip with probability 0.5 that swaps the left/right
classes (:func:`labelsplat.schemes.flip_labels`).

Determinism: the sample indices and augmentation of iteration ``step`` come from
``numpy.random.default_rng([seed, step])`` alone, so a resumed run sees the same batches.

Mixing: ``sources`` are (datasets, weight) pairs; each sample first picks a source with
probability proportional to its weight, then a view uniformly within it (``--mix DIR:RATIO``
gives DIR the fraction RATIO of samples; the ``--data`` datasets share the rest, pooled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance

from ..dataset.read import Dataset, DatasetView, read_dataset
from ..errors import LabelsplatError
from ..io import IGNORE_INDEX, read_label, read_rgb
from ..parsers.preprocess import normalize, resize_labels, resize_rgb
from ..schemes import conversion_table, flip_labels, get_scheme

SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


@dataclass(frozen=True)
class AugmentConfig:
    scales: tuple[float, ...] = SCALES
    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hflip: float = 0.5
    enabled: bool = True


def color_jitter(rgb: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """PIL ImageEnhance brightness, contrast, saturation with factors in [1-x, 1+x] (original order)."""
    img = Image.fromarray(rgb)
    for amount, enh in ((cfg.brightness, ImageEnhance.Brightness), (cfg.contrast, ImageEnhance.Contrast),
                        (cfg.saturation, ImageEnhance.Color)):
        if amount > 0:
            img = enh(img).enhance(float(rng.uniform(max(0.0, 1 - amount), 1 + amount)))
    return np.asarray(img)


def random_scale_crop(rgb: np.ndarray, lab: np.ndarray, crop: int, rng: np.random.Generator,
                      scales: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Random scale from ``scales`` then a random ``crop x crop`` window (original RandomCrop)."""
    h, w = lab.shape
    s = float(scales[int(rng.integers(len(scales)))]) if len(scales) else 1.0
    W, H = max(1, int(w * s)), max(1, int(h * s))
    if W < crop or H < crop:  # upscale so the crop fits (the original's RandomCrop does the same)
        k = crop / min(W, H)
        W, H = int(W * k + 1), int(H * k + 1)
    img = Image.fromarray(rgb).resize((W, H), Image.BILINEAR)
    lb = Image.fromarray(lab).resize((W, H), Image.NEAREST)
    x0 = int(rng.random() * (W - crop))
    y0 = int(rng.random() * (H - crop))
    box = (x0, y0, x0 + crop, y0 + crop)
    return np.asarray(img.crop(box)), np.asarray(lb.crop(box))


def augment(rgb: np.ndarray, lab: np.ndarray, crop: int, rng: np.random.Generator, cfg: AugmentConfig,
            scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale/crop, jitter, flip (with left/right class swap) of one resized sample."""
    rgb, lab = random_scale_crop(rgb, lab, crop, rng, cfg.scales)
    rgb = color_jitter(rgb, rng, cfg)
    if rng.random() < cfg.hflip:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
        lab = np.ascontiguousarray(flip_labels(lab, scheme))
    return rgb, lab


def center_resize(rgb: np.ndarray, lab: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    return resize_rgb(rgb, (size, size)), resize_labels(lab, (size, size))


@dataclass
class Source:
    """Datasets pooled into one sampling source with a sampling weight."""

    datasets: list[Dataset]
    weight: float
    lut: list[np.ndarray] = field(default_factory=list)  # per dataset: scheme conversion table

    @property
    def views(self) -> list[tuple[int, DatasetView]]:
        return [(i, v) for i, ds in enumerate(self.datasets) for v in ds.views]


def parse_mix(spec: str) -> tuple[Path, float]:
    """``DIR:RATIO`` -> (DIR, RATIO) with 0 < RATIO < 1."""
    if ":" not in spec:
        raise LabelsplatError(f"--mix expects DIR:RATIO (e.g. frontal:0.5), got {spec!r}")
    d, r = spec.rsplit(":", 1)
    try:
        ratio = float(r)
    except ValueError:
        raise LabelsplatError(f"--mix {spec!r}: RATIO must be a number in (0, 1)") from None
    if not 0.0 < ratio < 1.0:
        raise LabelsplatError(f"--mix {spec!r}: RATIO must be in (0, 1), got {ratio}")
    return Path(d), ratio


class TrainData:
    """Samples augmented batches for the model's scheme (see module doc)."""

    def __init__(self, data: Sequence[str | Path], mix: Sequence[tuple[str | Path, float]], *, scheme: str,
                 input_size: int, crop_size: int, mean, std, augment_cfg: AugmentConfig | None = None,
                 split: str | None = "train"):
        if not data:
            raise LabelsplatError("no training data: pass --data DIR at least once")
        self.scheme = scheme
        self.n_classes = get_scheme(scheme).num_classes
        self.input_size, self.crop_size = int(input_size), int(crop_size)
        if not 16 <= self.crop_size <= self.input_size * 2:
            raise LabelsplatError(f"crop size {crop_size} must be in [16, 2 x input size]")
        self.mean, self.std = tuple(mean), tuple(std)
        self.aug = augment_cfg or AugmentConfig()
        total_mix = sum(r for _, r in mix)
        if total_mix >= 1.0:
            raise LabelsplatError(f"--mix ratios add up to {total_mix:g}; they must leave a share (< 1) for --data")
        self.sources: list[Source] = [Source([read_dataset(d, split=split) for d in data], 1.0 - total_mix)]
        for d, r in mix:
            self.sources.append(Source([read_dataset(d, split=split)], r))
        for src in self.sources:
            src.lut = [conversion_table(ds.label_scheme, scheme) for ds in src.datasets]
        self._views = [src.views for src in self.sources]
        self.weights = np.array([s.weight for s in self.sources], dtype=np.float64)
        self.weights /= self.weights.sum()

    def __len__(self) -> int:
        return sum(len(v) for v in self._views)

    def describe(self) -> list[dict]:
        return [{"datasets": [str(ds.root) for ds in s.datasets], "weight": round(float(w), 6),
                 "views": len(v), "label_schemes": sorted({ds.label_scheme for ds in s.datasets})}
                for s, w, v in zip(self.sources, self.weights, self._views)]

    def load(self, src_idx: int, view_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Image (S, S, 3) uint8 and labels (S, S) uint8 in the model's scheme, resized to input size."""
        src = self.sources[src_idx]
        ds_idx, view = self._views[src_idx][view_idx]
        rgb = read_rgb(view.image)
        ds = src.datasets[ds_idx]
        lab = read_label(view.label, get_scheme(ds.label_scheme).num_classes, shape=rgb.shape[:2])
        lab = src.lut[ds_idx][lab]
        return center_resize(rgb, lab, self.input_size)

    def batch(self, step: int, batch_size: int, seed: int):
        """Batch of iteration ``step``: x (B, 3, C, C) float32 normalised, y (B, C, C) int64."""
        rng = np.random.default_rng([int(seed), int(step)])
        xs, ys = [], []
        for _ in range(batch_size):
            s = int(rng.choice(len(self.sources), p=self.weights))
            v = int(rng.integers(len(self._views[s])))
            rgb, lab = self.load(s, v)
            if self.aug.enabled:
                rgb, lab = augment(rgb, lab, self.crop_size, rng, self.aug, self.scheme)
            elif self.crop_size != self.input_size:
                rgb, lab = center_resize(rgb, lab, self.crop_size)
            xs.append(normalize(rgb, self.mean, self.std))
            ys.append(torch.from_numpy(lab.astype(np.int64)))
        return torch.stack(xs), torch.stack(ys)


__all__ = ["AugmentConfig", "TrainData", "augment", "color_jitter", "random_scale_crop", "parse_mix", "IGNORE_INDEX"]
