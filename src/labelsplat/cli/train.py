"""`labelsplat` commands of this group (filled in by the stage that owns it)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
