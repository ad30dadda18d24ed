"""``labelsplat export``, ``labelsplat edit`` and ``labelsplat view``: the fitted splat itself,
for other 3DGS tools, for 3D label edits, and in a live web viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import console
from .options import Device, Overwrite


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        run: Path = typer.Argument(..., help="A fit run directory (labelsplat fit / refine's scenes/<scene>/run)."),
        fmt: str = typer.Option("ply", "--format", help="ply | ply-labels (DC colour = class colour) | splat."),
        out: Path = typer.Option(..., "--out", help="The file to write (.ply / .splat)."),
        keep_class: Optional[str] = typer.Option(None, "--class", help="Keep the Gaussians of this class only."),
        sh_degree: Optional[int] = typer.Option(
            None, "--sh-degree", help="PLY: zero-pad (or cut) the SH bands to this degree; 3 for the reference "
                                      "3DGS loader."),
        overwrite: Overwrite = False,
    ) -> None:
        """Write the fitted Gaussians in a format other 3DGS viewers and tools read.

        Example:

            labelsplat export runs/head_000 --format ply-labels --out head_labels.ply

            labelsplat export runs/head_000 --format ply --sh-degree 3 --out head.ply
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..io import atomic_write_bytes
        from ..rundir import check_output_file
        from ..splat import load_run
        from ..splat.export import export_bytes

        from ..errors import LabelsplatError

        if out.exists() and not out.is_dir() and not overwrite:
            raise LabelsplatError("the output already exists", path=out, hint="pass --overwrite or another --out")
        check_output_file(out, overwrite=overwrite, inputs=[run, Path(run) / "checkpoint.pt"])
        fitted = load_run(run, "cpu")
        data = export_bytes(fitted, fmt, keep_class=keep_class, sh_degree=sh_degree)
        atomic_write_bytes(out, data)
        console.print(f"wrote {out} ({fmt}, {len(data) / 1e6:.1f} MB)")

    @app.command("edit")
    def edit_cmd(
        run: Path = typer.Argument(..., help="A fit run directory."),
        edits: Path = typer.Option(..., "--edits", help="The edits file (JSON; docs/usage/viewer.md), e.g. saved "
                                                        "by labelsplat view."),
        out: Path = typer.Option(..., "--out", help="The new run (the original is left untouched)."),
        scene: Path = typer.Option(None, "--scene", help="The run's scene (its head frame), if it moved since the fit."),
        overwrite: Overwrite = False,
    ) -> None:
        """Apply 3D label edits to a run: a new run whose every rendered view carries them.

        Example:

            labelsplat edit runs/head_000 --edits hat.json --out runs/head_000_hat

            labelsplat render runs/head_000_hat --out novel --novel-views 100
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..pipeline import edit_run

        edit_run(run, edits, out, scene_dir=scene, overwrite=overwrite, log=console.print)
        console.print(f"wrote {out}")
