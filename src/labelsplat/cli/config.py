"""``labelsplat config show [PRESET]``: every setting of the label path with its default, type and doc."""

from __future__ import annotations

import json
from typing import Optional

import typer

config_app = typer.Typer(
    name="config",
    help="The settings of fit / refine / render / batch / demo: presets, defaults and what --fit-set / --pp-set take.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@config_app.command(
    "show",
    epilog=("Examples:\n\n  labelsplat config show\n\n  labelsplat config show fast\n\n"
            "  labelsplat config show paper --json > paper.json"),
)
def show_cmd(
    preset: Optional[str] = typer.Argument(None, help="micro | tiny | fast | gpu | paper (default tiny)."),
    as_json: bool = typer.Option(False, "--json", help="Print the settings as JSON (one object per setting)."),
) -> None:
    """Print every setting of a preset: its name (fit.* are the --fit-set keys, postprocess.* the
    --pp-set keys), how to set it on the command line, its type, the preset's value and what it does."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.table import Table

    from ..config import describe
    from . import console

    rows = describe(preset or "tiny")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"settings of the preset {preset or 'tiny'} (labelsplat config show PRESET)", show_lines=False)
    table.add_column("setting", no_wrap=True)
    table.add_column("option", no_wrap=True)
    table.add_column("type", overflow="fold", max_width=16)
    table.add_column("default", overflow="fold", max_width=28)
    table.add_column("what it does", overflow="fold", ratio=1)
    for r in rows:
        option = r["set_with"].replace(f" {r['key']}=...", "")  # --fit-set / --pp-set take the setting's own name
        table.add_row(r["name"], option or "-", r["type"], r["text"], r["doc"] or "-")
    console.print(table, highlight=False)
    console.print("fit.NAME is set with --fit-set NAME=VALUE, postprocess.NAME with --pp-set NAME=VALUE; values as "
                  "0.1, true/false, none (optional settings), neck,nose (lists), l_eye:10,mouth:5 (pairs).",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Attach the `config` group to the root app."""
    app.add_typer(config_app, name="config")
