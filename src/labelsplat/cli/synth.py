"""``labelsplat synth``: synthetic multiview heads with exact labels (and noisy parser labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import device_option, seed_option


def register(app: typer.Typer) -> None:
    """Attach ``synth`` to the root app."""

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Output folder: one scene per identity, DIR/head_000, ..."),
        identities: int = typer.Option(1, "--identities", help="Number of heads (scenes)."),
        views: int = typer.Option(16, "--views", help="Cameras drawn from the rig per head."),
        rig: str = typer.Option("facescape", "--rig", help="facescape | orbit | extreme"),
        resolution: int = typer.Option(256, "--resolution", help="Image width and height in pixels."),
        noise: Optional[str] = typer.Option(
            None, "--noise",
            help="none | simulated:low | simulated:medium | simulated:high "
                 "(default: none; with --like: the source scene's model)."),
        like: Optional[Path] = typer.Option(None, "--like", help="Re-render this synthetic scene's head ..."),
        cameras: Optional[Path] = typer.Option(None, "--cameras", help="... at these cameras (transforms.json)."),
        texture: str = typer.Option(
            "smooth", "--texture",
            help="smooth (default) | procedural: add high-frequency surface detail (for structure-from-motion tests)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output scenes."),
        seed: int = seed_option(0),
        device: str = device_option(),
    ) -> None:
        """Render synthetic heads (ICT-FaceKit + procedural hair/cloth) with exact per-pixel labels.

        Writes canonical scenes (transforms.json, images/, labels/ = the noise model's labels,
        gt_labels/ = exact labels, masks/, synth.json). With --like SCENE --cameras TRANSFORMS,
        re-renders SCENE's head at the given cameras into OUT/<SCENE's name>/.

        Examples:

          labelsplat synth --out data --identities 2 --views 24 --noise simulated:medium

          labelsplat synth --like data/head_000 --cameras novel/transforms.json --out gt
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ..device import resolve_device
        from ..errors import LabelsplatError
        from ..synth.scene import SynthConfig, render_like, synthesize

        resolve_device(device)  # the renderer is CPU-only; validates the flag
        console = Console()
        err = Console(stderr=True)
        columns = (TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("render", total=None)

            def progress(k: int, n: int) -> None:
                bar.update(task, completed=k, total=n)

            if like is not None or cameras is not None:
                if like is None or cameras is None:
                    raise LabelsplatError("--like and --cameras go together",
                                          hint="labelsplat synth --like SCENE --cameras transforms.json --out DIR")
                scene, warnings = render_like(like, cameras, out, noise=noise, overwrite=overwrite,
                                              progress=progress)
                results = [(scene, warnings)]
            else:
                config = SynthConfig(identities=identities, views=views, rig=rig.lower(), resolution=resolution,
                                     noise=noise or "none", seed=seed, texture=texture.lower())
                results = synthesize(out, config, overwrite=overwrite, progress=progress)
        for scene, warnings in results:
            for w in warnings:
                err.print(f"[yellow]warning:[/yellow] {scene.name}: {w}", highlight=False)
            console.print(f"wrote {scene.root} ({len(scene.frames)} views)", highlight=False)
