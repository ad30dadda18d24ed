"""File I/O shared by every stage: atomic writes, JSON with ``schema_version``, images, labels.

Writes go to a temporary file in the destination folder and are renamed into place, so a
crash never leaves a half-written file. Directories that must appear complete (datasets)
are built in a temporary sibling and renamed with :func:`atomic_dir`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import SCHEMA_VERSION
from .errors import LabelsplatError

IGNORE_INDEX = 255
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- atomic writes
def _check_parent(path: Path, *, allow_existing_dir: bool = False) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise LabelsplatError("cannot write here: the parent path is a file, not a directory", path=parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabelsplatError(f"cannot create the output directory ({exc.strerror})", path=parent) from exc
    if path.is_dir() and not allow_existing_dir:
        raise LabelsplatError("cannot write a file here: a directory of that name exists", path=path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    _check_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise LabelsplatError(f"cannot write ({exc.strerror})", path=path, hint="check permissions") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_json(path: str | Path, obj: Any, *, add_schema_version: bool = True) -> Path:
    """Write ``obj`` as JSON; a top-level dict gets ``schema_version`` if it has none."""
    if add_schema_version and isinstance(obj, dict) and "schema_version" not in obj:
        obj = {"schema_version": SCHEMA_VERSION, **obj}
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file, raising :class:`LabelsplatError` naming the file on any problem."""
    path = Path(path)
    if not path.exists():
        raise LabelsplatError("file not found", path=path)
    if path.is_dir():
        raise LabelsplatError("expected a JSON file but found a directory", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsplatError(f"cannot read the file ({exc})", path=path) from exc
    if not text.strip():
        raise LabelsplatError("the file is empty", path=path)

    def _no_constants(name: str):
        raise ValueError(f"non-finite number {name} is not allowed")

    try:
        return json.loads(text, parse_constant=_no_constants)
    except (json.JSONDecodeError, ValueError) as exc:
        raise LabelsplatError(f"invalid JSON ({exc})", path=path) from exc


@contextlib.contextmanager
def atomic_dir(final: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a temporary sibling; rename it to ``final`` only on success.

    An existing ``final`` is refused unless ``overwrite``; then it is replaced only after the
    new one is complete.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise LabelsplatError("the output already exists", path=final, hint="pass --overwrite or choose another path")
    _check_parent(final, allow_existing_dir=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        trash = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)


# ----------------------------------------------------------------------------- images
def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise LabelsplatError("image file not found", path=path)
    if path.is_dir():
        raise LabelsplatError("expected an image file but found a directory", path=path)
    if path.stat().st_size == 0:
        raise LabelsplatError("the image file is empty", path=path)
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError as exc:
        raise LabelsplatError("not an image file (format not recognised)", path=path) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise LabelsplatError(f"cannot decode the image, it may be truncated ({exc})", path=path) from exc
    return img


def read_rgb(path: str | Path) -> np.ndarray:
    """Read any image as uint8 RGB (H, W, 3): greyscale is expanded, alpha dropped, 16-bit scaled."""
    path = Path(path)
    img = _open_image(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
        arr = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / 255.0 if arr.max(initial=0) > 1.0 else arr
        arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def read_label(path: str | Path, num_classes: int | None = None, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label PNG as uint8 (H, W) class ids; 255 (ignore) is always accepted.

    ``num_classes`` checks every id is in ``[0, num_classes)`` or 255; ``shape`` = (H, W)
    checks the size against its image.
    """
    path = Path(path)
    img = _open_image(path)
    if img.mode in ("L", "P"):
        arr = np.asarray(img, dtype=np.uint8)
    elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.int64)
        if arr.max(initial=0) > 255 or arr.min(initial=0) < 0:
            raise LabelsplatError("label ids above 255 in a 16-bit label image", path=path)
        arr = arr.astype(np.uint8)
    else:
        raise LabelsplatError(
            f"a label map must be a single-channel image of class ids (mode L or P), got mode {img.mode}",
            path=path,
            hint="write labels as uint8 greyscale PNGs; use `labelsplat labels convert` for colour maps",
        )
    arr = arr.copy()
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise LabelsplatError(
            f"label size {arr.shape[1]}x{arr.shape[0]} differs from its image {shape[1]}x{shape[0]}", path=path
        )
    if num_classes is not None:
        bad = (arr >= num_classes) & (arr != IGNORE_INDEX)
        if bad.any():
            ids = sorted(set(np.unique(arr[bad]).tolist()))
            raise LabelsplatError(
                f"label ids {ids[:10]} are outside the scheme's {num_classes} classes (255 = ignore is allowed)",
                path=path,
                hint="check the label scheme (--scheme / label_scheme) or convert with `labelsplat labels convert`",
            )
    return arr


def _encode_image(arr: np.ndarray, fmt: str, **kwargs) -> bytes:
    import io as _io

    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_png(path: str | Path, arr: np.ndarray) -> Path:
    """Atomically write a uint8 array (H, W) or (H, W, 3|4) as PNG."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8, got {arr.dtype}")
    return atomic_write_bytes(path, _encode_image(arr, "PNG"))


def write_jpg(path: str | Path, arr: np.ndarray, quality: int = 90) -> Path:
    return atomic_write_bytes(path, _encode_image(np.asarray(arr, dtype=np.uint8), "JPEG", quality=quality))


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` sorted by name; error if the folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelsplatError("not a directory", path=folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise LabelsplatError("the folder holds no images (.png/.jpg/...)", path=folder)
    return files


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
