"""``labelsplat synth``: synthetic multiview heads with exact labels (and noisy parser labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .options import Device, Overwrite, Seed


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
        overwrite: Overwrite = False,
        seed: Seed = 0,
        device: Device = "auto",
    ) -> None:
        """Render synthetic heads (ICT-FaceKit + procedural hair/cloth) with exact per-pixel labels.

        Writes canonical scenes (transforms.json, images/, labels/ = the noise model's labels,
        gt_labels/ = exact labels, masks/, synth.json). With --like SCENE --cameras TRANSFORMS,
        re-renders SCENE's head at the given cameras into OUT/<SCENE's name>/.

        Examples:

          labelsplat synth --out data --identities 2 --views 24 --noise simulated:medium

          labelsplat synth --like data/head_000 --cameras novel/transforms.json --out gt
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..device import resolve_device
        from ..errors import LabelsplatError
        from ..synth.scene import SynthConfig

        resolve_device(device)  # the renderer is CPU-only; validates the flag
        if (like is None) != (cameras is None):
            raise LabelsplatError("--like and --cameras go together",
                                  hint="labelsplat synth --like SCENE --cameras transforms.json --out DIR")
        config = None
        if like is None:
            config = SynthConfig(identities=identities, views=views, rig=rig.lower(), resolution=resolution,
                                 noise=noise or "none", seed=seed, texture=texture.lower())
        dirs = _scene_dirs(out, identities, like)
        replace = _check_scene_dirs(dirs, [like, cameras], overwrite)
        results = _render(out, config, like, cameras, noise, replace)
        record = {"like": None if like is None else str(like), "cameras": None if cameras is None else str(cameras),
                  "noise": noise, "identities": identities, "views": views, "rig": rig, "resolution": resolution,
                  "texture": texture}
        err = Console(stderr=True)
        for scene, warnings in results:
            _scene_rundir(Path(scene.root), [like, cameras]).write_provenance(record, seed)
            for w in warnings:
                err.print(f"[yellow]warning:[/yellow] {scene.name}: {w}", highlight=False)
            Console().print(f"wrote {scene.root} ({len(scene.frames)} views)", highlight=False)


def _scene_rundir(path: Path, inputs):
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..rundir import RunDir

    return RunDir(path, "scene", inputs=[p for p in inputs if p is not None])


def _scene_dirs(out: Path, identities: int, like: Optional[Path]) -> list[Path]:
    """The scene directories this synth writes (``--like``: ``OUT/<the source scene's name>``)."""
    if like is None:
        return [out / f"head_{i:03d}" for i in range(identities)]
    src = Path(like).resolve()
    return [out / (src.name if src.is_dir() else src.parent.name)]


def _check_scene_dirs(dirs: list[Path], inputs, overwrite: bool) -> bool:
    """Every scene directory passes the output rules (before any rendering); True when an
    existing one (replaceable, or empty) is replaced."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..errors import LabelsplatError
    from ..rundir import NEW

    if dirs and dirs[0].parent.exists() and not dirs[0].parent.is_dir():
        raise LabelsplatError("--out exists and is not a directory", path=dirs[0].parent)
    modes = [_scene_rundir(d, inputs).check(overwrite=overwrite) for d in dirs]
    return any(m != NEW or d.exists() for m, d in zip(modes, dirs))


def _render(out: Path, config, like, cameras, noise, replace: bool):
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..synth.scene import render_like, synthesize

    columns = (TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("render", total=None)

        def progress(k: int, n: int) -> None:
            bar.update(task, completed=k, total=n)

        if like is not None:
            return [render_like(like, cameras, out, noise=noise, overwrite=replace, progress=progress)]
        return synthesize(out, config, overwrite=replace, progress=progress)
