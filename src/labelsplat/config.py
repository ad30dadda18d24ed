"""Every setting of the label path as one tree, and the one registry of presets.

:class:`RefineConfig` holds the run-level settings (preset, seed, device, extraction, ...) and
four subtrees, each the configuration class of the stage that reads it:

* ``fit``: :class:`labelsplat.splat.config.FitConfig` (its fields are the ``--fit-set`` keys),
* ``sampler``: :class:`labelsplat.views.ViewSamplerConfig` (``--sampler`` picks its named preset),
* ``postprocess``: :class:`labelsplat.extract.PostprocessConfig` (its fields are the ``--pp-set`` keys),
* ``export``: :class:`ExportConfig` (novel views, rendering in chunks, the merged dataset).

:data:`PRESETS` (``micro``, ``tiny``, ``fast``, ``gpu``, ``paper``) are whole trees: :func:`preset` returns
a copy, :func:`with_overrides` a validated copy with settings changed (by subtree, or by the flat
names the command line uses), :func:`fit_preset` the ``fit`` subtree alone (``labelsplat fit``),
and :func:`describe` one row per setting for ``labelsplat config show``. A setting's one-line
doc is its field's comment in the class that defines it (:func:`field_docs`), so there is no
second table to keep in step.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import inspect
import io
import json
import math
import re
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Any

from .errors import LabelsplatError
from .extract.postprocess import PostprocessConfig
from .overrides import VALUE_HINT, parse_overrides
from .splat.config import FitConfig
from .views import PRESETS as SAMPLER_PRESETS
from .views import Dist, ViewSamplerConfig, sampler_config

PRESET_NAMES = ("micro", "tiny", "fast", "gpu", "paper")
MAX_MEMBERS = 8  # most fits per scene (RefineConfig.members)
SUBTREES = ("fit", "sampler", "postprocess", "export")
EXTRACT_MODES = ("argmax", "palette")
PALETTE_METHODS = ("nearest", "kmeans")


# ----------------------------------------------------------------------------- the export subtree
@dataclass
class ExportConfig:
    """How novel views are rendered, labelled and exported (``refine``, ``render``, ``batch``)."""

    novel_views: int = 24  # novel views sampled per scene
    render_batch: int = 4  # novel views rasterised together
    label_chunk: int = 32  # views rendered, extracted and post-processed together (bounds the memory)
    alpha_threshold: float = 0.5  # pixels whose rendered alpha is below this are background
    min_views_seen: int = 2  # a Gaussian seen by fewer input views counts as rarely seen
    low_view_threshold: float = 0.5  # pixels with more of their weight from rarely seen Gaussians become 255
    # postprocess.min_area as a fraction of the image, so it scales with the resolution (a fixed
    # pixel count would erase eyes and lips at 128 px); none: postprocess.min_area in pixels
    min_area_fraction: float | None = 2e-4
    val_fraction: float = 0.2  # fraction of the identities put in the merged dataset's val split
    celebamask_layout: bool = False  # also write OUT/dataset/CelebAMask-HQ-mask-anno/
    # the check without ground truth: the fitted labels rendered at the input views whose |yaw| is at
    # most trusted_yaw (where parsers are reliable) must agree with the input labels (mIoU) at least this
    trusted_yaw: float = 30.0  # input views up to this |yaw| (degrees) are trusted for the agreement check
    # warn when the agreement with the trusted input labels is lower: the exact labels of synthetic heads
    # agree with simulated parser labels at 0.66-0.93, a failed refine (micro preset) at 0.33
    # (benchmarks/results/input_agreement.json)
    min_input_agreement: float = 0.5

    def __post_init__(self) -> None:
        if self.novel_views < 1:
            raise LabelsplatError(f"--novel-views must be positive, got {self.novel_views}")
        for name in ("render_batch", "label_chunk"):
            if getattr(self, name) < 1:
                raise LabelsplatError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_views_seen < 0:
            raise LabelsplatError(f"min_views_seen must be >= 0, got {self.min_views_seen}")
        if not 0.0 <= self.trusted_yaw <= 180.0:
            raise LabelsplatError(f"trusted_yaw must be in [0, 180] degrees, got {self.trusted_yaw}")
        for name in ("alpha_threshold", "low_view_threshold", "min_area_fraction", "val_fraction",
                     "min_input_agreement"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise LabelsplatError(f"{name} must be in [0, 1], got {v}")

    def min_area(self, pp: PostprocessConfig, height: int, width: int) -> int:
        """The post-processing's ``min_area`` in pixels for images of ``height`` x ``width``."""
        if self.min_area_fraction is None:
            return pp.min_area
        return max(1, round(self.min_area_fraction * height * width))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- the tree
def _check_finite(tree: Any, where: str = "") -> None:
    """Refuse NaN or infinity anywhere in a configuration tree (a --set value such as nan or inf)."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            _check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            _check_finite(v, where)
    elif isinstance(tree, float) and not math.isfinite(tree):
        raise LabelsplatError(f"invalid configuration: {where} must be a finite number, got {tree!r}",
                              hint="give a finite number (`labelsplat config show` lists the settings)")


@dataclass
class RefineConfig:
    """Every setting of ``labelsplat refine`` / ``render`` / ``batch`` / ``demo`` (module docstring).

    Build it with :func:`preset` and :func:`with_overrides`; a subtree left out (None) is taken
    from the preset named by ``preset`` (its ``fit`` with this ``seed``).
    """

    preset: str = "tiny"  # the preset the settings started from: micro | tiny | fast | gpu | paper
    seed: int = 0  # random seed of the fit, the view sampler and the dataset split (recorded everywhere)
    # fits of each scene that differ only in their seed (seed, seed + 1, ...); the labels at the novel
    # views come from their averaged class probabilities (``RUN/members/<k>`` holds fit k >= 1)
    members: int = 1
    device: str = "auto"  # auto | cpu | cuda
    backend: str | None = None  # the fit's rasteriser: none = auto (gsplat on CUDA) | cpu | gsplat
    extract: str = "argmax"  # argmax of the rendered logits | palette (the paper's variant, fits a palette image)
    palette_method: str = "nearest"  # palette extraction: nearest | kmeans
    beyond_coverage: bool = False  # allow novel poses beyond the inputs' coverage (flagged in the outputs)
    score_gt: bool = True  # synthetic scenes: score the initial and refined labels against the exact labels
    fit: FitConfig | None = None  # the fit (--fit-set keys)
    sampler: ViewSamplerConfig | None = None  # how novel views are drawn (--sampler names its preset)
    postprocess: PostprocessConfig | None = None  # clean-up of the extracted labels (--pp-set keys)
    export: ExportConfig | None = None  # novel views, rendering chunks and the merged dataset

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise LabelsplatError(f"unknown preset {self.preset!r}", hint=f"choose one of {', '.join(PRESET_NAMES)}")
        if self.extract not in EXTRACT_MODES:
            raise LabelsplatError(f"unknown extraction {self.extract!r}", hint="choose argmax or palette")
        if self.palette_method not in PALETTE_METHODS:
            raise LabelsplatError(f"unknown palette method {self.palette_method!r}", hint="choose nearest or kmeans")
        if not isinstance(self.members, int) or not 1 <= self.members <= MAX_MEMBERS:
            raise LabelsplatError(f"members must be an integer in 1..{MAX_MEMBERS}, got {self.members!r}",
                                  hint="the number of fits per scene whose labels are averaged")
        base = PRESETS.get(self.preset)  # None only while the registry itself is built
        for name in SUBTREES:
            if getattr(self, name) is None:
                if base is None:
                    raise LabelsplatError(f"RefineConfig needs its {name} subtree")
                sub = copy.deepcopy(getattr(base, name))
                if name == "fit":
                    sub = dataclasses.replace(sub, seed=self.seed)
                setattr(self, name, sub)
        if self.extract == "palette" and self.fit.semantic_target != "palette":
            # palette extraction reads a palette image: the fit must produce one
            self.fit = dataclasses.replace(self.fit, semantic_target="palette")
        _check_finite(self.to_dict())


    def to_dict(self) -> dict[str, Any]:
        """JSON-able nested dict (refine.json, metrics.json's ``config``, batch tasks)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in SUBTREES}
        d.update({name: getattr(self, name).to_dict() for name in SUBTREES})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RefineConfig":
        """The inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise LabelsplatError(f"unknown refine configuration keys {unknown}")
        d = dict(d)
        if d.get("fit") is not None:
            d["fit"] = FitConfig.from_dict(d["fit"])
        if d.get("sampler") is not None:
            d["sampler"] = _sampler_from_dict(d["sampler"])
        if d.get("postprocess") is not None:
            d["postprocess"] = _from_dict(PostprocessConfig, d["postprocess"], "post-processing")
        if d.get("export") is not None:
            d["export"] = _from_dict(ExportConfig, d["export"], "export")
        return cls(**d)


def _from_dict(cls: type, d: dict, what: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise LabelsplatError(f"unknown {what} settings {unknown}", hint=f"choose from {sorted(names)}")
    return cls(**d)


def _sampler_from_dict(d: dict) -> ViewSamplerConfig:
    d = {k: (Dist(**v) if isinstance(v, dict) else v) for k, v in d.items()}
    return _from_dict(ViewSamplerConfig, d, "view sampler")


# ----------------------------------------------------------------------------- the registry
#: Class-balanced semantic loss measured best by benchmarks/refine_quality.py (docs/quality.md,
#: "CW3"): small parts weigh more so the fit keeps them; by concept, so any scheme can use it.
#: The ``tiny`` preset's weights (128 px inputs).
FACE_PART_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("l_brow", 5.0), ("r_brow", 5.0), ("l_eye", 10.0), ("r_eye", 10.0), ("eye_g", 5.0),
    ("l_ear", 5.0), ("r_ear", 5.0), ("ear_r", 5.0), ("nose", 3.0), ("mouth", 10.0),
    ("u_lip", 5.0), ("l_lip", 5.0), ("neck_l", 5.0), ("cloth", 1.5),
)
#: The ``fast`` preset's weights (256 px inputs): CW3 with the nose at 1. At 256 px the simulated
#: parser over-extends the nose by several pixels in every view, and with weight 3 the refined nose
#: grew to 1.65x its true area; at 128 px the same change cost 0.04 mIoU (docs/quality.md).
FACE_PART_WEIGHTS_FINE: tuple[tuple[str, float], ...] = tuple((c, w) for c, w in FACE_PART_WEIGHTS if c != "nose")


def _tree(name: str, fit: FitConfig, novel_views: int, members: int = 1) -> RefineConfig:
    return RefineConfig(preset=name, fit=fit, sampler=sampler_config("extreme"), postprocess=PostprocessConfig(),
                        export=ExportConfig(novel_views=novel_views), members=members)


#: The presets, whole trees (read them through :func:`preset`, which returns a copy).
PRESETS: dict[str, RefineConfig] = {}
PRESETS.update({
    # unit tests: a few seconds on a 64x64 scene
    "micro": _tree("micro", FitConfig(
        preset="micro", steps=60, max_resolution=64, coarse_to_fine=((0.0, 0.5), (0.3, 1.0)), sh_degree=1,
        sh_degree_interval=30, lr_scale=5.0, sem_lr=5e-2, hull_resolution=24, init_max_points=1500,
        refine_start_frac=0.2, refine_stop_frac=0.7, refine_every=10, checkpoint_every=20, log_every=5,
        init_opacity=0.3,
    ), novel_views=6),
    # the demo: one head, 16-24 views at ~128 px, ~1 min on 2 CPU cores; two fits averaged (their
    # labels vary from fit to fit by more than any setting changed them: docs/quality.md)
    "tiny": _tree("tiny", FitConfig(
        preset="tiny", steps=300, max_resolution=128, coarse_to_fine=((0.0, 0.5), (0.4, 1.0)), sh_degree=1,
        sh_degree_interval=100, lr_scale=4.0, sem_lr=5e-2, hull_resolution=40, init_max_points=4000,
        refine_start_frac=0.15, refine_stop_frac=0.6, refine_every=50, checkpoint_every=100, init_opacity=0.3,
        semantic_grad="scaled:0.1", class_weights_by_concept=FACE_PART_WEIGHTS,
    ), novel_views=24, members=2),
    # 32 views at 256^2, whole refine <= 10 min on 2 cores (530 s measured); two fits
    # averaged with the capacity of 2000 steps, grow_grad2d 1e-4 and up to 20k initial points (~28k
    # Gaussians), geometry from colour only (semantic_grad none): at this capacity the labels' gradients
    # made the geometry fit each view's label errors (|yaw| 60-90 refined 0.748 -> 0.789 on every seed,
    # ceiling 0.906 -> 0.870), and the generalized cross-entropy (gce:0.7), whose pull of a label fades
    # where the Gaussians that all views share find it implausible (refined 0.789 -> 0.796 in 60-90,
    # 0.796 -> 0.807 overall, higher on every seed and bin), and the foreground undilated (mask_dilate 0):
    # a dilated one added a ring of backdrop around the head in every view, which the fit painted with
    # opaque Gaussians (refined 0.796 -> 0.837 in 60-90, ceiling 0.860 -> 0.886), and the class weights'
    # shift of the decision undone after the fit (semantic_lift unweight): the weighted loss grew the
    # heavily weighted eyes, glasses and mouth over the skin wherever the views disagreed (docs/quality.md)
    "fast": _tree("fast", FitConfig(
        preset="fast", steps=2000, max_resolution=256, coarse_to_fine=((0.0, 0.25), (0.25, 0.5), (0.65, 1.0)),
        sh_degree=2, sh_degree_interval=250, lr_scale=2.0, sem_lr=2.5e-2, hull_resolution=56,
        init_max_points=20_000, refine_start_frac=0.1, refine_stop_frac=0.5, refine_every=100,
        grow_grad2d=1e-4, checkpoint_every=250, init_opacity=0.2,
        semantic_grad="none", semantic_loss="gce:0.7", class_weights_by_concept=FACE_PART_WEIGHTS_FINE,
        label_colour_weight=0.1, mask_dilate=0.0, semantic_lift="unweight",
    ), novel_views=100, members=2),
    # one head at 48 views 512 px on one GPU (intent: <= 60 s refine on an H200; GPU time not measured
    # yet): the fast preset's class and colour weights with the capacity that lifted the CPU ceiling (more steps,
    # grow_grad2d 1e-4, up to 20k initial points) and its undilated foreground (at 1000 of its steps on
    # the CPU, refined 0.761 -> 0.833 overall, 0.767 -> 0.826 in 60-90; docs/quality.md)
    "gpu": _tree("gpu", FitConfig(
        preset="gpu", steps=3000, max_resolution=512, coarse_to_fine=((0.0, 0.25), (0.2, 0.5), (0.5, 1.0)),
        sh_degree=3, sh_degree_interval=500, lr_scale=1.5, sem_lr=2.5e-2, hull_resolution=72,
        init_max_points=20_000, refine_start_frac=0.1, refine_stop_frac=0.5, refine_every=100,
        grow_grad2d=1e-4, checkpoint_every=1000, log_every=50, init_opacity=0.2,
        semantic_grad="scaled:0.1", class_weights_by_concept=FACE_PART_WEIGHTS_FINE, label_colour_weight=0.1,
        mask_dilate=0.0,
    ), novel_views=500),
    # the paper's schedule (GPU): 30k steps at native resolution, gsplat defaults
    "paper": _tree("paper", FitConfig(
        preset="paper", steps=30_000, max_resolution=None, coarse_to_fine=((0.0, 1.0),), sh_degree=3,
        sh_degree_interval=1000, lr_scale=1.0, sem_lr=2.5e-2, hull_resolution=96, init_max_points=50_000,
        refine_start_frac=500 / 30_000, refine_stop_frac=0.5, refine_every=100, reset_every=3000,
        checkpoint_every=5000, log_every=100, init_opacity=0.1,
    ), novel_views=500),
})


def preset(name: str = "tiny") -> RefineConfig:
    """A copy of the preset tree ``name`` (changing it never changes the registry)."""
    if name not in PRESETS:
        raise LabelsplatError(f"unknown preset {name!r}", hint=f"choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def apply_fit_overrides(cfg: FitConfig, overrides: dict[str, Any]) -> FitConfig:
    """A validated copy of ``cfg`` with every override applied, ``None`` values included."""
    names = {f.name for f in dataclasses.fields(FitConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise LabelsplatError(f"unknown fit options {sorted(unknown)}",
                              hint="the settings are listed by `labelsplat config show`")
    return dataclasses.replace(cfg, **overrides)


def fit_preset(name: str = "tiny", **overrides: Any) -> FitConfig:
    """The ``fit`` subtree of preset ``name`` with ``overrides`` applied (``None`` values are ignored;
    use :func:`apply_fit_overrides` to set a setting to None)."""
    return apply_fit_overrides(preset(name).fit, {k: v for k, v in overrides.items() if v is not None})


# ----------------------------------------------------------------------------- overrides
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _subtree_classes() -> dict[str, type]:
    return {"fit": FitConfig, "sampler": ViewSamplerConfig, "postprocess": PostprocessConfig, "export": ExportConfig}


@functools.lru_cache(maxsize=None)
def _flat_owners() -> dict[str, str | None]:
    """Flat setting name -> "run" or the subtree that owns it (None: ambiguous between subtrees).
    Run-level names win (``preset``, ``seed``)."""
    owners: dict[str, str | None] = {}
    for sub, cls in _subtree_classes().items():
        for name in _field_names(cls):
            owners[name] = sub if name not in owners else None
    for name in _field_names(RefineConfig):
        if name not in SUBTREES:
            owners[name] = "run"
    return owners


def _switch_sampler(cur: ViewSamplerConfig, name: str) -> ViewSamplerConfig:
    """The named view-sampler preset, keeping the settings ``cur`` changed from its own preset."""
    base = SAMPLER_PRESETS.get(cur.preset)
    kept = {} if base is None else {f: getattr(cur, f) for f in _field_names(ViewSamplerConfig)
                                    if f != "preset" and getattr(cur, f) != getattr(base, f)}
    return sampler_config(name, **kept)


def _replace(obj, changes: dict, what: str):
    if not changes:
        return obj
    names = set(_field_names(type(obj)))
    unknown = sorted(set(changes) - names)
    if unknown:
        raise LabelsplatError(f"unknown {what} settings {unknown}", hint=f"choose from {sorted(names)}")
    return dataclasses.replace(obj, **changes)


def with_overrides(cfg: RefineConfig, *, fit: dict | None = None, sampler: str | dict | None = None,
                   postprocess: dict | None = None, export: dict | None = None, **flat: Any) -> RefineConfig:
    """A validated copy of ``cfg`` with settings changed; ``cfg`` itself is not modified.

    ``flat``: settings by their flat name, as the command line and ``--fit-set`` / ``--pp-set``
    name them (``seed=1, novel_views=100, steps=500, min_confidence=0.5``): a run-level name
    first, else the one subtree that has the field. ``seed`` also sets ``fit.seed``. Then the
    subtree dicts apply (``fit={"label_colour_weight": None}``, ``None`` values included);
    ``sampler`` may also be the name of a view-sampler preset (``"uniform"``), which keeps the
    sampler settings ``cfg`` changed. Setting ``postprocess.min_area`` (pixels) without
    ``export.min_area_fraction`` switches the fraction off, so the pixel count is used.
    """
    if "preset" in flat:
        raise LabelsplatError("with_overrides keeps the preset", hint="start from preset(name) for another preset")
    owners = _flat_owners()
    run: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {name: {} for name in SUBTREES}
    for key, value in flat.items():
        owner = owners.get(key, "unknown")
        if owner == "unknown":
            raise LabelsplatError(f"unknown setting {key!r}", hint="the settings are listed by `labelsplat config show`")
        if owner is None:
            raise LabelsplatError(f"setting {key!r} is ambiguous", hint="pass it in its subtree, e.g. fit={...}")
        (run if owner == "run" else subs[owner])[key] = value
    if "seed" in run:
        subs["fit"] = {"seed": run["seed"], **subs["fit"]}
    subs["fit"].update(fit or {})
    subs["postprocess"].update(postprocess or {})
    subs["export"].update(export or {})
    if isinstance(sampler, dict):
        subs["sampler"].update(sampler)
    if "min_area" in subs["postprocess"] and "min_area_fraction" not in subs["export"]:
        subs["export"]["min_area_fraction"] = None
    out = copy.deepcopy(cfg)
    out.fit = apply_fit_overrides(out.fit, subs["fit"])
    if isinstance(sampler, str):
        out.sampler = _switch_sampler(out.sampler, sampler)
    out.sampler = _replace(out.sampler, subs["sampler"], "view sampler")
    out.postprocess = _replace(out.postprocess, subs["postprocess"], "post-processing")
    out.export = _replace(out.export, subs["export"], "export")
    return dataclasses.replace(out, **run)  # __post_init__ validates the run-level settings


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(x.strip() for x in part.split(":")) for part in text.split(","))  # type: ignore[misc]


# FitConfig fields whose --fit-set value has its own grammar ("a:b,c:d")
_FIT_READERS = {
    "class_weights_by_concept": lambda t: tuple((c, float(w)) for c, w in _pairs(t)),
    "coarse_to_fine": lambda t: tuple((float(a), float(b)) for a, b in _pairs(t)),
}


def parse_fit_set(items: list[str] | None) -> dict[str, Any]:
    """``--fit-set KEY=VALUE`` strings -> typed ``fit`` overrides (``class_weights_by_concept`` as
    ``l_eye:10,mouth:5``, ``coarse_to_fine`` as ``0:0.25,0.5:1``; ``none`` sets an optional
    setting to None and stays in the dict)."""
    return parse_overrides(items, FitConfig, option="--fit-set", exclude=("preset",), readers=_FIT_READERS,
                           example="label_colour_weight=none", what="fit setting",
                           names_hint="the settings are FitConfig's fields, listed with their defaults by "
                                      "`labelsplat config show` (e.g. label_colour_weight, class_weights_by_concept, "
                                      "semantic_loss, sem_lr)",
                           value_hint=VALUE_HINT + "; class_weights_by_concept as l_eye:10,mouth:5")


def parse_pp_set(items: list[str] | None) -> dict[str, Any]:
    """``--pp-set KEY=VALUE`` strings -> typed ``postprocess`` overrides."""
    return parse_overrides(items, PostprocessConfig, option="--pp-set", example="fill_holes=false",
                           names_hint="the settings are PostprocessConfig's fields, listed with their defaults by "
                                      "`labelsplat config show` (e.g. fill_holes, single_instance, min_confidence)")


# ----------------------------------------------------------------------------- docs and `config show`
_HEADER_LEAD = re.compile(r"^[^(:;,]*")


def _is_section_header(block: list[str]) -> bool:
    """A one-line comment whose lead phrase has at most three words ("losses", "learning rates (...)")
    heads a group of fields; a longer comment documents the field below it only."""
    return len(block) == 1 and len(_HEADER_LEAD.match(block[0]).group(0).split()) <= 3


def _source_comments(src: str) -> tuple[dict[int, str], set[int]]:
    comments: dict[int, str] = {}
    code: set[int] = set()
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT)
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in skip:
            code.update(range(tok.start[0], tok.end[0] + 1))
    return comments, code


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """One-line doc of every field of the dataclass ``cls``: ``metadata["doc"]`` if set, else the
    field's comment in the class source: the comment on its line, else the comment block right
    above it, else the nearest comment above that names it, else its group's one-line header."""
    docs = {f.name: str(f.metadata.get("doc", "")) for f in dataclasses.fields(cls)}
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (frozen application): metadata only
        return docs
    comments, code = _source_comments(src)
    section, blocks = "", []
    for node in ast.parse(src).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        block: list[str] = []
        ln = node.lineno - 1
        while ln in comments and ln not in code:
            block.insert(0, comments[ln])
            ln -= 1
        if block:
            blocks.append(" ".join(block))
            if _is_section_header(block):
                section = block[0]
        name = node.target.id
        own = " ".join(comments[i] for i in range(node.lineno, node.end_lineno + 1) if i in comments and i in code)
        own = own or " ".join(block)
        if not own:
            own = next((b for b in reversed(blocks) if re.search(rf"\b{re.escape(name)}\b", b)), section)
        if name in docs and not docs[name]:
            docs[name] = own
    return docs


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def value_text(v: Any) -> str:
    """A setting's value written as ``--fit-set`` / ``--pp-set`` read it."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, Dist):
        return {"uniform": f"uniform({_num(v.low)}, {_num(v.high)})", "fixed": f"fixed({_num(v.mean)})"}.get(
            v.kind, f"normal({_num(v.mean)}, {_num(v.std)}) in [{_num(v.low)}, {_num(v.high)}]")
    if isinstance(v, tuple):
        if all(isinstance(x, tuple) and len(x) == 2 for x in v):
            return ",".join(f"{a if isinstance(a, str) else _num(a)}:{_num(b)}" for a, b in v)
        return ",".join(value_text(x) for x in v)
    return str(v)


#: The command-line option that sets a setting directly (besides --fit-set / --pp-set).
OPTION_OF = {
    "preset": "--preset", "seed": "--seed", "device": "--device", "backend": "--backend", "extract": "--extract",
    "beyond_coverage": "--beyond-coverage", "fit.steps": "--steps", "fit.semantic_grad": "--semantic-grad",
    "sampler.preset": "--sampler", "export.novel_views": "--novel-views",
    "export.celebamask_layout": "--celebamask-layout",
}
_SET_OPTION = {"fit": "--fit-set", "postprocess": "--pp-set"}


def _plain(v: Any) -> Any:
    """JSON-able form of a value (tuples as lists, dataclasses as dicts)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return dataclasses.asdict(v)
    return json.loads(json.dumps(v, default=str))


def describe(cfg: RefineConfig | str = "tiny") -> list[dict[str, Any]]:
    """One row per setting of ``cfg`` (a tree or a preset name): ``name`` (with its subtree prefix,
    e.g. ``fit.sem_lr``), ``key`` (the flat name ``--fit-set`` / ``--pp-set`` take), ``set_with``
    (how to set it on the command line, "" if only from Python), ``type``, ``default`` (the
    value in ``cfg``, JSON-able), ``text`` (that value as the command line writes it) and ``doc``."""
    tree = preset(cfg) if isinstance(cfg, str) else cfg
    rows = []
    groups: list[tuple[str | None, Any]] = [(None, tree)] + [(name, getattr(tree, name)) for name in SUBTREES]
    for sub, obj in groups:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            if sub is None and f.name in SUBTREES:
                continue
            name = f.name if sub is None else f"{sub}.{f.name}"
            value = getattr(obj, f.name)
            ways = [OPTION_OF[name]] if name in OPTION_OF else []
            if sub in _SET_OPTION and not (sub == "fit" and f.name == "preset"):
                ways.append(f"{_SET_OPTION[sub]} {f.name}=...")
            rows.append({"name": name, "key": f.name, "set_with": " | ".join(ways),
                         "type": str(f.type).replace("typing.", ""), "default": _plain(value),
                         "text": value_text(value), "doc": docs.get(f.name, "")})
    return rows


__all__ = ["ExportConfig", "RefineConfig", "PRESETS", "PRESET_NAMES", "FACE_PART_WEIGHTS", "FACE_PART_WEIGHTS_FINE",
           "preset", "fit_preset", "with_overrides", "apply_fit_overrides", "parse_fit_set", "parse_pp_set",
           "describe", "field_docs", "value_text"]


def parse_sampler_set(items: list[str] | None) -> dict[str, Any]:
    """``--sampler-set KEY=VALUE`` strings -> typed view-sampler overrides (the scalar settings,
    e.g. ``min_head_fraction=0.02``, ``max_tries=5000``; the distributions come with ``--sampler``)."""
    fields = dataclasses.fields(ViewSamplerConfig)
    scalar = tuple(f.name for f in fields if not isinstance(f.default, (str, Dist)))
    return parse_overrides(items, ViewSamplerConfig, option="--sampler-set", example="min_head_fraction=0.02",
                           exclude=tuple(f.name for f in fields if f.name not in scalar), what="view-sampler setting",
                           names_hint=f"the settings are {', '.join(scalar)} (`labelsplat config show` lists them)")
