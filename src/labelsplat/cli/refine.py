"""``labelsplat refine`` and ``labelsplat demo``: the whole label path in one command."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import console, err_console
from .options import RENDER_OPTIONS, AllowOutside, Overwrite, Quiet, Resume, with_refine_options


def _print_scores(pooled: dict) -> None:
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.table import Table

    from ..scene import YAW_BINS

    for warning in pooled.get("warnings") or []:
        err_console.print("[yellow]warning:[/yellow] ", end="")
        err_console.print(warning, markup=False, highlight=False, soft_wrap=True)
    labs = pooled.get("labellings") or {}
    if not labs:
        cons = pooled.get("consistency") or {}
        table = Table(title="multiview consistency of the input views' labels (no ground truth)")
        table.add_column("scene")
        table.add_column("before", justify="right")
        table.add_column("after", justify="right")
        for name, c in cons.items():
            c = c or {}
            b, a = (c.get("before") or {}).get("agreement"), (c.get("after") or {}).get("agreement")
            table.add_row(name, "–" if b is None else f"{b:.3f}", "–" if a is None else f"{a:.3f}")
        console.print(table)
        return
    table = Table(title="labels at the novel views vs exact ground truth (mIoU / mean F1)")
    table.add_column("labelling")
    table.add_column("overall", justify="right")
    for b, _, _ in YAW_BINS:
        table.add_column(f"|yaw| {b}", justify="right")
    for name, lab in labs.items():
        cells = [f"{lab['overall']['miou']:.3f} / {lab['overall']['mean_f1']:.3f}"]
        for b, _, _ in YAW_BINS:
            m = lab["by_yaw"].get(b)
            cells.append("–" if not m else f"{m['miou']:.3f} / {m['mean_f1']:.3f}")
        table.add_row(name, *cells)
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("refine")
    @with_refine_options
    def refine_cmd(
        scenes: List[Path] = typer.Argument(..., metavar="SCENE...", help="Scene directories (transforms.json)."),
        out: Path = typer.Option(..., "--out", help="Output directory (scenes/, dataset/, metrics.json, report.html)."),
        resume: Resume = False,
        overwrite: Overwrite = False,
        quiet: Quiet = False,
        allow_outside: AllowOutside = False,
        cfg=None,
    ) -> None:
        """Fit each scene, render extreme novel views, extract clean labels, export one dataset.

        On synthetic scenes (synth.json) the initial parser's and the refined labels are scored
        against exact ground truth at the novel views; otherwise multiview consistency is reported.
        Every setting and its default: labelsplat config show PRESET.

        Example:

            labelsplat synth --out scenes --identities 2 --views 16 --noise simulated:medium

            labelsplat refine scenes/head_000 scenes/head_001 --out refined --preset tiny
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..pipeline import refine

        pooled, outcomes = refine(scenes, out, cfg, resume=resume, overwrite=overwrite, progress=not quiet,
                                  log=console.print, allow_outside=allow_outside)
        _print_scores(pooled)
        n_acc = sum(o.n_accepted for o in outcomes)
        console.print(f"wrote {out}/dataset ({n_acc} views), {out}/metrics.json, {out}/report.html")

    @app.command("render")
    @with_refine_options(options=RENDER_OPTIONS)
    def render_cmd(
        run: Path = typer.Argument(..., help="A fit run directory (labelsplat fit / refine's scenes/<scene>/run)."),
        out: Path = typer.Option(..., "--out", help="Output directory (dataset/, metrics.json)."),
        cameras: Path = typer.Option(None, "--cameras", help="Render exactly these cameras (transforms.json)."),
        scene: Path = typer.Option(None, "--scene", help="The run's scene, if it moved since the fit."),
        orbit: Optional[int] = typer.Option(
            None, "--orbit", metavar="N", help="Render only an orbit: OUT/orbit.mp4, RGB | label overlay, N frames at "
                                               "24 fps around the head (needs PyAV, the [video] extra)."),
        frames: bool = typer.Option(False, "--frames", help="With --orbit: also write the frames as OUT/orbit/*.png."),
        overwrite: Overwrite = False,
        cfg=None,
    ) -> None:
        """Render novel views of an existing fit and export their labels as a dataset, or an orbit video.

        Example:

            labelsplat render runs/head_000 --out novel --novel-views 100 --sampler extreme

            labelsplat render runs/head_000 --out novel --cameras my_cameras/transforms.json

            labelsplat render runs/head_000 --out orbit --orbit 120
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..pipeline import render_orbit, render_run

        if orbit is not None:
            video = render_orbit(run, out, orbit, device=cfg.device, frames=frames, scene_dir=scene,
                                 overwrite=overwrite, log=console.print)
            console.print(f"wrote {video}")
            return
        doc, n_acc, n_rej = render_run(run, out, cfg, cameras=cameras, scene_dir=scene, overwrite=overwrite,
                                       log=console.print)
        _print_scores(doc)
        console.print(f"wrote {out}/dataset ({n_acc} views accepted, {n_rej} rejected), {out}/metrics.json")

    @app.command("demo")
    @with_refine_options
    def demo_cmd(
        out: Path = typer.Option(Path("labelsplat-demo"), "--out",
                                 help="Output directory (a previous demo output there is replaced)."),
        overwrite: Overwrite = False,
        quiet: Quiet = False,
        cfg=None,
    ) -> None:
        """The embedded default: synthesise one head with simulated parser noise, refine it, score it.

        Example:

            labelsplat demo --out labelsplat-demo
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..pipeline import demo

        pooled, timings = demo(out, cfg, overwrite=overwrite, progress=not quiet, log=console.print)
        _print_scores(pooled)
        console.print(
            f"synth {timings['synth']:.1f} s, refine {timings['refine']:.1f} s; "
            f"report: {out}/refined/report.html, dataset: {out}/refined/dataset"
        )
