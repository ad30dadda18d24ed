"""The project's single error type for bad input and failed runs.

Every reader, importer and command raises :class:`LabelsplatError` with one readable
message naming the file and, where possible, the fix. The CLI prints it without a
traceback (``--debug`` shows one) and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


class LabelsplatError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text
