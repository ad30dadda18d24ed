"""``labelsplat refine`` and ``labelsplat demo``: the whole label path in one command."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Callable

import typer

from . import console, device_option, seed_option


def _refine_config_options() -> list[tuple[str, type, object]]:
    """(parameter name, type, typer option) of every RefineConfig setting on the command line;
    shared by ``refine`` and ``batch`` (the names are RefineConfig's field names)."""
    return [
        ("preset", str, typer.Option("tiny", "--preset", help="micro | tiny | fast | paper")),
        ("novel_views", int, typer.Option(None, "--novel-views", help="Novel views per scene (preset default).")),
        ("sampler", str, typer.Option("extreme", "--sampler", help="extreme | uniform | input-like")),
        ("extract", str, typer.Option("argmax", "--extract", help="argmax (of rendered logits) | palette (fit SEG as colours, the paper's variant)")),
        ("beyond_coverage", bool, typer.Option(False, "--beyond-coverage", help="Allow poses beyond the inputs' coverage (flagged).")),
        ("semantic_grad", str, typer.Option(None, "--semantic-grad", help="full | none | scaled:<f> (preset default).")),
        ("steps", int, typer.Option(None, "--steps", help="Fit steps (overrides the preset).")),
        ("fit_overrides", list[str], typer.Option(
            None, "--fit-set", metavar="KEY=VALUE",
            help="Any fit setting over the preset's (repeatable), e.g. --fit-set label_colour_weight=none "
                 "or --fit-set class_weights_by_concept=l_eye:10,mouth:5 (FitConfig's fields).")),
        ("postprocess_overrides", list[str], typer.Option(
            None, "--pp-set", metavar="KEY=VALUE",
            help="Any post-processing setting (repeatable), e.g. --pp-set fill_holes=false or "
                 "--pp-set single_instance=neck,nose or --pp-set min_confidence=0.5 (PostprocessConfig's fields).")),
        ("celebamask_layout", bool, typer.Option(
            False, "--celebamask-layout", help="Also write CelebAMask-HQ per-class masks in OUT/dataset.")),
        ("device", str, device_option()),
        ("seed", int, seed_option()),
    ]


def parse_pp_overrides(items: list[str] | None) -> dict:
    """``--pp-set KEY=VALUE`` strings -> typed PostprocessConfig overrides."""
    from ..extract import PostprocessConfig
    from ..overrides import parse_overrides

    return parse_overrides(items, PostprocessConfig, option="--pp-set", example="fill_holes=false")


def with_refine_options(fn: Callable) -> Callable:
    """Give a typer command every ``refine`` setting as an option; the command receives them
    as one ``cfg: RefineConfig`` keyword argument instead (its own parameters come first)."""
    specs = _refine_config_options()
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "cfg"]
    params = own + [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=opt, annotation=ann)
                    for name, ann, opt in specs]

    @functools.wraps(fn)
    def wrapper(**kwargs):
        from ..pipeline import RefineConfig

        from ..splat.config import parse_fit_overrides

        values = {name: kwargs.pop(name) for name, _, _ in specs}
        values["fit_overrides"] = parse_fit_overrides(values["fit_overrides"])
        values["postprocess_overrides"] = parse_pp_overrides(values["postprocess_overrides"])
        return fn(**kwargs, cfg=RefineConfig(**values))

    del wrapper.__wrapped__  # typer must see the new signature, not fn's
    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def _print_scores(pooled: dict) -> None:
    from rich.table import Table

    from ..scene import YAW_BINS

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
        scenes: list[Path] = typer.Argument(..., metavar="SCENE...", help="Scene directories (transforms.json)."),
        out: Path = typer.Option(..., "--out", help="Output directory (scenes/, dataset/, metrics.json, report.html)."),
        resume: bool = typer.Option(False, "--resume", help="Skip finished scenes, continue interrupted fits."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
        allow_outside: bool = typer.Option(
            False, "--allow-outside", help="Accept scene file paths that are absolute or leave the scene folder ('..')."),
        cfg=None,
    ) -> None:
        """Fit each scene, render extreme novel views, extract clean labels, export one dataset.

        On synthetic scenes (synth.json) the initial parser's and the refined labels are scored
        against exact ground truth at the novel views; otherwise multiview consistency is reported.

        Example:

            labelsplat synth --out scenes --identities 2 --views 16 --noise simulated:medium

            labelsplat refine scenes/head_000 scenes/head_001 --out refined --preset tiny
        """
        from ..pipeline import refine

        pooled, outcomes = refine(scenes, out, cfg, resume=resume, overwrite=overwrite, progress=not quiet,
                                  log=console.print, allow_outside=allow_outside)
        _print_scores(pooled)
        n_acc = sum(o.n_accepted for o in outcomes)
        console.print(f"wrote {out}/dataset ({n_acc} views), {out}/metrics.json, {out}/report.html")

    @app.command("render")
    def render_cmd(
        run: Path = typer.Argument(..., help="A fit run directory (labelsplat fit / refine's scenes/<scene>/run)."),
        out: Path = typer.Option(..., "--out", help="Output directory (dataset/, metrics.json)."),
        novel_views: int = typer.Option(None, "--novel-views", help="Views to sample (preset default)."),
        sampler: str = typer.Option("extreme", "--sampler", help="extreme | uniform | input-like"),
        cameras: Path = typer.Option(None, "--cameras", help="Render exactly these cameras (transforms.json)."),
        scene: Path = typer.Option(None, "--scene", help="The run's scene, if it moved since the fit."),
        beyond_coverage: bool = typer.Option(False, "--beyond-coverage", help="Allow poses beyond the inputs' coverage."),
        preset: str = typer.Option("tiny", "--preset", help="Sets the default number of novel views."),
        device: str = device_option(),
        seed: int = seed_option(),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
        pp_set: list[str] = typer.Option(
            None, "--pp-set", metavar="KEY=VALUE",
            help="Any post-processing setting (repeatable), as for refine, e.g. --pp-set fill_holes=false."),
    ) -> None:
        """Render novel views of an existing fit and export their labels as a dataset.

        Example:

            labelsplat render runs/head_000 --out novel --novel-views 100 --sampler extreme

            labelsplat render runs/head_000 --out novel --cameras my_cameras/transforms.json
        """
        from ..pipeline import RefineConfig, render_run

        cfg = RefineConfig(preset=preset, novel_views=novel_views, sampler=sampler, seed=seed, device=device,
                           beyond_coverage=beyond_coverage, postprocess_overrides=parse_pp_overrides(pp_set))
        doc, n_acc, n_rej = render_run(run, out, cfg, cameras=cameras, scene_dir=scene, overwrite=overwrite,
                                       log=console.print)
        _print_scores(doc)
        console.print(f"wrote {out}/dataset ({n_acc} views accepted, {n_rej} rejected), {out}/metrics.json")

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("labelsplat-demo"), "--out", help="Output directory (replaced if it exists)."),
        device: str = device_option(),
        seed: int = seed_option(),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """The embedded default: synthesise one head with simulated parser noise, refine it, score it.

        Example:

            labelsplat demo --out labelsplat-demo
        """
        from ..pipeline import demo

        pooled, timings = demo(out, device=device, seed=seed, progress=not quiet, log=console.print)
        _print_scores(pooled)
        console.print(
            f"synth {timings['synth']:.1f} s, refine {timings['refine']:.1f} s; "
            f"report: {out}/refined/report.html, dataset: {out}/refined/dataset"
        )
