"""`labelsplat fit`: fit joint RGB + semantic Gaussians to a scene (thin wrapper over labelsplat.splat)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import LabelsplatError
from . import console, err_console
from .options import AllowOutside, Backend, Device, FitSet, Overwrite, Preset, Quiet, Resume, Seed, SemanticGrad, Steps

FIT_HELP = """Fit one set of 3D Gaussians with colour and per-class semantic logits to a scene's views.

Writes RUN/checkpoint.pt, RUN/point_cloud.ply (3DGS PLY in scene units + label, sem_*, n_views_seen),
RUN/renders/{rgb,labels,confidence}/, RUN/train_log.jsonl and RUN/run.json.
With --semantic-target palette (the paper's variant) the labels are fitted as a palette colour
image (L1) instead of logits: the PLY carries seg_r/g/b and RUN/renders/seg_rgb/ is added.

Example:

    labelsplat fit scenes/head_000 --out runs/head_000 --preset tiny

    labelsplat fit scenes/head_000 --out runs/head_000 --resume

    labelsplat fit scenes/head_000 --out runs/head_000_pal --semantic-target palette
"""


def fit_command(
    scene: Path = typer.Argument(..., help="Scene directory (transforms.json) with images and per-view labels."),
    out: Path = typer.Option(..., "--out", help="Run directory to write."),
    preset: Preset = None,
    device: Device = "auto",
    backend: Backend = None,
    semantic_grad: SemanticGrad = None,
    semantic_target: str = typer.Option(
        None, "--semantic-target",
        help="logits (K class logits, cross-entropy; default) | palette (the paper's variant: the labels fitted "
             "as a palette colour image with L1, labels = nearest palette colour).",
    ),
    steps: Steps = None,
    fit_set: FitSet = None,
    seed: Seed = None,
    rgb_only: bool = typer.Option(False, "--rgb-only", help="Fit colour only (K = 0); labels not needed."),
    resume: Resume = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    allow_outside: AllowOutside = False,
) -> None:
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..config import apply_fit_overrides, fit_preset, parse_fit_set
    from ..device import resolve_device
    from ..rundir import RunDir
    from ..scene import load_scene
    from ..splat import fit, latest_checkpoint

    overrides = {"steps": steps, "seed": seed, "semantic_grad": semantic_grad, "semantic_target": semantic_target}
    if rgb_only:
        overrides["semantics"] = False
    extra = parse_fit_set(fit_set)
    cfg = apply_fit_overrides(fit_preset(preset or "tiny", **overrides), extra)
    rd = RunDir(out, "fit", inputs=[scene], resumable=True)
    rd.check(resume=resume, overwrite=overwrite)
    scene_obj = load_scene(scene, allow_outside=allow_outside)
    dev = resolve_device(device)
    if resume:
        cfg = _resume_config(out, preset, overrides, extra)
    # one writer per run directory; a failed fit that wrote no checkpoint leaves nothing to resume
    with rd.writing(resume=resume, overwrite=overwrite, resumable=lambda: latest_checkpoint(out) is not None):
        result = fit(scene_obj, out, cfg, device=dev, backend=None if backend in (None, "auto") else backend,
                     resume=resume, progress=not quiet)
        rd.write_provenance(result.config.to_dict(), result.config.seed)  # still under the lock
    for note in result.notes:
        err_console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    s = result.summary
    acc = s.get("train_view_label_acc_vs_input")
    console.print(
        f"fit done: {s['n_gaussians']} Gaussians, {s['steps']} steps in {s['fit_time_s']:.1f} s; "
        f"training-view PSNR {s.get('train_view_psnr_fg', float('nan')):.2f} dB"
        + ("" if acc is None else f", label agreement with the input {acc:.3f}")
        + f"\nwrote {out}",
        highlight=False,
    )


def _resume_config(out: Path, preset: str | None, overrides: dict, extra: dict):
    """The configuration to resume with: None (the run's own) for a plain ``--resume``, else the
    options over the run's preset (the fit refuses any difference from the run's configuration)."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..config import apply_fit_overrides, fit_preset
    from ..splat.config import FitConfig
    from ..splat.checkpoint import latest_checkpoint, load_checkpoint

    ck = latest_checkpoint(out)
    if ck is None:
        raise LabelsplatError("nothing to resume: no checkpoint in the run directory", path=out,
                              hint="run without --resume to start a new fit")
    if preset is None and not any(v is not None for v in overrides.values()) and not extra:
        return None  # plain --resume: continue with the run's own configuration
    stored = FitConfig.from_dict(load_checkpoint(ck)["meta"]["config"])
    return apply_fit_overrides(fit_preset(preset or stored.preset, **overrides), extra)


def register(app: typer.Typer) -> None:
    """Attach ``fit`` to the root app."""
    app.command("fit", help=FIT_HELP, no_args_is_help=True)(fit_command)
