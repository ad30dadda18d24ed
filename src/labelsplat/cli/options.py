"""Every command-line option that more than one command takes, defined once.

Single options are ``Annotated`` types (``device: Device = "auto"``): the flag, its help and
its type live here, the default in the command's signature. Option groups (the ``refine``
settings, the training settings) are tables that :func:`with_options` adds to a command's
signature; the command then receives one built value (a ``RefineConfig``, a dict) instead.
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, List, Optional, Sequence

import typer

# ----------------------------------------------------------------------------- single options
# (the per-preset defaults named in help texts are written out, since importing the preset registry
# would load torch for `--help`; tests/cli/test_help_text.py checks them against the registry)
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed (recorded in every output).")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an existing output that labelsplat wrote (never an input, never a folder "
                        "labelsplat did not create).")]
Resume = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted run with the same settings (refine, batch: finished scenes are "
                     "skipped, interrupted fits continue from their last checkpoint).")]
AllowOutside = Annotated[bool, typer.Option(
    "--allow-outside", help="Accept scene file paths that are absolute or leave the scene folder ('..').")]
Scheme = Annotated[Optional[str], typer.Option(
    "--scheme", help="Label scheme (`labelsplat labels schemes`) of the labels this command reads or writes, or that "
                     "the weights predict (default: the input's own - scene, weights sidecar - else celebamask19-zll).")]
InputSize = Annotated[Optional[int], typer.Option(
    "--input-size", help="Network input side in pixels (default: the weights' .json sidecar, else 512).")]
Crop = Annotated[bool, typer.Option(
    "--crop/--no-crop", help="Scenes: crop around the projected head centre before resizing (as `parse` does).")]
CropRadius = Annotated[Optional[float], typer.Option(
    "--crop-radius", help="Scenes: crop half-extent in scene units (default 15 cm in the scene's units).")]
Backend = Annotated[Optional[str], typer.Option(
    "--backend", help="Expert override of the fit's rasteriser: cpu | gsplat (default auto: gsplat on CUDA).")]
SemanticGrad = Annotated[Optional[str], typer.Option(
    "--semantic-grad", help="full | none | scaled:<f> (default: the preset's - micro full, tiny scaled:0.1, "
                            "fast none, gpu scaled:0.1, paper full).")]
Steps = Annotated[Optional[int], typer.Option(
    "--steps", help="Fit steps (default: the preset's - micro 60, tiny 300, fast 2000, gpu 3000, paper 30000).")]
Preset = Annotated[Optional[str], typer.Option(
    "--preset", help="micro | tiny | fast | gpu | paper: the default of every setting (`labelsplat config show PRESET`); "
                     "default tiny.")]
FitSet = Annotated[Optional[List[str]], typer.Option(
    "--fit-set", metavar="KEY=VALUE",
    help="Any fit setting over the preset's (repeatable), e.g. --fit-set label_colour_weight=none "
         "or --fit-set class_weights_by_concept=l_eye:10,mouth:5 (the fit.* keys of `labelsplat config show`).")]
PpSet = Annotated[Optional[List[str]], typer.Option(
    "--pp-set", metavar="KEY=VALUE",
    help="Any post-processing setting (repeatable), e.g. --pp-set fill_holes=false or "
         "--pp-set single_instance=neck,nose or --pp-set min_confidence=0.5 (the postprocess.* keys of "
         "`labelsplat config show`).")]
SamplerSet = Annotated[Optional[List[str]], typer.Option(
    "--sampler-set", metavar="KEY=VALUE",
    help="A view-sampler setting over the --sampler preset's (repeatable), e.g. --sampler-set min_head_fraction=0.02 "
         "or --sampler-set max_tries=5000 (the scalar sampler.* keys of `labelsplat config show`).")]
NovelViews = Annotated[Optional[int], typer.Option(
    "--novel-views", help="Novel views per scene (default: the preset's - micro 6, tiny 24, fast 100, gpu 500, paper 500).")]
Members = Annotated[Optional[int], typer.Option(
    "--members", help="Fits per scene that differ only in their seed; the labels at the novel views average their "
                      "class probabilities (default: the preset's - micro 1, tiny 2, fast 2, gpu 1, paper 1).")]
Sampler = Annotated[Optional[str], typer.Option(
    "--sampler", help="extreme | uniform | input-like (default: the preset's, extreme).")]
Extract = Annotated[Optional[str], typer.Option(
    "--extract", help="argmax (of rendered logits; default) | palette (fit SEG as colours, the paper's variant).")]
BeyondCoverage = Annotated[bool, typer.Option(
    "--beyond-coverage", help="Allow poses beyond the inputs' coverage (flagged).")]
TrustedYaw = Annotated[Optional[float], typer.Option(
    "--trusted-yaw", help="Input views up to this |yaw| (degrees) are trusted: the refined labels must agree with "
                          "their input labels (default 30).")]
MinInputAgreement = Annotated[Optional[float], typer.Option(
    "--min-input-agreement", help="Warn when the refined labels agree with the trusted input labels below this mIoU "
                                  "(default 0.5).")]
CelebamaskLayout = Annotated[bool, typer.Option(
    "--celebamask-layout", help="Also write CelebAMask-HQ per-class masks in OUT/dataset.")]


def file_or_none(text: str | None) -> Path | None:
    """``text`` as a path when it names an existing file (options that take a file or inline JSON)."""
    if text is None:
        return None
    try:
        return Path(text) if Path(text).is_file() else None
    except (OSError, ValueError):  # inline JSON is no file name (too long, odd characters)
        return None


# ----------------------------------------------------------------------------- option groups
Option = tuple[str, Any, Any]  # (parameter name, Annotated type, default)


def with_options(options: Sequence[Option], *, into: str, build: Callable[[dict[str, Any]], Any]) -> Callable:
    """Decorator: add ``options`` to a typer command's signature (after its own parameters); the
    command receives ``build({name: value})`` as its keyword argument ``into`` instead of them."""

    def deco(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn, include_extras=True)  # resolved in fn's module
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(fn).parameters.values() if p.name != into]
        params = own + [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=ann)
                        for name, ann, default in options]

        @functools.wraps(fn)
        def wrapper(**kwargs):
            values = {name: kwargs.pop(name) for name, _, _ in options}
            return fn(**kwargs, **{into: build(values)})

        del wrapper.__wrapped__  # typer must see the new signature, not fn's
        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return deco


#: The settings of refine / batch / demo (RefineConfig); render takes :data:`RENDER_OPTIONS`.
REFINE_OPTIONS: tuple[Option, ...] = (
    ("preset", Preset, None),
    ("novel_views", NovelViews, None),
    ("sampler", Sampler, None),
    ("sampler_set", SamplerSet, None),
    ("extract", Extract, None),
    ("beyond_coverage", BeyondCoverage, False),
    ("semantic_grad", SemanticGrad, None),
    ("steps", Steps, None),
    ("members", Members, None),
    ("fit_set", FitSet, None),
    ("pp_set", PpSet, None),
    ("celebamask_layout", CelebamaskLayout, False),
    ("trusted_yaw", TrustedYaw, None),
    ("min_input_agreement", MinInputAgreement, None),
    ("backend", Backend, None),
    ("device", Device, "auto"),
    ("seed", Seed, 0),
)
RENDER_OPTIONS: tuple[Option, ...] = tuple(o for o in REFINE_OPTIONS if o[0] in (
    "preset", "novel_views", "sampler", "sampler_set", "beyond_coverage", "pp_set", "device", "seed"))


def build_refine_config(values: dict[str, Any]):
    """A RefineConfig from the values of :data:`REFINE_OPTIONS` (or a subset): the preset's tree
    with every given option over it (options not given keep the preset's value)."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..config import parse_fit_set, parse_pp_set, parse_sampler_set, preset, with_overrides

    v = dict(values)
    cfg = preset(v.pop("preset", None) or "tiny")
    fit_set, pp_set, sampler = v.pop("fit_set", None), v.pop("pp_set", None), v.pop("sampler", None)
    sampler_set = parse_sampler_set(v.pop("sampler_set", None))
    if v.get("backend") == "auto":
        v["backend"] = None
    flat = {k: x for k, x in v.items() if x is not None and x is not False}
    cfg = with_overrides(cfg, sampler=sampler, fit=parse_fit_set(fit_set), postprocess=parse_pp_set(pp_set), **flat)
    return with_overrides(cfg, sampler=sampler_set) if sampler_set else cfg


def with_refine_options(fn: Callable | None = None, *, options: Sequence[Option] = REFINE_OPTIONS) -> Callable:
    """Give a command the ``refine`` settings as options; it receives ``cfg: RefineConfig``."""
    deco = with_options(options, into="cfg", build=build_refine_config)
    return deco if fn is None else deco(fn)


#: The settings ``train`` and ``finetune`` share (each command sets its own defaults on top).
TRAIN_OPTIONS: tuple[Option, ...] = (
    ("mix", Annotated[Optional[List[str]], typer.Option(
        "--mix", help="DIR:RATIO - draw that fraction of samples from DIR (e.g. the original training set at 0.5).")],
     None),
    ("input_size", InputSize, None),
    ("crop_size", Annotated[Optional[int], typer.Option(
        "--crop-size", help="Training crop side (default input x 448/512).")], None),
    ("iters", Annotated[int, typer.Option("--iters", help="Optimiser steps (original recipe: 80000).")], 80000),
    ("batch_size", Annotated[int, typer.Option(
        "--batch-size", help="Images per micro-batch, per process (>= 2); global batch = this x processes x "
                             "--accumulate.")], 16),
    ("lr", Annotated[float, typer.Option(
        "--lr", help="Peak learning rate (heads get 10x); fine-tuning uses a lower one.")], 1e-2),
    ("warmup", Annotated[Optional[int], typer.Option("--warmup", help="Warm-up steps (default iters/80).")], None),
    ("scheme", Scheme, None),
    ("ckpt_every", Annotated[int, typer.Option("--ckpt-every", help="Steps between resume checkpoints.")], 1000),
    ("log_every", Annotated[int, typer.Option("--log-every", help="Steps between train_log.jsonl lines.")], 20),
    ("no_augment", Annotated[bool, typer.Option(
        "--no-augment", help="Disable scale/crop/jitter/flip augmentation.")], False),
    ("amp", Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA (ignored on CPU).")], True),
    ("workers", Annotated[Optional[int], typer.Option(
        "--workers", help="Threads preparing batches ahead (default 0 on CPU, 4 on CUDA).")], None),
    ("accumulate", Annotated[int, typer.Option(
        "--accumulate", help="Micro-batches of --batch-size per step per process (gradients averaged); --accumulate N "
                             "on one device reproduces N torchrun processes.")], 1),
    ("sync_bn", Annotated[bool, typer.Option(
        "--sync-bn", help="SyncBatchNorm across torchrun processes (CUDA only).")], False),
    ("nproc", Annotated[int, typer.Option(
        "--nproc", help="Run in N local processes (DDP) without calling torchrun yourself.")], 1),
    ("resume", Resume, False),
    ("overwrite", Overwrite, False),
    ("seed", Seed, 0),
    ("device", Device, "auto"),
)


def train_options(**defaults: Any) -> tuple[Option, ...]:
    """:data:`TRAIN_OPTIONS` with some defaults changed (``finetune``: fewer steps, a lower rate)."""
    unknown = set(defaults) - {name for name, _, _ in TRAIN_OPTIONS}
    assert not unknown, unknown
    return tuple((name, ann, defaults.get(name, default)) for name, ann, default in TRAIN_OPTIONS)


Data = Annotated[List[Path], typer.Option(
    "--data", help="Dataset directory (repeatable); pooled uniformly (finetune: e.g. refined extreme views).")]
TrainOut = Annotated[Path, typer.Option("--out", help="Output weights file, e.g. model.pth.")]


__all__ = ["Device", "Seed", "Quiet", "Overwrite", "Resume", "AllowOutside", "Backend", "SemanticGrad", "Steps",
           "Preset", "FitSet", "PpSet", "SamplerSet", "NovelViews", "Sampler", "Extract", "BeyondCoverage", "CelebamaskLayout",
           "Data", "TrainOut", "Scheme", "InputSize", "Crop", "CropRadius",
           "with_options", "with_refine_options", "build_refine_config", "REFINE_OPTIONS", "RENDER_OPTIONS",
           "TRAIN_OPTIONS", "train_options"]
