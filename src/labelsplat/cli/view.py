"""``labelsplat export``, ``labelsplat edit`` and ``labelsplat view``: the fitted splat itself,
for other 3DGS tools, for 3D label edits, and in a live web viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import console
from .options import Device, Overwrite


def register(app: typer.Typer) -> None:
    _register_export(app)
    _register_edit(app)
    _register_view(app)


def _register_export(app: typer.Typer) -> None:
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


def _register_edit(app: typer.Typer) -> None:
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


def _register_view(app: typer.Typer) -> None:
    @app.command("view")
    def view_cmd(
        source: Path = typer.Argument(..., metavar="RUN|PLY", help="A fit run directory or a 3DGS .ply file."),
        port: int = typer.Option(8080, "--port", help="The port to serve on (refused, with a free one suggested, "
                                                      "when taken)."),
        host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (loopback by default; "
                                                             "use ssh -L for remote machines)."),
        save_dir: Optional[Path] = typer.Option(
            None, "--save-dir", help="Where 'Save view' and 'Save edits' write (default: a new folder beside "
                                     "RUN, never inside it)."),
        device: Device = "auto",
    ) -> None:
        """Open a fitted run (or any 3DGS PLY) in a live web viewer: RGB, labels, overlay,
        confidence, one class; class toggles; input cameras and yaw presets; 3D label edits.

        Example:

            labelsplat view runs/head_000 --port 8080

            ssh -L 8080:localhost:8080 gpu-box   # then open http://localhost:8080
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        import time

        from ..viewer import open_source
        from ..viewer.server import is_loopback, start_viewer
        from . import err_console

        if not is_loopback(host):
            err_console.print(f"[yellow]warning:[/yellow] listening on {host}: anyone who can reach this machine "
                              "can view and edit the labels; prefer 127.0.0.1 with ssh -L", highlight=False)
        src = open_source(source, device)
        viewer = None
        try:
            viewer = start_viewer(src, host=host, port=port, save_dir=save_dir,
                                  log=lambda m: console.print(m, markup=False, highlight=False))
            shown = "localhost" if host in ("0.0.0.0", "::") else host
            console.print(f"labelsplat viewer: http://{shown}:{viewer.port}  (saves to {viewer.state.save_dir}; "
                          "Ctrl-C stops)")
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("stopping the viewer")
        finally:
            if viewer is not None:
                viewer.stop()
