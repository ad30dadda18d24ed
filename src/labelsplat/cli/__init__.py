"""The ``labelsplat`` command line: thin commands over the package's functions.

Each command group lives in its own module here and exposes ``register(app)``; options that
several commands take are defined once in :mod:`.options`.
Heavy imports (torch, numba, gsplat) happen inside the commands, so ``--help`` is fast.
Errors of type :class:`~labelsplat.errors.LabelsplatError` are printed as one readable
message without a traceback; ``--debug`` (anywhere on the command line, or
``LABELSPLAT_DEBUG=1``) shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer
from rich.console import Console

from .. import __version__
from ..errors import LabelsplatError

# Command modules in pipeline order; each defines register(app).
COMMAND_MODULES = ("scene", "labels", "evaluate", "synth", "fit", "refine", "view", "parse", "train", "capture", "batch",
                   "config")

app = typer.Typer(
    name="labelsplat",
    help=(
        "Correct face-parsing labels at extreme head poses: fit joint RGB + semantic 3D Gaussians "
        "to calibrated views with noisy labels, render extreme viewpoints, export clean labels.\n\n"
        "Add --debug to any command to see a traceback on errors."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

console = Console(stderr=False)
err_console = Console(stderr=True)

_registered = False


def _register_all() -> None:
    global _registered
    if _registered:
        return
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(app)
    _registered = True


def _print_version(value: bool) -> None:
    if value:
        console.print(f"labelsplat {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """labelsplat command line."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (also used by tests in-process)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LABELSPLAT_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    _register_all()
    command = typer.main.get_command(app)
    try:
        # standalone mode: usage errors, --help and Ctrl-C are handled by the parser and end
        # in SystemExit; everything else propagates here.
        command.main(args=args, prog_name="labelsplat", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LabelsplatError as exc:
        if debug:
            err_console.print(traceback.format_exc(), markup=False, highlight=False)
        err_console.print("[bold red]error:[/bold red] ", end="")
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        code = 130
    except Exception as exc:  # unexpected: still no traceback unless --debug
        if debug:
            err_console.print(traceback.format_exc(), markup=False, highlight=False)
        err_console.print("[bold red]internal error:[/bold red] ", end="")
        err_console.print(
            f"{type(exc).__name__}: {exc}\n  rerun with --debug for the traceback and report it",
            markup=False, highlight=False, soft_wrap=True,
        )
        code = 1
    if argv is None:
        sys.exit(code)
    return code
