"""``labelsplat batch``: ``refine`` over many scenes with one Ray task per scene."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from . import console
from .options import AllowOutside, Overwrite, Quiet, Resume, with_refine_options
from .refine import _print_scores


def _print_failures(failures: dict[str, dict]) -> None:
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.table import Table

    table = Table(title=f"{len(failures)} scene(s) failed (details: OUT/batch.json)")
    table.add_column("scene")
    table.add_column("attempts", justify="right")
    table.add_column("error")
    for name, f in failures.items():
        err = (f.get("errors") or [{}])[-1]
        table.add_row(name, str(f.get("attempts", 0)), f"{err.get('type', '?')}: {err.get('message', '')}")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("batch")
    @with_refine_options
    def batch_cmd(
        scenes: List[Path] = typer.Argument(..., metavar="SCENE...", help="Scene directories (transforms.json)."),
        out: Path = typer.Option(..., "--out", help="Output directory, as refine's (absolute with --address)."),
        address: str = typer.Option(
            None, "--address",
            help="Ray cluster: auto (the cluster `ray start` joined this machine to) or ray://HOST:10001. "
                 "Default: start a local Ray instance."),
        gpus_per_scene: str = typer.Option(
            "auto", "--gpus-per-scene",
            help="GPUs per scene task: auto (1 if the cluster has GPUs, else 0) or a number; 0.25 = 4 scenes per GPU."),
        cpus_per_scene: int = typer.Option(1, "--cpus-per-scene", help="CPUs (and threads) per scene task."),
        max_retries: int = typer.Option(
            2, "--max-retries", help="Resubmissions of a failed scene (input errors are not retried)."),
        num_cpus: int = typer.Option(
            None, "--num-cpus", help="CPUs of the local Ray instance (default: all); ignored with --address."),
        resume: Resume = False,
        overwrite: Overwrite = False,
        quiet: Quiet = False,
        allow_outside: AllowOutside = False,
        cfg=None,
    ) -> None:
        """Refine many scenes on a Ray cluster (or a local Ray instance): one task per scene.

        Same output tree as refine (OUT/scenes/<scene>/..., OUT/dataset, OUT/metrics.json,
        OUT/report.html) plus OUT/batch.json with every scene's status, attempts and errors.
        Exits with code 3 when some scene failed (the others are complete and merged).

        Example:

            labelsplat batch scenes/head_* --out refined --preset tiny --cpus-per-scene 1

            ray start --head --port=6379   (then on each worker: ray start --address=HEAD:6379)

            labelsplat batch /shared/scenes/* --out /shared/refined --address auto --gpus-per-scene 0.5
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from ..distributed import EXIT_SOME_FAILED, BatchConfig, run_batch

        bcfg = BatchConfig(address=address, gpus_per_scene=gpus_per_scene, cpus_per_scene=cpus_per_scene,
                           max_retries=max_retries, num_cpus=num_cpus)
        result = run_batch(scenes, out, cfg, bcfg, resume=resume, overwrite=overwrite, progress=not quiet,
                           log=console.print, console=console, allow_outside=allow_outside)
        if result.pooled is not None:
            _print_scores(result.pooled)
            n_acc = sum(o.n_accepted for o in result.outcomes)
            console.print(f"wrote {out}/dataset ({n_acc} views from {len(result.outcomes)} scenes), "
                          f"{out}/metrics.json, {out}/report.html, {result.record_path}")
        else:
            console.print(f"no scene finished; see {result.record_path}")
        if result.failures:
            _print_failures(result.failures)
            raise typer.Exit(EXIT_SOME_FAILED)
