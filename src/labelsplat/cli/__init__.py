"""The ``labelsplat`` command line: thin commands over the package's functions.

Each command group lives in its own module here and exposes ``register(app)``; options that
several commands take are defined once in :mod:`.options`.
Heavy imports (torch, numba, gsplat) happen inside the commands, so ``--help`` is fast.
Errors of type :class:`~labelsplat.errors.LabelsplatError` are printed as one readable
message without a traceback; ``--debug`` (anywhere on the command line, or
``LABELSPLAT_DEBUG=1``) shows the traceback. ``--max-image-pixels N`` (anywhere, like ``--debug``)
raises the image-size limit for the command (as ``LABELSPLAT_MAX_IMAGE_PIXELS=N`` does).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer
from rich.console import Console
from rich.markup import escape

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
        "Add --debug to any command to see a traceback on errors, --max-image-pixels N to read images "
        "above 100 megapixels."
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


def plain_help(command) -> None:
    """Make the help of ``command`` and its sub-commands plain text under rich formatting: square
    brackets in help texts are kept (``pip install 'labelsplat[onnx]'``, not read as markup), and
    on/off flags show no value type (``--json``, not ``--json <bool>``: flags take no value)."""
    if getattr(command, "help", None) and not getattr(command, "short_help", None):
        # the listing shows the first paragraph as one line of text, whatever the docstring's line breaks
        command.short_help = " ".join(command.help.strip().split("\n\n")[0].split())
    for attr in ("help", "short_help", "epilog"):
        text = getattr(command, attr, None)
        if text:
            setattr(command, attr, escape(text))
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)
        if getattr(param, "is_flag", False):
            param.display_type_rich = lambda ctx: None
    get_help_option = command.get_help_option

    def help_option(ctx, _get=get_help_option):
        opt = _get(ctx)
        if opt is not None:
            opt.display_type_rich = lambda ctx: None
        return opt

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (also used by tests in-process)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LABELSPLAT_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    args, max_pixels = _global_value(args, "--max-image-pixels")
    saved = os.environ.get(MAX_PIXELS_ENV)
    if max_pixels is not None:
        os.environ[MAX_PIXELS_ENV] = max_pixels  # read by labelsplat.io's image reader
    try:
        return _run(args, debug, exit_=argv is None)
    finally:
        if max_pixels is not None:
            if saved is None:
                os.environ.pop(MAX_PIXELS_ENV, None)
            else:
                os.environ[MAX_PIXELS_ENV] = saved


MAX_PIXELS_ENV = "LABELSPLAT_MAX_IMAGE_PIXELS"


def _global_value(args: list[str], flag: str) -> tuple[list[str], str | None]:
    """Take ``flag VALUE`` / ``flag=VALUE`` out of ``args`` (an option every command accepts)."""
    out, value, i = [], None, 0
    while i < len(args):
        a = args[i]
        if a == flag and i + 1 < len(args):
            value, i = args[i + 1], i + 2
            continue
        if a.startswith(flag + "="):
            value = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out, value


def _run(args: list[str], debug: bool, *, exit_: bool) -> int:
    _register_all()
    command = typer.main.get_command(app)
    plain_help(command)
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
    if exit_:
        sys.exit(code)
    return code
