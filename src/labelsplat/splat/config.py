"""Typed fit configuration.

The presets (``micro``, ``tiny``, ``fast``, ``paper``) are whole trees in :mod:`labelsplat.config`;
``labelsplat.config.fit_preset("tiny", steps=500)`` is a preset's :class:`FitConfig`. All lengths are in the
normalised fit frame (head centred, radius ~1, see :mod:`.normalize`); learning rates
follow gsplat's ``simple_trainer`` defaults with a multiplier for short CPU presets.
Densification steps are derived from ``steps`` by :meth:`FitConfig.strategy_schedule`,
because gsplat's own defaults (start 500, every 100) never fire in a short preset.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import LabelsplatError

SEMANTIC_GRAD_HELP = "full | none | scaled:<f> (f in [0, 1])"
SEMANTIC_TARGETS = ("logits", "palette")


def parse_semantic_grad(value: str) -> float:
    """Map ``full`` / ``none`` / ``scaled:f`` to the geometry-gradient weight of the logit channels.

    ``full`` = 1 (one rasterisation of [RGB | logits], logits shape the geometry),
    ``none`` = 0 (geometry from RGB only, the paper's variant), ``scaled:f`` = f.
    """
    text = str(value).strip().lower()
    if text == "full":
        return 1.0
    if text == "none":
        return 0.0
    if text.startswith("scaled:"):
        try:
            f = float(text.split(":", 1)[1])
        except ValueError:
            f = float("nan")
        if math.isfinite(f) and 0.0 <= f <= 1.0:
            return f
    raise LabelsplatError(f"invalid semantic_grad {value!r}", hint=f"use {SEMANTIC_GRAD_HELP}, e.g. scaled:0.1")


LABEL_VIEW_WEIGHT_HELP = "none | yaw:<deg>:<floor> (deg in [0, 90), floor in [0, 1])"


def parse_label_view_weight(value: str) -> tuple[float, float] | None:
    """``none`` -> None; ``yaw:<deg>:<floor>`` -> (deg, floor) (see :func:`label_view_weight`)."""
    text = str(value).strip().lower()
    if text in ("none", ""):
        return None
    parts = text.split(":")
    if len(parts) == 3 and parts[0] == "yaw":
        try:
            deg, floor = float(parts[1]), float(parts[2])
        except ValueError:
            deg = floor = float("nan")
        if math.isfinite(deg) and math.isfinite(floor) and 0.0 <= deg < 90.0 and 0.0 <= floor <= 1.0:
            return deg, floor
    raise LabelsplatError(f"invalid label_view_weight {value!r}", hint=f"use {LABEL_VIEW_WEIGHT_HELP}, e.g. yaw:45:0.3")


def parse_semantic_loss(value: str) -> float:
    """``ce`` -> 0.0; ``gce:<q>`` -> q in (0, 1] (generalized cross-entropy exponent)."""
    text = str(value).strip().lower()
    if text == "ce":
        return 0.0
    if text.startswith("gce:"):
        try:
            q = float(text.split(":", 1)[1])
        except ValueError:
            q = float("nan")
        if math.isfinite(q) and 0.0 < q <= 1.0:
            return q
    raise LabelsplatError(f"invalid semantic_loss {value!r}", hint="use ce or gce:<q> with q in (0, 1], e.g. gce:0.7")


LABEL_NOISE_HELP = ("none | em[:<warmup>[:<floor>]] | learn[:<warmup>[:<trace>]] (warmup = fraction of the steps "
                    "in [0, 1), floor = lowest diagonal of T in (0, 1], trace = trace-penalty weight >= 0)")
#: defaults of the label-noise transition modes (``em`` / ``learn`` without numbers)
LABEL_NOISE_DEFAULTS = {"warmup": 0.25, "floor": 0.5, "trace": 0.01}


@dataclass(frozen=True)
class LabelNoiseSpec:
    """A parsed ``FitConfig.label_noise``: one K x K row-stochastic transition matrix T per scene,
    T[i, j] = P(input label j | true class i), in the semantic loss (forward correction).

    ``mode`` ``em``: T is the row-normalised moving average of the soft confusion between the
    rendered class probabilities and the input labels (detached), diagonal at least ``floor``;
    ``learn``: T = row-softmax of learnable K x K logits (initial diagonal ``init_diag``) with
    ``trace`` x mean(diag T) added to the loss (Tanno et al. 2019). Either way T is the identity
    (``em``) or frozen at its initial value (``learn``) for the first ``warmup`` fraction of the steps.
    """

    mode: str
    warmup: float
    floor: float = 0.5
    trace: float = 0.0
    init_diag: float = 0.95


def parse_label_noise(value: str) -> LabelNoiseSpec | None:
    """``none`` -> None; ``em[:<warmup>[:<floor>]]`` / ``learn[:<warmup>[:<trace>]]`` -> :class:`LabelNoiseSpec`."""
    text = str(value).strip().lower()
    if text in ("none", ""):
        return None
    parts = text.split(":")
    mode, nums = parts[0], parts[1:]
    if mode in ("em", "learn") and len(nums) <= 2:
        try:
            vals = [float(x) for x in nums]
        except ValueError:
            vals = [float("nan")]
        if all(math.isfinite(v) for v in vals):
            warmup = vals[0] if vals else LABEL_NOISE_DEFAULTS["warmup"]
            if mode == "em":
                floor = vals[1] if len(vals) > 1 else LABEL_NOISE_DEFAULTS["floor"]
                if 0.0 <= warmup < 1.0 and 0.0 < floor <= 1.0:
                    return LabelNoiseSpec("em", warmup, floor=floor)
            else:
                trace = vals[1] if len(vals) > 1 else LABEL_NOISE_DEFAULTS["trace"]
                if 0.0 <= warmup < 1.0 and trace >= 0.0:
                    return LabelNoiseSpec("learn", warmup, trace=trace)
    raise LabelsplatError(f"invalid label_noise {value!r}", hint=f"use {LABEL_NOISE_HELP}, e.g. em:0.25:0.5")


def label_view_weight(spec: str, yaw_deg: float) -> float:
    """Semantic-loss weight of an input view at ``yaw_deg`` (degrees, head frame) for ``spec``:
    1 up to |yaw| = deg, linear to ``floor`` at |yaw| = 90, ``floor`` beyond; 1 for ``none``."""
    p = parse_label_view_weight(spec)
    if p is None:
        return 1.0
    deg, floor = p
    a = abs(float(yaw_deg))
    if a <= deg:
        return 1.0
    t = min(1.0, (a - deg) / (90.0 - deg))
    return float(1.0 + t * (floor - 1.0))


@dataclass
class FitConfig:
    """Everything that decides a fit's result (recorded in ``run.json`` and every checkpoint)."""

    preset: str = "tiny"
    steps: int = 300
    seed: int = 0
    batch_size: int = 1  # cameras per step
    # resolution: images are first downscaled so that max(w, h) <= max_resolution (None = native),
    # then rendered at coarse_to_fine[i][1] x that size from step coarse_to_fine[i][0] * steps on.
    max_resolution: int | None = 128
    coarse_to_fine: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.4, 1.0))
    # appearance
    sh_degree: int = 1
    sh_degree_interval: int = 100  # one more SH band every this many steps
    semantics: bool = True  # False -> K = 0 (RGB only, same code path)
    # learning rates (normalised frame; gsplat simple_trainer defaults x lr_scale for short fits)
    means_lr: float = 1.6e-4
    means_lr_final_factor: float = 0.01  # exponential decay to this fraction at the last step
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    sem_lr: float = 2.5e-2
    lr_scale: float = 1.0  # multiplies means/scales/quats/sh LRs (short presets move faster)
    # losses
    ssim_lambda: float = 0.2
    sem_weight: float = 0.5
    sem_warmup: int = 0  # semantic loss starts after this many steps
    semantic_grad: str = "full"  # full | none | scaled:<f>
    # what the semantic head fits: "logits" (K logits, cross-entropy) or "palette" (the paper's
    # variant: 3 channels fitted to the palette-coloured label maps with sem_weight * L1, labels
    # recovered by the nearest palette colour). Runs without this field load as "logits".
    semantic_target: str = "logits"
    label_smoothing: float = 0.0
    # per-view weight of the semantic loss by the view's pose in the scene's head frame (parsers
    # err more at large |yaw|): "none" | "yaw:<deg>:<floor>" = weight 1 up to |yaw| = deg, then
    # linear down to <floor> at |yaw| = 90 (and <floor> beyond). Needs the scene's head_frame.
    label_view_weight: str = "none"
    # "ce" (cross-entropy) | "gce:<q>" (generalized cross-entropy, q in (0, 1], robust to label
    # noise; logits target only, no label smoothing)
    semantic_loss: str = "ce"
    # label-noise transition model in the semantic loss (forward correction, splat/losses.py
    # NoiseTransition): "none" | "em[:<warmup>[:<floor>]]" | "learn[:<warmup>[:<trace>]]" (see
    # parse_label_noise); logits target, cross-entropy, no label smoothing. Runs without it load as "none".
    label_noise: str = "none"
    # after the loop: "none" keeps the fitted logits; "vote[:<prior>]" replaces each Gaussian's
    # logits by bg_logit * its multiview label vote (splat/lift.py), which averages the views'
    # own errors instead of fitting them. Runs without this field load as "none".
    semantic_lift: str = "none"
    # colour plausibility of the input labels (splat/colour_weights.py): None = off, else the floor
    # of the per-pixel weight P(colour | label) / max_k P(colour | k) / label_colour_full_at (capped
    # at 1) from the scene's own images
    label_colour_weight: float | None = None
    label_colour_full_at: float = 0.5
    class_weights: tuple[float, ...] | None = None  # (K,) in the scheme's order; wins over the next
    # weights by class concept (scheme-independent: "l_eye", "mouth", ...); unnamed classes weigh 1
    class_weights_by_concept: tuple[tuple[str, float], ...] | None = None
    alpha_weight: float = 0.1  # L1 between rendered alpha and the foreground mask; 0 = off
    random_background: bool = True
    bg_logit: float = 10.0  # background logit vector = bg_logit * one_hot(0), composited behind
    mask_dilate: float = 0.01  # foreground dilation radius as a fraction of max(w, h)
    # initialisation
    hull_resolution: int = 40  # voxels per side of the [-bound, bound]^3 grid
    hull_bound: float = 1.8
    hull_vote_fraction: float = 0.75
    hull_min_views: int | None = None  # None = half the views (rounded up, >= 2)
    init_max_points: int = 4000
    init_opacity: float = 0.1
    init_logit: float = 3.0  # amplitude of the one-hot logits from the projected labels
    # densification (gsplat DefaultStrategy), as fractions of `steps`
    refine_start_frac: float = 0.1
    refine_stop_frac: float = 0.5
    refine_every: int = 50
    reset_every: int = 3000
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    prune_scale3d: float = 0.1
    prune_opa: float = 0.005
    # bookkeeping
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    seen_threshold: float = 0.1  # blend-weight sum (in pixels) for a view to count as seeing a Gaussian

    def __post_init__(self) -> None:
        self.coarse_to_fine = tuple((float(a), float(b)) for a, b in self.coarse_to_fine)
        if self.class_weights is not None:
            self.class_weights = tuple(float(w) for w in self.class_weights)
        if self.class_weights_by_concept is not None:
            self.class_weights_by_concept = tuple((str(k), float(w)) for k, w in self.class_weights_by_concept)
        self.validate()

    def validate(self) -> None:
        def bad(msg: str):
            raise LabelsplatError(f"invalid fit configuration: {msg}")

        if self.steps < 1:
            bad(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            bad(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_resolution is not None and self.max_resolution < 8:
            bad(f"max_resolution must be >= 8, got {self.max_resolution}")
        if not self.coarse_to_fine or self.coarse_to_fine[0][0] != 0.0:
            bad("coarse_to_fine must start at fraction 0.0")
        for frac, scale in self.coarse_to_fine:
            if not (0.0 <= frac <= 1.0 and 0.0 < scale <= 1.0):
                bad(f"coarse_to_fine entry ({frac}, {scale}) out of range")
        if not 0 <= self.sh_degree <= 4:
            bad(f"sh_degree must be 0..4, got {self.sh_degree}")
        if not 0.0 <= self.hull_vote_fraction <= 1.0:
            bad("hull_vote_fraction must be in [0, 1]")
        if not 0.0 <= self.ssim_lambda <= 1.0:
            bad("ssim_lambda must be in [0, 1]")
        if not 0.0 <= self.label_smoothing < 1.0:
            bad("label_smoothing must be in [0, 1)")
        parse_semantic_grad(self.semantic_grad)
        parse_label_view_weight(self.label_view_weight)
        q = parse_semantic_loss(self.semantic_loss)
        if self.label_colour_weight is not None and not 0.0 <= self.label_colour_weight <= 1.0:
            bad(f"label_colour_weight must be in [0, 1] (the weight floor) or None, got {self.label_colour_weight}")
        if not 0.0 < self.label_colour_full_at <= 1.0:
            bad(f"label_colour_full_at must be in (0, 1], got {self.label_colour_full_at}")
        from .lift import parse_semantic_lift

        if parse_semantic_lift(self.semantic_lift) is not None and self.semantic_target != "logits":
            bad("semantic_lift vote needs semantic_target=logits")
        if q and (self.label_smoothing > 0 or self.semantic_target != "logits"):
            bad("semantic_loss gce needs semantic_target=logits and label_smoothing=0")
        if parse_label_noise(self.label_noise) is not None and (
                q or self.label_smoothing > 0 or self.semantic_target != "logits"):
            bad(f"label_noise={self.label_noise!r} needs semantic_target=logits, semantic_loss=ce and label_smoothing=0")
        if self.semantic_target not in SEMANTIC_TARGETS:
            bad(f"semantic_target must be one of {', '.join(SEMANTIC_TARGETS)}, got {self.semantic_target!r}")

    # -- derived values
    @property
    def semantic_grad_weight(self) -> float:
        return parse_semantic_grad(self.semantic_grad)

    def strategy_schedule(self) -> dict[str, int]:
        """gsplat DefaultStrategy iteration numbers scaled to ``steps``."""
        start = max(1, int(round(self.refine_start_frac * self.steps)))
        stop = max(start + 1, int(round(self.refine_stop_frac * self.steps)))
        return {
            "refine_start_iter": start,
            "refine_stop_iter": stop,
            "refine_every": max(1, int(self.refine_every)),
            "reset_every": max(1, int(self.reset_every)),
        }

    def resolution_scale(self, step: int) -> float:
        """Render scale (relative to the max_resolution images) at ``step``."""
        scale = self.coarse_to_fine[0][1]
        for frac, s in self.coarse_to_fine:
            if step >= frac * self.steps:
                scale = s
        return scale

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["coarse_to_fine"] = [list(x) for x in self.coarse_to_fine]
        d["class_weights"] = None if self.class_weights is None else list(self.class_weights)
        d["class_weights_by_concept"] = (None if self.class_weights_by_concept is None
                                         else [list(kw) for kw in self.class_weights_by_concept])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FitConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise LabelsplatError(f"unknown fit configuration keys {sorted(unknown)}")
        d = dict(d)
        if "coarse_to_fine" in d:
            d["coarse_to_fine"] = tuple(tuple(x) for x in d["coarse_to_fine"])
        if d.get("class_weights") is not None:
            d["class_weights"] = tuple(d["class_weights"])
        if d.get("class_weights_by_concept") is not None:
            d["class_weights_by_concept"] = tuple((str(k), float(w)) for k, w in d["class_weights_by_concept"])
        return cls(**d)


__all__ = ["LABEL_NOISE_HELP", "LabelNoiseSpec", "parse_label_noise", "FitConfig", "LABEL_VIEW_WEIGHT_HELP",
           "label_view_weight", "parse_label_view_weight", "parse_semantic_loss", "parse_semantic_grad",
           "SEMANTIC_GRAD_HELP", "SEMANTIC_TARGETS"]
