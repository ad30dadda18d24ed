"""`labelsplat parse`: run a face parser (BiSeNet weights, or the MediaPipe landmark parser) on an
image folder or a scene."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import AllowOutside, Crop, CropRadius, Device, InputSize, Scheme

PARSE_EPILOG = (
    "Examples:\n\n"
    "  labelsplat parse photos/ --weights 79999_iter.pth --out parsed/\n\n"
    "  labelsplat parse scenes/head_000 --weights model.pth --batch-size 8\n\n"
    "  labelsplat parse scenes/head_000 --weights model.pth --crop-radius 180   (scene in mm)\n\n"
    "  labelsplat parse photos/ --parser mediapipe --out parsed/   (needs the [mediapipe] extra)\n\n"
    "  labelsplat parse scenes/head_000 --weights model.pth --lr-convention auto"
)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("parse", epilog=PARSE_EPILOG)(parse_cmd)


def parse_cmd(
    input: Path = typer.Argument(..., help="A folder of images, or a scene directory (with transforms.json)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="BiSeNet state dict (face-parsing.PyTorch's 79999_iter.pth or `labelsplat train` output)."),
    parser_name: Optional[str] = typer.Option(None, "--parser", help="A weight-free parser instead of --weights: mediapipe (face mesh + selfie segmentation; needs the [mediapipe] extra in its own environment)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (image folders only): <stem>.png labels + overlays/."),
    scheme: Scheme = None,
    input_size: InputSize = None,
    batch_size: int = typer.Option(4, "--batch-size", help="Images per forward pass."),
    crop: Crop = True,
    crop_radius: CropRadius = None,
    lr_convention: Optional[str] = typer.Option(None, "--lr-convention", help="What the parser's 'left' means: subject | image | auto (scenes: measure it on the near-frontal views as `labels check-lr` does, and swap if needed). Default: the scheme's."),
    device: Device = "auto",
    allow_outside: AllowOutside = False,
    overwrite: bool = typer.Option(False, "--overwrite", help="Scenes: replace labels the scene already has "
                                   "(labels/<stem>.png and the frames' label_path); nothing else is touched."),
) -> None:
    """Label images with a BiSeNet face parser (--weights) or the MediaPipe landmark parser (--parser mediapipe).

    A folder (needs --out) gets one uint8 label PNG per image at the image's resolution
    (the whole image is resized to the network input, as face-parsing.PyTorch), plus
    overlays. A scene gets labels/<stem>.png for every frame and its transforms.json
    label_path entries filled (rewritten atomically); faces are cropped around the
    projected head centre first, and labels are converted to the scene's label scheme.
    --scheme is the scheme the weights predict (with --parser mediapipe: the scheme to write).
    The landmark parser labels skin, brows, eyes, nose, lips and mouth from the face mesh,
    background from selfie segmentation, and 255 (unknown) on other person pixels; images
    without a detected face get no face classes (counted in the summary).
    """
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console

    console = Console()
    if parser_name is not None:
        parser_name = parser_name.strip().lower()
    is_scene, scene_dir = _check_parse_args(input, weights, parser_name, out, input_size, batch_size, lr_convention)
    parser = _load_parser(console, weights, parser_name, scheme, input_size, device)
    if parser_name is not None and not is_scene:
        return _parse_folder_landmarks(console, parser, input, out)
    scene_lr = None if lr_convention == "auto" else lr_convention
    if lr_convention == "auto" and parser_name is None:
        scene_lr = "unknown"  # labels at face value first; the measurement below decides
    summary = _run_parser(console, parser, input, out, is_scene, scene_dir, batch_size=batch_size, crop=crop,
                          crop_radius=crop_radius, lr_convention=scene_lr, allow_outside=allow_outside,
                          overwrite=overwrite)
    if parser_name is not None:
        parser.close()
    if not is_scene:
        console.print(f"labelled {summary.n_images} images -> {out} (+ overlays/)")
        return
    _report_scene(console, summary, scene_dir, parser if parser_name is not None else None)
    if lr_convention == "auto":
        _auto_lr(console, scene_dir, parser_name is not None, allow_outside=allow_outside)


def _check_parse_args(input: Path, weights, parser_name, out, input_size, batch_size: int,
                      lr_convention) -> tuple[bool, Path]:
    """Refuse inconsistent options before any model is loaded; returns (is a scene, scene dir)."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..errors import LabelsplatError
    from ..scene import TRANSFORMS

    if lr_convention is not None and lr_convention not in ("subject", "image", "auto"):
        raise LabelsplatError(f"--lr-convention must be subject, image or auto, got {lr_convention!r}")
    if (weights is None) == (parser_name is None):
        raise LabelsplatError("pass exactly one of --weights W (BiSeNet) or --parser mediapipe",
                              hint="e.g. labelsplat parse photos/ --weights 79999_iter.pth --out parsed/")
    if parser_name is not None:
        if parser_name != "mediapipe":
            raise LabelsplatError(f"unknown --parser {parser_name!r}; weight-free parsers: mediapipe",
                                  hint="for BiSeNet pass --weights instead")
        if input_size is not None:
            raise LabelsplatError("--input-size is for BiSeNet weights; the landmark parser takes any image size")
        if lr_convention in ("subject", "image"):
            raise LabelsplatError("--lr-convention subject|image does not apply to --parser mediapipe: its left/right "
                                  "comes from the face mesh's anatomical indices (the subject's left)",
                                  hint="drop --lr-convention (or use auto to measure it on a scene)")
    if not input.exists():
        raise LabelsplatError("input not found", path=input)
    is_scene = input.is_file() and input.name == TRANSFORMS or (input / TRANSFORMS).is_file()
    scene_dir = input.parent if input.is_file() else input
    if not is_scene and not input.is_dir():
        raise LabelsplatError("INPUT must be a folder of images or a scene directory", path=input)
    if is_scene and out is not None:
        raise LabelsplatError("--out is for image folders; a scene is labelled in place (labels/ + transforms.json)",
                              path=input, hint="drop --out, or copy the scene first")
    if not is_scene and out is None:
        raise LabelsplatError("parsing an image folder needs --out DIR", path=input)
    if batch_size < 1:
        raise LabelsplatError(f"--batch-size must be >= 1, got {batch_size}")
    if lr_convention == "auto" and not is_scene:
        raise LabelsplatError("--lr-convention auto measures the convention on a scene's near-frontal views; "
                              "an image folder has no cameras", path=input,
                              hint="pass subject or image, or run on a scene")
    return is_scene, scene_dir


def _load_parser(console, weights, parser_name, scheme, input_size, device):
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..parsers.infer import load_parser

    if parser_name is not None:
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..parsers.landmarks import load_landmark_parser

        parser = load_landmark_parser(scheme)
        console.print(f"parser: mediapipe face mesh + selfie segmentation ({parser.info.label_scheme}, "
                      "subject's left/right), CPU")
        return parser
    parser = load_parser(weights, scheme=scheme, input_size=input_size, device=device)
    console.print(f"parser: bisenet {parser.n_classes} classes ({parser.info.label_scheme}), "
                  f"input {parser.info.input_size}px, device {parser.device}")
    return parser


def _progress(console):
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]parse"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def _parse_folder_landmarks(console, parser, input: Path, out: Path) -> None:
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..parsers.landmarks import parse_folder_landmarks

    with _progress(console) as prog:
        task = prog.add_task("parse", total=None)
        fsum = parse_folder_landmarks(parser, input, out, progress=lambda n: prog.advance(task, n))
    parser.close()
    listed = ", ".join(fsum.no_face[:5]) + (", ..." if len(fsum.no_face) > 5 else "")
    console.print(f"labelled {fsum.n_images} images -> {out} (+ overlays/); no face found in {len(fsum.no_face)}"
                  + (f" ({listed}: person pixels 255, no face classes)" if fsum.no_face else ""))


def _run_parser(console, parser, input: Path, out, is_scene: bool, scene_dir: Path, *, batch_size: int, crop: bool,
                crop_radius, lr_convention, allow_outside: bool, overwrite: bool = False):
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..parsers.infer import parse_folder, parse_scene

    with _progress(console) as prog:
        task = prog.add_task("parse", total=None)

        def step(n: int) -> None:
            prog.advance(task, n)

        if is_scene:
            return parse_scene(parser, scene_dir, batch_size=batch_size, crop=crop, crop_radius=crop_radius,
                               lr_convention=lr_convention, progress=step, allow_outside=allow_outside,
                               overwrite=overwrite)
        return parse_folder(parser, input, out, batch_size=batch_size, progress=step)


def _report_scene(console, summary, scene_dir: Path, landmarks) -> None:
    """The scene summary line (and, for the landmark parser, how many frames had no face)."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..scene import TRANSFORMS

    conv = (f", converted {summary.converted_from} -> {summary.converted_to}"
            + (" with a left/right swap" if summary.lr_swapped else "")) if summary.converted_from else ""
    console.print(f"labelled {summary.n_images} frames of {scene_dir} ({summary.cropped} face-cropped{conv}); "
                  f"label_path set in {TRANSFORMS}"
                  + (f" ({summary.replaced_labels} previous label_path entries replaced)" if summary.replaced_labels else ""))
    if landmarks is not None:
        console.print(f"  no face found in {landmarks.no_face} of {landmarks.n_images} frames (person pixels 255, "
                      "no face classes)")
        if landmarks.no_face == landmarks.n_images:
            console.print("[yellow]warning:[/yellow] MediaPipe found no face in any frame; the labels hold no face "
                          "classes. For profiles or small faces use --weights (BiSeNet).")


def _auto_lr(console, scene_dir: Path, known_subject: bool, *, allow_outside: bool = False) -> None:
    """`--lr-convention auto` on a scene: measure the written labels' convention on the
    near-frontal views (as `labels check-lr`) and swap the left/right classes of every label
    file when it is not the scene scheme's; the result is recorded in transforms.json."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..parsers.lrcheck import check_lr, swap_scene_lr
    from ..scene import load_scene, save_scene
    from ..schemes import get_scheme

    res = check_lr(scene_dir, allow_outside=allow_outside)
    want = get_scheme(load_scene(scene_dir, allow_outside=allow_outside).label_scheme).lr_convention
    swapped = False
    if res.convention not in ("subject", "image"):
        console.print(f"[yellow]--lr-convention auto:[/yellow] could not measure the convention ({res.convention}; "
                      f"{res.n_votes} votes on {res.n_views_near_frontal} near-frontal views): labels kept at face value")
        measured = "unknown"
    else:
        measured = res.convention
        swapped = want in ("subject", "image") and measured != want
        n = swap_scene_lr(scene_dir, allow_outside=allow_outside) if swapped else 0
        console.print(f"--lr-convention auto: the parser's labels follow the {measured}'s left "
                      f"(agreement {res.agreement:.0%} of {res.n_votes} votes)"
                      + (f"; left/right classes swapped in {n} label files" if swapped else "; no swap needed"))
        if known_subject and measured != "subject":
            console.print("[yellow]warning:[/yellow] the landmark parser should give the subject's left; "
                          "check the scene's head_frame (left = up x forward)")
    scene = load_scene(scene_dir, allow_outside=allow_outside)
    parse_doc = dict(scene.extra.get("parse") or {})
    parse_doc["lr_convention"] = measured
    parse_doc["lr_check"] = {"convention": res.convention, "agreement": res.agreement, "votes": res.votes,
                             "swapped": swapped}
    scene.extra["parse"] = parse_doc
    save_scene(scene)
