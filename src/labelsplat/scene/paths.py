"""One rule for every name and path taken from a file: a frame ``name`` becomes a file stem
(``renders/rgb/<name>.png``, ``labels/<name>.png``, dataset views), a ``file_path`` a path below
the scene. Both must stay where they are put.

* :func:`path_escapes` - a relative path that is absolute or leaves its folder through ``..``;
* :func:`name_problem` / :func:`check_name` - a name that cannot be one file name: empty, ``.`` /
  ``..``, a path separator, a control character, a leading dot (hidden files and labelsplat's
  temporaries), surrounding spaces, or longer than :data:`MAX_NAME_BYTES` in UTF-8. Any other
  Unicode (``scène 1``) is a valid name;
* :func:`confined` - ``root / relative`` after both checks, for writers.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LabelsplatError

#: The longest name in UTF-8 bytes: file systems allow 255, and writers add a suffix (".png") and a
#: temporary prefix/suffix (".<name>.<pid>-<random>.tmp").
MAX_NAME_BYTES = 200


def path_escapes(relative: str) -> bool:
    """True when a scene path is absolute or leaves the scene directory (``..``)."""
    if os.path.isabs(relative) or Path(relative).is_absolute():
        return True
    norm = os.path.normpath(relative)
    return norm == ".." or norm.startswith(".." + os.sep) or norm.startswith("../")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be used as one file name, or None when it can."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is not a file name"
    bad = sorted({c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127})
    if bad:
        return f"contains {', '.join(repr(c) for c in bad)} (a name is one file name: no path separators or control characters)"
    if name.startswith("."):
        return "starts with '.' (hidden file names are not used)"
    if name != name.strip():
        return "starts or ends with a space"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long in UTF-8 (at most {MAX_NAME_BYTES})"
    return None


def check_name(name: object, *, what: str = "frame name", path: str | Path | None = None, hint: str | None = None) -> str:
    """``name`` when it can be one file name, else :class:`LabelsplatError` naming ``path``."""
    problem = name_problem(name)
    if problem is not None:
        raise LabelsplatError(f"{what} {name!r} {problem}", path=path,
                              hint=hint or "use a plain name (letters, digits, spaces, '_', '-', '.'; any language)")
    return name  # type: ignore[return-value]


def confined(root: str | Path, relative: str, *, what: str = "path", path: str | Path | None = None) -> Path:
    """``root / relative`` when ``relative`` stays inside ``root`` (lexically), else :class:`LabelsplatError`."""
    if not isinstance(relative, str) or not relative or path_escapes(relative):
        raise LabelsplatError(f"{what} {relative!r} points outside {root}", path=path,
                              hint="use a path relative to its folder, without '..'")
    return Path(root) / relative


__all__ = ["MAX_NAME_BYTES", "check_name", "confined", "name_problem", "path_escapes"]
