"""`labelsplat parse`: run a face parser (BiSeNet weights) on an image folder or a scene."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    from . import device_option

    @app.command(
        "parse",
        epilog=(
            "Examples:\n\n"
            "  labelsplat parse photos/ --weights 79999_iter.pth --out parsed/\n\n"
            "  labelsplat parse scenes/head_000 --weights model.pth --batch-size 8\n\n"
            "  labelsplat parse scenes/head_000 --weights model.pth --crop-radius 180   (scene in mm)"
        ),
    )
    def parse_cmd(
        input: Path = typer.Argument(..., help="A folder of images, or a scene directory (with transforms.json)."),
        weights: Path = typer.Option(..., "--weights", help="BiSeNet state dict (face-parsing.PyTorch's 79999_iter.pth or `labelsplat train` output)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (image folders only): <stem>.png labels + overlays/."),
        scheme: Optional[str] = typer.Option(None, "--scheme", help="Label scheme the weights predict (default: the weights' .json sidecar, else celebamask19-zll)."),
        input_size: Optional[int] = typer.Option(None, "--input-size", help="Network input side in pixels (default: sidecar, else 512)."),
        batch_size: int = typer.Option(4, "--batch-size", help="Images per forward pass."),
        crop: bool = typer.Option(True, "--crop/--no-crop", help="Scenes: crop around the projected head centre before resizing."),
        crop_radius: Optional[float] = typer.Option(None, "--crop-radius", help="Scenes: crop half-extent in scene units (default 15 cm in the scene's units)."),
        lr_convention: Optional[str] = typer.Option(None, "--lr-convention", help="What the parser's 'left' means: subject | image (default: the scheme's). Used when converting to the scene's scheme."),
        device: str = device_option(),
        allow_outside: bool = typer.Option(
            False, "--allow-outside", help="Scenes: accept file paths that are absolute or leave the scene folder ('..')."),
    ) -> None:
        """Label images with a BiSeNet face parser.

        A folder (needs --out) gets one uint8 label PNG per image at the image's resolution
        (the whole image is resized to the network input, as face-parsing.PyTorch), plus
        overlays. A scene gets labels/<stem>.png for every frame and its transforms.json
        label_path entries filled (rewritten atomically); faces are cropped around the
        projected head centre first, and labels are converted to the scene's label scheme.
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ..errors import LabelsplatError
        from ..parsers.infer import load_parser, parse_folder, parse_scene
        from ..scene import TRANSFORMS

        console = Console()
        if lr_convention is not None and lr_convention not in ("subject", "image"):
            raise LabelsplatError(f"--lr-convention must be subject or image, got {lr_convention!r}")
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
        parser = load_parser(weights, scheme=scheme, input_size=input_size, device=device)
        console.print(f"parser: bisenet {parser.n_classes} classes ({parser.info.label_scheme}), "
                      f"input {parser.info.input_size}px, device {parser.device}")
        with Progress(TextColumn("[bold]parse"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as prog:
            task = prog.add_task("parse", total=None)

            def step(n: int) -> None:
                prog.advance(task, n)

            if is_scene:
                summary = parse_scene(parser, scene_dir, batch_size=batch_size, crop=crop, crop_radius=crop_radius,
                                      lr_convention=lr_convention, progress=step,
                                      allow_outside=allow_outside)
            else:
                summary = parse_folder(parser, input, out, batch_size=batch_size, progress=step)
        if is_scene:
            conv = (f", converted {summary.converted_from} -> {summary.converted_to}"
                    + (" with a left/right swap" if summary.lr_swapped else "")) if summary.converted_from else ""
            console.print(f"labelled {summary.n_images} frames of {scene_dir} ({summary.cropped} face-cropped{conv}); "
                          f"label_path set in {TRANSFORMS}"
                          + (f" ({summary.replaced_labels} previous label_path entries replaced)" if summary.replaced_labels else ""))
        else:
            console.print(f"labelled {summary.n_images} images -> {out} (+ overlays/)")
