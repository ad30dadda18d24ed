"""`labelsplat fit`: fit joint RGB + semantic Gaussians to a scene (thin wrapper over labelsplat.splat)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from ..errors import LabelsplatError
from . import console, device_option, err_console

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
    preset: str = typer.Option(None, "--preset", help="micro | tiny | fast | paper (default tiny; on --resume the run's)."),
    device: str = device_option(),
    backend: str = typer.Option("auto", "--backend", help="Expert override: cpu | gsplat (auto: gsplat on CUDA)."),
    semantic_grad: str = typer.Option(None, "--semantic-grad", help="full | none | scaled:<f> (preset default: full)."),
    semantic_target: str = typer.Option(
        None, "--semantic-target",
        help="logits (K class logits, cross-entropy; default) | palette (the paper's variant: the labels fitted "
             "as a palette colour image with L1, labels = nearest palette colour).",
    ),
    steps: int = typer.Option(None, "--steps", help="Training steps (overrides the preset)."),
    fit_set: list[str] = typer.Option(
        None, "--fit-set", metavar="KEY=VALUE",
        help="Any fit setting over the preset's (repeatable), e.g. --fit-set label_colour_weight=none "
             "or --fit-set class_weights_by_concept=l_eye:10,mouth:5 (FitConfig's fields)."),
    seed: int = typer.Option(None, "--seed", help="Random seed (default 0; recorded in every output)."),
    rgb_only: bool = typer.Option(False, "--rgb-only", help="Fit colour only (K = 0); labels not needed."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted fit from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    allow_outside: bool = typer.Option(
        False, "--allow-outside", help="Accept scene file paths that are absolute or leave the scene folder ('..')."),
) -> None:
    from ..device import resolve_device
    from ..scene import load_scene
    from ..splat import fit
    from ..splat.config import apply_fit_overrides, make_config, parse_fit_overrides

    if resume and overwrite:
        raise LabelsplatError("--resume and --overwrite exclude each other")
    scene_obj = load_scene(scene, allow_outside=allow_outside)
    dev = resolve_device(device)
    overrides = {"steps": steps, "seed": seed, "semantic_grad": semantic_grad, "semantic_target": semantic_target}
    if rgb_only:
        overrides["semantics"] = False
    extra = parse_fit_overrides(fit_set)
    cfg = apply_fit_overrides(make_config(preset or "tiny", **overrides), extra)
    if out.exists() and not out.is_dir():
        raise LabelsplatError("--out exists and is not a directory", path=out, hint="choose another --out")
    for anc in out.parents:  # a file on the way: refuse before any work (the fit creates --out later)
        if anc.exists():
            if not anc.is_dir():
                raise LabelsplatError("cannot create the run directory: this path is a file, not a directory",
                                      path=anc, hint=f"choose another --out than {out}")
            break
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise LabelsplatError("the run directory already exists", path=out,
                                  hint="pass --resume to continue it or --overwrite to start again")
        if not ((out / "run.json").exists() or (out / "ckpt").exists() or (out / "train_log.jsonl").exists()):
            raise LabelsplatError("refusing to overwrite a directory that is not a labelsplat run", path=out,
                                  hint="choose another --out")
        shutil.rmtree(out)
    if resume:
        from ..splat import FitConfig, latest_checkpoint, load_checkpoint

        ck = latest_checkpoint(out)
        if ck is None:
            raise LabelsplatError("nothing to resume: no checkpoint in the run directory", path=out,
                                  hint="run without --resume to start a new fit")
        stored = FitConfig.from_dict(load_checkpoint(ck)["meta"]["config"])
        if (preset is None and not any(v is not None for v in (steps, seed, semantic_grad, semantic_target))
                and not rgb_only and not extra):
            cfg = None  # plain --resume: continue with the run's own configuration
        else:  # explicit options must match the run's (fit() names any difference)
            cfg = apply_fit_overrides(make_config(preset or stored.preset, **overrides), extra)
    result = fit(scene_obj, out, cfg, device=dev, backend=None if backend == "auto" else backend, resume=resume,
                 progress=not quiet)
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


def register(app: typer.Typer) -> None:
    """Attach ``fit`` to the root app."""
    app.command("fit", help=FIT_HELP, no_args_is_help=True)(fit_command)
