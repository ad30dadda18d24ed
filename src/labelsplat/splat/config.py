"""Typed fit configuration.

The presets (``micro``, ``tiny``, ``fast``, ``gpu``, ``paper``) are whole trees in :mod:`labelsplat.config`;
``labelsplat.config.fit_preset("tiny", steps=500)`` is a preset's :class:`FitConfig`. All lengths are in the
normalised fit frame (head centred, radius ~1, see :mod:`.normalize`); learning rates
follow gsplat's ``simple_trainer`` defaults with a multiplier for short CPU presets.
Densification steps are derived from ``steps`` by :meth:`FitConfig.strategy_schedule`,
because gsplat's own defaults (start 500, every 100) never fire in a short preset.

Six fields are short texts with their own grammar (``semantic_grad``, ``label_view_weight``,
``semantic_loss``, ``label_noise``, ``semantic_lift``, ``strategy``): they stay texts in the configuration
(the ``--fit-set KEY=VALUE`` words users write, and what ``run.json`` records), and each is
parsed once, when the configuration is made, into a typed value: :attr:`FitConfig.parsed`.
Each typed value has ``parse(text)`` and ``str()`` (its canonical text).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import LabelsplatError

#: the semantic heads a fit can train (:mod:`.heads` implements one class per name)
SEMANTIC_TARGETS = ("logits", "palette")
#: how Gaussians are rasterised (gsplat's names; :func:`~.rasterize.rasterize` documents them)
RASTERIZE_MODES = ("classic", "antialiased")


def _number(x: float) -> str:
    """The shortest text of a number: ``45``, ``0.1``, ``1e-05``."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _floats(parts: list[str]) -> list[float] | None:
    """Finite floats of ``parts``, or None if one is not a finite number."""
    try:
        vals = [float(x) for x in parts]
    except ValueError:
        return None
    return vals if all(math.isfinite(v) for v in vals) else None


@dataclass(frozen=True)
class SemanticGradSpec:
    """``semantic_grad``: the weight of the semantic channels' gradient on the geometry.

    ``full`` = 1 (one rasterisation of [RGB | semantics], the labels shape the geometry),
    ``none`` = 0 (geometry from RGB only, the paper's variant), ``scaled:f`` = f in [0, 1].
    """

    weight: float = 1.0
    HELP: ClassVar[str] = "full | none | scaled:<f> (f in [0, 1])"

    @classmethod
    def parse(cls, text: str) -> "SemanticGradSpec":
        s = str(text).strip().lower()
        if s == "full":
            return cls(1.0)
        if s == "none":
            return cls(0.0)
        if s.startswith("scaled:"):
            vals = _floats([s.split(":", 1)[1]])
            if vals is not None and 0.0 <= vals[0] <= 1.0:
                return cls(vals[0])
        raise LabelsplatError(f"invalid semantic_grad {text!r}", hint=f"use {cls.HELP}, e.g. scaled:0.1")

    def __str__(self) -> str:
        if self.weight == 1.0:
            return "full"
        return "none" if self.weight == 0.0 else f"scaled:{_number(self.weight)}"


@dataclass(frozen=True)
class LabelViewWeightSpec:
    """``label_view_weight``: the semantic-loss weight of an input view by its yaw in the head frame.

    ``none`` (every view weighs 1) or ``yaw:<deg>:<floor>``: 1 up to |yaw| = deg, linear down to
    ``floor`` at |yaw| = 90, ``floor`` beyond (parsers err more at large |yaw|).
    """

    deg: float | None = None  # None = off
    floor: float = 1.0
    HELP: ClassVar[str] = "none | yaw:<deg>:<floor> (deg in [0, 90), floor in [0, 1])"

    @classmethod
    def parse(cls, text: str) -> "LabelViewWeightSpec":
        s = str(text).strip().lower()
        if s in ("none", ""):
            return cls()
        parts = s.split(":")
        if len(parts) == 3 and parts[0] == "yaw":
            vals = _floats(parts[1:])
            if vals is not None and 0.0 <= vals[0] < 90.0 and 0.0 <= vals[1] <= 1.0:
                return cls(vals[0], vals[1])
        raise LabelsplatError(f"invalid label_view_weight {text!r}", hint=f"use {cls.HELP}, e.g. yaw:45:0.3")

    @property
    def enabled(self) -> bool:
        return self.deg is not None

    def weight(self, yaw_deg: float) -> float:
        """The weight of a view at ``yaw_deg`` (degrees, head frame); 1 when off."""
        if self.deg is None:
            return 1.0
        a = abs(float(yaw_deg))
        if a <= self.deg:
            return 1.0
        t = min(1.0, (a - self.deg) / (90.0 - self.deg))
        return float(1.0 + t * (self.floor - 1.0))

    def __str__(self) -> str:
        return "none" if self.deg is None else f"yaw:{_number(self.deg)}:{_number(self.floor)}"


@dataclass(frozen=True)
class SemanticLossSpec:
    """``semantic_loss``: ``ce`` (cross-entropy) or ``gce:<q>`` (generalized cross-entropy, q in
    (0, 1], robust to label noise; logits target only, no label smoothing)."""

    q: float = 0.0  # 0 = cross-entropy
    HELP: ClassVar[str] = "ce | gce:<q> (q in (0, 1])"

    @classmethod
    def parse(cls, text: str) -> "SemanticLossSpec":
        s = str(text).strip().lower()
        if s == "ce":
            return cls()
        if s.startswith("gce:"):
            vals = _floats([s.split(":", 1)[1]])
            if vals is not None and 0.0 < vals[0] <= 1.0:
                return cls(vals[0])
        raise LabelsplatError(f"invalid semantic_loss {text!r}",
                              hint="use ce or gce:<q> with q in (0, 1], e.g. gce:0.7")

    @property
    def generalized(self) -> bool:
        return self.q > 0.0

    def __str__(self) -> str:
        return f"gce:{_number(self.q)}" if self.q else "ce"


#: defaults of the label-noise transition modes (``em`` / ``learn`` without numbers)
LABEL_NOISE_DEFAULTS = {"warmup": 0.25, "floor": 0.5, "trace": 0.01}


@dataclass(frozen=True)
class LabelNoiseSpec:
    """``label_noise``: one K x K row-stochastic transition matrix T per scene,
    T[i, j] = P(input label j | true class i), in the semantic loss (forward correction).

    ``mode`` ``none``: off. ``em``: T is the row-normalised moving average of the soft confusion
    between the rendered class probabilities and the input labels (detached), diagonal at least
    ``floor``; ``learn``: T = row-softmax of learnable K x K logits (initial diagonal ``init_diag``)
    with ``trace`` x mean(diag T) added to the loss (Tanno et al. 2019). Either way T is the
    identity (``em``) or frozen at its initial value (``learn``) for the first ``warmup`` fraction
    of the steps.
    """

    mode: str = "none"
    warmup: float = 0.0
    floor: float = 0.5
    trace: float = 0.0
    init_diag: float = 0.95
    HELP: ClassVar[str] = ("none | em[:<warmup>[:<floor>]] | learn[:<warmup>[:<trace>]] (warmup = fraction of "
                           "the steps in [0, 1), floor = lowest diagonal of T in (0, 1], trace = trace-penalty "
                           "weight >= 0)")

    @classmethod
    def parse(cls, text: str) -> "LabelNoiseSpec":
        s = str(text).strip().lower()
        if s in ("none", ""):
            return cls()
        mode, *nums = s.split(":")
        vals = _floats(nums) if mode in ("em", "learn") and len(nums) <= 2 else None
        if vals is not None:
            warmup = vals[0] if vals else LABEL_NOISE_DEFAULTS["warmup"]
            second = vals[1] if len(vals) > 1 else LABEL_NOISE_DEFAULTS["floor" if mode == "em" else "trace"]
            if mode == "em" and 0.0 <= warmup < 1.0 and 0.0 < second <= 1.0:
                return cls("em", warmup, floor=second)
            if mode == "learn" and 0.0 <= warmup < 1.0 and second >= 0.0:
                return cls("learn", warmup, trace=second)
        raise LabelsplatError(f"invalid label_noise {text!r}", hint=f"use {cls.HELP}, e.g. em:0.25:0.5")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def __str__(self) -> str:
        if self.mode == "none":
            return "none"
        second = self.floor if self.mode == "em" else self.trace
        return f"{self.mode}:{_number(self.warmup)}:{_number(second)}"


@dataclass(frozen=True)
class SemanticLiftSpec:
    """``semantic_lift``: label assignment after the fit. ``none`` keeps the fitted logits;
    ``vote[:<prior>]`` replaces each Gaussian's logits by ``bg_logit`` x its multiview label vote
    (:mod:`.lift`) mixed with the fitted distribution at strength ``prior`` (default 1);
    ``unweight[:<strength>]`` subtracts ``strength`` x log(class weight) from each Gaussian's fitted
    logits (default 1), undoing the shift of the decision that the class-weighted loss put in."""

    mode: str = "none"
    prior: float = 1.0
    HELP: ClassVar[str] = "none | vote[:<prior >= 0>] | unweight[:<strength >= 0>]"

    @classmethod
    def parse(cls, text: str) -> "SemanticLiftSpec":
        s = str(text).strip().lower()
        if s == "none":
            return cls()
        mode, colon, rest = s.partition(":")
        if mode in ("vote", "unweight"):
            if not colon:
                return cls(mode)
            try:
                value = float(rest)
            except ValueError:
                value = -1.0
            if value >= 0.0:
                return cls(mode, value)
        raise LabelsplatError(f"invalid semantic_lift {text!r}",
                              hint="use 'none', 'vote', 'vote:<prior >= 0>', 'unweight' or 'unweight:<strength >= 0>'")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def __str__(self) -> str:
        if self.mode == "none":
            return "none"
        return self.mode if self.prior == 1.0 else f"{self.mode}:{_number(self.prior)}"


@dataclass(frozen=True)
class StrategySpec:
    """``strategy``: how the Gaussians are densified (:mod:`.densify`). ``default``: gsplat's
    ``DefaultStrategy`` (clone, split and prune by screen-space gradient, scale and opacity);
    ``mcmc:<cap>[:<growth>]``: gsplat's ``MCMCStrategy`` (3D Gaussian Splatting as Markov chain Monte
    Carlo: near-transparent Gaussians are moved onto live ones, ``growth`` x N more are added each
    refine round (gsplat: 0.05) up to ``cap`` Gaussians, near-transparent positions get noise,
    opacity and scale are regularised)."""

    kind: str = "default"
    cap: int = 0  # mcmc: the most Gaussians
    growth: float = 0.05  # mcmc: the share of Gaussians added per refine round
    HELP: ClassVar[str] = ("default | mcmc:<cap>[:<growth>] (cap = most Gaussians, an integer >= 1; growth = "
                           "share added per refine round, > 0, default 0.05)")

    @classmethod
    def parse(cls, text: str) -> "StrategySpec":
        s = str(text).strip().lower()
        if s == "default":
            return cls()
        parts = [x.strip() for x in s.split(":")]
        if parts[0] == "mcmc" and len(parts) in (2, 3) and parts[1].isdigit() and int(parts[1]) >= 1:
            growth = _floats(parts[2:])
            if growth is not None and all(g > 0 for g in growth):
                return cls("mcmc", int(parts[1]), *growth)
        raise LabelsplatError(f"invalid strategy {text!r}", hint=f"use {cls.HELP}, e.g. mcmc:6000 or mcmc:6000:0.5")

    @property
    def is_mcmc(self) -> bool:
        return self.kind == "mcmc"

    def __str__(self) -> str:
        if self.kind == "default":
            return "default"
        return f"mcmc:{self.cap}" if self.growth == 0.05 else f"mcmc:{self.cap}:{_number(self.growth)}"


@dataclass(frozen=True)
class ParsedOptions:
    """The typed values of a :class:`FitConfig`'s grammar fields (same names as the fields)."""

    semantic_grad: SemanticGradSpec
    label_view_weight: LabelViewWeightSpec
    semantic_loss: SemanticLossSpec
    label_noise: LabelNoiseSpec
    semantic_lift: SemanticLiftSpec
    strategy: StrategySpec


#: the grammar fields of FitConfig and their typed values, in ParsedOptions' order
GRAMMARS: dict[str, type] = {"semantic_grad": SemanticGradSpec, "label_view_weight": LabelViewWeightSpec,
                             "semantic_loss": SemanticLossSpec, "label_noise": LabelNoiseSpec,
                             "semantic_lift": SemanticLiftSpec, "strategy": StrategySpec}


@dataclass
class FitConfig:
    """Everything that decides a fit's result (recorded in ``run.json`` and every checkpoint)."""

    preset: str = "tiny"  # the preset the fit settings started from
    steps: int = 300  # optimisation steps (the densification schedule scales with them)
    seed: int = 0  # random seed of the fit (initialisation, camera order, backgrounds)
    batch_size: int = 1  # cameras per step
    # resolution: images are first downscaled so that max(w, h) <= max_resolution (None = native),
    # then rendered at coarse_to_fine[i][1] x that size from step coarse_to_fine[i][0] * steps on.
    max_resolution: int | None = 128  # longest image side the views are downscaled to (None = native)
    coarse_to_fine: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.4, 1.0))  # resolution: (step fraction, render scale) pairs
    # appearance
    sh_degree: int = 1  # spherical-harmonic degree of the colour
    sh_degree_interval: int = 100  # one more SH band every this many steps
    semantics: bool = True  # False -> K = 0 (RGB only, same code path)
    # learning rates (normalised frame; gsplat simple_trainer defaults x lr_scale for short fits)
    means_lr: float = 1.6e-4  # learning rate of the positions (x lr_scale)
    means_lr_final_factor: float = 0.01  # exponential decay to this fraction at the last step
    scales_lr: float = 5e-3  # learning rate of the log-scales (x lr_scale)
    quats_lr: float = 1e-3  # learning rate of the rotations (x lr_scale)
    opacities_lr: float = 5e-2  # learning rate of the opacity logits
    sh0_lr: float = 2.5e-3  # learning rate of the DC colour (x lr_scale)
    shN_lr: float = 2.5e-3 / 20  # learning rate of the higher SH bands (x lr_scale)
    sem_lr: float = 2.5e-2  # learning rate of the semantic head
    lr_scale: float = 1.0  # multiplies means/scales/quats/sh LRs (short presets move faster)
    # losses
    ssim_lambda: float = 0.2  # colour loss = (1 - l) L1 + l (1 - SSIM)
    sem_weight: float = 0.5  # weight of the semantic loss
    sem_warmup: int = 0  # semantic loss starts after this many steps
    semantic_grad: str = "full"  # full | none | scaled:<f> (SemanticGradSpec)
    # what the semantic head fits: "logits" (K logits, cross-entropy) or "palette" (the paper's
    # variant: 3 channels fitted to the palette-coloured label maps with sem_weight * L1, labels
    # recovered by the nearest palette colour). Runs without this field load as "logits".
    semantic_target: str = "logits"
    # "classic" | "antialiased": gsplat's rasterize_mode (antialiased: the opacity is compensated for
    # the 2D low-pass blur, so small Gaussians do not grow). The model keeps it: its renders use it.
    rasterize_mode: str = "classic"
    label_smoothing: float = 0.0  # label smoothing of the semantic cross-entropy
    # per-view weight of the semantic loss by the view's pose in the scene's head frame (parsers
    # err more at large |yaw|): "none" | "yaw:<deg>:<floor>" = weight 1 up to |yaw| = deg, then
    # linear down to <floor> at |yaw| = 90 (and <floor> beyond). Needs the scene's head_frame.
    label_view_weight: str = "none"
    # "ce" (cross-entropy) | "gce:<q>" (generalized cross-entropy, q in (0, 1], robust to label
    # noise; logits target only, no label smoothing)
    semantic_loss: str = "ce"
    # label-noise transition model in the semantic loss (forward correction, splat/losses.py
    # NoiseTransition): "none" | "em[:<warmup>[:<floor>]]" | "learn[:<warmup>[:<trace>]]" (see
    # LabelNoiseSpec); logits target, cross-entropy, no label smoothing. Runs without it load as "none".
    label_noise: str = "none"
    # after the loop: "none" keeps the fitted logits; "vote[:<prior>]" replaces each Gaussian's
    # logits by bg_logit * its multiview label vote (splat/lift.py), which averages the views'
    # own errors instead of fitting them; "unweight[:<strength>]" subtracts strength * log(class
    # weight) from the fitted logits (splat/assign.py). Runs without this field load as "none".
    semantic_lift: str = "none"
    # colour plausibility of the input labels (splat/colour_weights.py): None = off, else the floor
    # of the per-pixel weight P(colour | label) / max_k P(colour | k) / label_colour_full_at (capped
    # at 1) from the scene's own images
    label_colour_weight: float | None = None
    label_colour_full_at: float = 0.5  # colour-plausibility ratio at which a label gets full weight
    class_weights: tuple[float, ...] | None = None  # (K,) in the scheme's order; wins over the next
    # weights by class concept (scheme-independent: "l_eye", "mouth", ...); unnamed classes weigh 1
    class_weights_by_concept: tuple[tuple[str, float], ...] | None = None
    alpha_weight: float = 0.1  # L1 between rendered alpha and the foreground mask; 0 = off
    random_background: bool = True  # composite targets and renders onto a random colour each step
    bg_logit: float = 10.0  # background logit vector = bg_logit * one_hot(0), composited behind
    # dilation radius of the foreground (fraction of max(w, h)); at 256 px the ring of backdrop it adds
    # is painted with opaque Gaussians, so the fast preset uses 0 (docs/quality.md)
    mask_dilate: float = 0.01
    # initialisation
    hull_resolution: int = 40  # voxels per side of the [-bound, bound]^3 grid
    hull_bound: float = 1.8  # half-size of the visual-hull grid (normalised frame)
    hull_vote_fraction: float = 0.75  # share of the views seeing a voxel that must call it foreground
    hull_min_views: int | None = None  # None = half the views (rounded up, >= 2)
    init_max_points: int = 4000  # most initial Gaussians
    init_opacity: float = 0.1  # opacity of the initial Gaussians
    init_logit: float = 3.0  # amplitude of the one-hot logits from the projected labels
    # densification: "default" (gsplat DefaultStrategy, the thresholds below) | "mcmc:<cap>[:<growth>]"
    # (gsplat MCMCStrategy: at most <cap> Gaussians, <growth> x N more per refine round, default 0.05;
    # StrategySpec). Runs without this field load as "default".
    strategy: str = "default"
    # the densification schedule, as fractions of `steps` (both strategies)
    refine_start_frac: float = 0.1  # densification starts at this fraction of the steps
    refine_stop_frac: float = 0.5  # densification stops at this fraction of the steps
    refine_every: int = 50  # steps between densification rounds
    reset_every: int = 3000  # steps between opacity resets
    grow_grad2d: float = 0.0002  # screen-space gradient above which a Gaussian is split or cloned
    grow_scale3d: float = 0.01  # scale (normalised frame) separating clone from split
    prune_scale3d: float = 0.1  # Gaussians larger than this (normalised frame) are pruned
    prune_opa: float = 0.005  # Gaussians below this opacity are pruned (mcmc: relocated)
    # bookkeeping
    checkpoint_every: int = 100  # steps between periodic checkpoints
    keep_checkpoints: int = 2  # periodic checkpoints kept
    log_every: int = 10  # steps between train_log.jsonl lines
    seen_threshold: float = 0.1  # blend-weight sum (in pixels) for a view to count as seeing a Gaussian

    def __post_init__(self) -> None:
        self.coarse_to_fine = tuple((float(a), float(b)) for a, b in self.coarse_to_fine)
        if self.class_weights is not None:
            self.class_weights = tuple(float(w) for w in self.class_weights)
        if self.class_weights_by_concept is not None:
            self.class_weights_by_concept = tuple((str(k), float(w)) for k, w in self.class_weights_by_concept)
        self.validate()

    def validate(self) -> None:
        """Check every field; LabelsplatError naming the problem."""

        def bad(msg: str):
            raise LabelsplatError(f"invalid fit configuration: {msg}")

        self._check_numbers(bad)
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
        p = self.parsed  # raises for a text outside its grammar
        if self.label_colour_weight is not None and not 0.0 <= self.label_colour_weight <= 1.0:
            bad(f"label_colour_weight must be in [0, 1] (the weight floor) or None, got {self.label_colour_weight}")
        if not 0.0 < self.label_colour_full_at <= 1.0:
            bad(f"label_colour_full_at must be in (0, 1], got {self.label_colour_full_at}")
        logits = self.semantic_target == "logits"
        if p.semantic_lift.enabled and not logits:
            bad(f"semantic_lift {p.semantic_lift.mode} needs semantic_target=logits")
        # gce may come from the preset (fast) rather than the user: say how to switch it off
        to_ce = f" (semantic_loss is {self.semantic_loss} here: add --fit-set semantic_loss=ce)"
        if p.semantic_loss.generalized and (self.label_smoothing > 0 or not logits):
            bad(f"semantic_loss gce needs semantic_target=logits and label_smoothing=0{to_ce}")
        if p.label_noise.enabled and (p.semantic_loss.generalized or self.label_smoothing > 0 or not logits):
            bad(f"label_noise={self.label_noise!r} needs semantic_target=logits, semantic_loss=ce and "
                f"label_smoothing=0{to_ce if p.semantic_loss.generalized else ''}")
        if self.rasterize_mode not in RASTERIZE_MODES:
            bad(f"rasterize_mode must be one of {', '.join(RASTERIZE_MODES)}, got {self.rasterize_mode!r}")
        if p.strategy.is_mcmc and p.strategy.cap < self.init_max_points:
            bad(f"strategy={self.strategy!r} caps the Gaussians below init_max_points ({self.init_max_points}): "
                f"MCMC never removes Gaussians; raise the cap or lower init_max_points")
        if self.semantic_target not in SEMANTIC_TARGETS:
            bad(f"semantic_target must be one of {', '.join(SEMANTIC_TARGETS)}, got {self.semantic_target!r}")

    #: settings that must be >= 0, > 0, in [0, 1] and in (0, 1)
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = (
        "means_lr", "scales_lr", "quats_lr", "opacities_lr", "sh0_lr", "shN_lr", "sem_lr", "sem_weight",
        "alpha_weight", "mask_dilate", "grow_grad2d", "grow_scale3d", "prune_scale3d", "seen_threshold", "init_logit",
        "sem_warmup")
    POSITIVE: ClassVar[tuple[str, ...]] = (
        "lr_scale", "means_lr_final_factor", "hull_bound", "hull_resolution", "init_max_points", "refine_every",
        "reset_every", "checkpoint_every", "keep_checkpoints", "log_every", "sh_degree_interval")
    UNIT: ClassVar[tuple[str, ...]] = ("refine_start_frac", "refine_stop_frac", "prune_opa")
    OPEN_UNIT: ClassVar[tuple[str, ...]] = ("init_opacity",)

    def _check_numbers(self, bad) -> None:
        """Every number finite (NaN or infinity anywhere is refused), and the ranged settings in range."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            flat = value if isinstance(value, tuple) else (value,)
            flat = [x for v in flat for x in (v if isinstance(v, tuple) else (v,))]
            if any(isinstance(x, float) and not math.isfinite(x) for x in flat):
                bad(f"{f.name} must be a finite number, got {value!r}")
        rules = ((self.NON_NEGATIVE, lambda v: v >= 0, ">= 0"), (self.POSITIVE, lambda v: v > 0, "> 0"),
                 (self.UNIT, lambda v: 0 <= v <= 1, "in [0, 1]"), (self.OPEN_UNIT, lambda v: 0 < v < 1, "in (0, 1)"))
        for names, ok, say in rules:
            for name in names:
                if not ok(getattr(self, name)):
                    bad(f"{name} must be {say}, got {getattr(self, name)!r}")

    # -- derived values
    @property
    def parsed(self) -> ParsedOptions:
        """The grammar fields as typed values: parsed when the configuration is made (and again
        only after one of those fields was reassigned)."""
        texts = tuple(getattr(self, name) for name in GRAMMARS)
        cached = self.__dict__.get("_parsed")
        if cached is None or cached[0] != texts:
            cached = (texts, ParsedOptions(*(spec.parse(text) for spec, text in zip(GRAMMARS.values(), texts))))
            self.__dict__["_parsed"] = cached
        return cached[1]

    @property
    def semantic_grad_weight(self) -> float:
        return self.parsed.semantic_grad.weight

    def strategy_schedule(self) -> dict[str, int]:
        """The densification's iteration numbers scaled to ``steps`` (gsplat's strategy arguments;
        ``reset_every`` only for ``DefaultStrategy``)."""
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


__all__ = ["FitConfig", "GRAMMARS", "LABEL_NOISE_DEFAULTS", "LabelNoiseSpec", "LabelViewWeightSpec", "ParsedOptions",
           "RASTERIZE_MODES", "SEMANTIC_TARGETS", "SemanticGradSpec", "SemanticLiftSpec", "SemanticLossSpec",
           "StrategySpec"]
