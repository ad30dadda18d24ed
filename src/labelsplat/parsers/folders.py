"""The images of an input folder that a parser labels into an output folder."""

from __future__ import annotations

from pathlib import Path

from ..errors import LabelsplatError
from ..io import list_images


def folder_images(folder: Path, out: Path) -> list[Path]:
    """The images of an input folder to label into ``out``: refuses two images with the same
    stem (outputs are ``<stem>.png``) and ``out`` equal to ``folder``."""
    files = list_images(folder)
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise LabelsplatError(f"two images share the name {f.stem!r} ({stems[f.stem].name}, {f.name})",
                                  path=folder, hint="rename one: outputs are named <stem>.png")
        stems[f.stem] = f
    if out.resolve() == folder.resolve():
        raise LabelsplatError("--out must differ from the input folder (labels would overwrite images)", path=out)
    return files
