"""File I/O shared by every stage: atomic writes, JSON with ``schema_version``, images, labels.

Writes go to a temporary file in the destination folder and are renamed into place, so a
crash never leaves a half-written file. Directories that must appear complete (datasets)
are built in a temporary sibling and renamed with :func:`atomic_dir`.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import math
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import SCHEMA_VERSION
from .errors import LabelsplatError

IGNORE_INDEX = 255
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# ----------------------------------------------------------------------------- limits on what is read
#: Images larger than this (width x height from the header, before decoding) are refused; the
#: environment variable ``LABELSPLAT_MAX_IMAGE_PIXELS`` (CLI: ``--max-image-pixels``) changes it.
MAX_IMAGE_PIXELS = 100_000_000
MAX_IMAGE_PIXELS_ENV = "LABELSPLAT_MAX_IMAGE_PIXELS"
#: JSON files larger than this or nested deeper than this are refused.
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 100
# Pillow's own decompression-bomb check (a warning, then an error at twice its limit) is replaced by
# :func:`check_image_pixels`, which every image read runs on the header before decoding.
Image.MAX_IMAGE_PIXELS = None


def max_image_pixels() -> int:
    """The image-size limit in pixels: ``LABELSPLAT_MAX_IMAGE_PIXELS`` if set, else :data:`MAX_IMAGE_PIXELS`."""
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not text:
        return MAX_IMAGE_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise LabelsplatError(f"{MAX_IMAGE_PIXELS_ENV} must be a positive number of pixels, got {text!r}",
                              hint="e.g. 400000000 for 400 megapixels")
    return value


def check_image_pixels(path: Path, width: int, height: int) -> None:
    """Refuse an image whose header claims more than :func:`max_image_pixels` pixels (before decoding)."""
    limit = max_image_pixels()
    if int(width) * int(height) > limit:
        raise LabelsplatError(
            f"the image is {width}x{height} = {int(width) * int(height) / 1e6:.4g} megapixels, above the limit of "
            f"{limit / 1e6:g} megapixels (refused before decoding: a damaged or hostile file?)", path=path,
            hint=f"if the image is genuine, raise the limit with --max-image-pixels N or {MAX_IMAGE_PIXELS_ENV}=N")


def check_regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` when it is a regular file (symbolic links followed); :class:`LabelsplatError` naming it
    when it is missing, a directory, or a FIFO, device or socket (reading those could hang or never end)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise LabelsplatError(f"{what} not found", path=path) from None
    except OSError as exc:
        raise LabelsplatError(f"cannot read the {what} ({exc.strerror})", path=path) from exc
    if stat.S_ISDIR(st.st_mode):
        raise LabelsplatError(f"expected a {what} but found a directory", path=path)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise LabelsplatError(f"refusing to read {kind}: only regular files are read", path=path,
                              hint=f"give a regular {what} (a link to a device or pipe is refused too)")
    return path


# ----------------------------------------------------------------------------- atomic writes
# Temporary names carry the writing process's id, ``.<name>.<pid>-<random>.tmp`` (files) and
# ``.<name>.<pid>-<random>.partial`` (directories), so leftovers of a killed run can be told from
# the temporaries of a process that is still writing (see :func:`clean_leftovers`).
_LEFTOVER_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[A-Za-z0-9_]+\.(?:tmp|partial)$")
_OLD_RE = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)$")
_UMASK = os.umask(0)
os.umask(_UMASK)


def _tmp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def find_leftovers(root: str | Path, *, name: str | None = None, recursive: bool = True) -> list[Path]:
    """Temporary files/directories under ``root`` left by a labelsplat process that no longer runs.

    Matches this module's temporary names (``.<name>.<pid>-<random>.tmp`` / ``.partial`` and
    ``.<name>.old-<pid>``) whose process id is not alive on this machine; ``name`` restricts the
    search to temporaries of that final name. Temporaries of running processes are never listed.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found: list[Path] = []
    walker = os.walk(root) if recursive else [(str(root), [e.name for e in os.scandir(root) if e.is_dir()],
                                                [e.name for e in os.scandir(root) if not e.is_dir()])]
    for dirpath, dirnames, filenames in walker:
        for entry in list(dirnames) + list(filenames):
            m = _LEFTOVER_RE.match(entry) or _OLD_RE.match(entry)
            if m is None or (name is not None and m.group("name") != name):
                continue
            if not _pid_alive(int(m.group("pid"))):
                found.append(Path(dirpath) / entry)
                if entry in dirnames:
                    dirnames.remove(entry)  # do not descend into a leftover directory
    return sorted(found)


def clean_leftovers(root: str | Path, *, name: str | None = None, recursive: bool = True,
                    log=None) -> list[Path]:
    """Remove :func:`find_leftovers` under ``root`` and say so (one line on stderr, or ``log``)."""
    removed = []
    for p in find_leftovers(root, name=name, recursive=recursive):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:
            continue
        removed.append(p)
    if removed:
        shown = ", ".join(str(p) for p in removed[:3]) + (f" (+{len(removed) - 3} more)" if len(removed) > 3 else "")
        msg = f"note: removed {len(removed)} temporary file(s) left by an interrupted run: {shown}"
        if log is not None:
            log(msg)
        else:
            print(msg, file=sys.stderr)
    return removed


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


def ensure_dir(path: str | Path) -> Path:
    """Create directory ``path`` (and parents); :class:`LabelsplatError` naming the blocking path if impossible."""
    path = Path(path)
    if path.is_dir():
        return path
    for anc in [path, *path.parents]:
        if anc.exists():
            if not anc.is_dir():
                raise LabelsplatError(
                    "cannot create the output directory: this path is a file, not a directory", path=anc,
                    hint=f"choose another output path than {path}",
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabelsplatError(f"cannot create the output directory ({exc.strerror})", path=path,
                              hint="check the permissions or choose another output path") from exc
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    _check_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise LabelsplatError(f"cannot write ({exc.strerror})", path=path, hint="check permissions") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
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


def _non_finite_key(obj: Any, where: str = "") -> str | None:
    """The dotted key of the first NaN or infinite number in ``obj`` (None when there is none)."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple, np.ndarray)):
        items = ((f"[{i}]", v) for i, v in enumerate(obj.tolist() if isinstance(obj, np.ndarray) else obj))
    else:
        value = obj.item() if isinstance(obj, np.generic) else obj
        return where or "(value)" if isinstance(value, float) and not math.isfinite(value) else None
    for k, v in items:
        sub = f"{where}{k}" if str(k).startswith("[") else (f"{where}.{k}" if where else str(k))
        found = _non_finite_key(v, sub)
        if found is not None:
            return found
    return None


def atomic_write_json(path: str | Path, obj: Any, *, add_schema_version: bool = True) -> Path:
    """Write ``obj`` as JSON; a top-level dict gets ``schema_version`` if it has none. A NaN or
    infinite number (not JSON) is refused with :class:`LabelsplatError` naming the file and the key,
    before anything is written."""
    if add_schema_version and isinstance(obj, dict) and "schema_version" not in obj:
        obj = {"schema_version": SCHEMA_VERSION, **obj}
    try:
        text = json.dumps(obj, indent=2, default=_json_default, allow_nan=False)
    except ValueError as exc:
        key = _non_finite_key(obj)
        if key is None:
            raise
        raise LabelsplatError(f"refusing to write a NaN or infinite value ({key}): the run produced a "
                              "non-finite number", path=path,
                              hint="check the inputs and settings that lead to it (labels with no usable pixel, "
                                   "learning rates); nothing was written to this file") from exc
    return atomic_write_text(path, text + "\n")


def _json_depth(obj: Any) -> int:
    """The nesting depth of a decoded JSON value (a scalar is 0), without recursion."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        cur, d = stack.pop()
        if isinstance(cur, (dict, list)):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in (cur.values() if isinstance(cur, dict) else cur))
    return depth


def read_json(path: str | Path) -> Any:
    """Read a JSON file, raising :class:`LabelsplatError` naming the file on any problem: only a regular
    file of at most :data:`MAX_JSON_BYTES`, nested at most :data:`MAX_JSON_DEPTH` deep, without NaN."""
    path = Path(path)
    if not path.exists():
        raise LabelsplatError("file not found", path=path)
    if path.is_dir():
        raise LabelsplatError("expected a JSON file but found a directory", path=path)
    check_regular_file(path, "JSON file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise LabelsplatError(f"the JSON file is {path.stat().st_size:,} bytes, above the limit of "
                              f"{MAX_JSON_BYTES:,} bytes", path=path, hint="is this the right file?")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsplatError(f"cannot read the file ({exc})", path=path) from exc
    if not text.strip():
        raise LabelsplatError("the file is empty", path=path)

    def _no_constants(name: str):
        raise ValueError(f"non-finite number {name} is not allowed")

    too_deep = LabelsplatError(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep", path=path,
                               hint="is this the right file? (labelsplat's JSON files are a few levels deep)")
    try:
        doc = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise too_deep from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise LabelsplatError(f"invalid JSON ({exc})", path=path) from exc
    if _json_depth(doc) > MAX_JSON_DEPTH:
        raise too_deep
    return doc


#: JSON-lines logs (train_log.jsonl) larger than this are refused.
MAX_JSONL_BYTES = 1024 * 1024 * 1024


def read_json_object(path: str | Path, name: str, what: str = "a JSON object") -> dict:
    """:func:`read_json` of a file that must hold a JSON object; otherwise a :class:`LabelsplatError`
    saying "``name`` must hold ``what``" (``name``: how the user knows the file, e.g. transforms.json)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise LabelsplatError(f"{name} must hold {what}", path=path)
    return data


def read_jsonl(path: str | Path) -> list[tuple[str, Any]]:
    """The lines of a JSON-lines file labelsplat wrote (a training log) as (line, decoded value) pairs,
    the value None for a line that is not JSON (one cut short by a kill). Only a regular file of at most
    :data:`MAX_JSONL_BYTES`; :class:`LabelsplatError` naming the file otherwise."""
    path = check_regular_file(path, "log file")
    if path.stat().st_size > MAX_JSONL_BYTES:
        raise LabelsplatError(f"the log file is {path.stat().st_size:,} bytes, above the limit of "
                              f"{MAX_JSONL_BYTES:,} bytes", path=path, hint="is this the right file?")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LabelsplatError(f"cannot read the file ({exc.strerror})", path=path) from exc
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            value = None
        out.append((line, value))
    return out


# ----------------------------------------------------------------------------- one writer per output
#: The lock file of a directory a command is writing (removed when it ends).
LOCK = ".labelsplat-lock.json"
#: An unreadable lock younger than this (seconds) may be one being written: it counts as held.
LOCK_GRACE_S = 10.0
_HELD: dict[Path, int] = {}  # the directories this process holds the lock of -> nesting depth


def read_json_or_none(path: str | Path) -> Any:
    """:func:`read_json` for the small files labelsplat writes for itself (markers, locks, DONE.json):
    None when the file is missing, not a regular file, too large, too deep or not JSON."""
    try:
        return read_json(path)
    except LabelsplatError:
        return None


def lock_holder(directory: str | Path) -> dict | None:
    """The holder of ``directory``'s lock ({pid, host, started}), ``{}`` for an unreadable lock,
    None without a lock."""
    p = Path(directory) / LOCK
    if not p.is_file():
        return None
    doc = read_json_or_none(p)
    return doc if isinstance(doc, dict) else {}


def _lock_held(directory: Path, doc: dict) -> bool:
    """Whether the lock's holder may still be writing (a live process, or one on another host)."""
    if not doc:
        with contextlib.suppress(OSError):
            return time.time() - (directory / LOCK).stat().st_mtime < LOCK_GRACE_S
        return False
    if doc.get("host") != socket.gethostname():
        return True  # a process on another machine cannot be checked from here
    pid = doc.get("pid")
    if pid == os.getpid():
        return False  # this process: its own lock (held, see _HELD) or one it left and may reclaim
    return isinstance(pid, int) and _pid_alive(pid)


def check_dir_lock(directory: str | Path) -> None:
    """Refuse when another process holds ``directory``'s lock (changes nothing)."""
    directory = Path(directory)
    doc = lock_holder(directory)
    if doc is not None and _lock_held(directory, doc):
        who = (f"pid {doc.get('pid')} on host {doc.get('host')}, since {doc.get('started')}" if doc
               else "its lock file is being written")
        raise LabelsplatError(f"another labelsplat command is writing this output ({who})", path=directory,
                              hint=f"wait until it ends; if that process is gone (another machine), remove "
                                   f"{directory / LOCK}")


def _say(msg: str, log) -> None:
    if log is None:
        print(msg, file=sys.stderr)
    else:
        log(msg)


def _take_lock(directory: Path, log) -> None:
    doc = {"pid": os.getpid(), "host": socket.gethostname(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    lock = directory / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            check_dir_lock(directory)
            old = lock_holder(directory) or {}
            _say(f"note: reclaimed the lock of {directory} left by a process that is gone "
                 f"(pid {old.get('pid', '?')} on {old.get('host', '?')})", log)
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        except OSError as exc:
            raise LabelsplatError(f"cannot take the output's lock ({exc.strerror})", path=lock,
                                  hint="check the permissions of the output directory") from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        return
    check_dir_lock(directory)
    raise LabelsplatError("cannot take the output's lock", path=lock)


@contextlib.contextmanager
def dir_lock(directory: str | Path, *, log=None) -> Iterator[Path]:
    """Hold ``directory``'s exclusive lock file, :data:`LOCK` (pid, host, start time), while the block
    runs; the directory is created. A second writer is refused naming the holder; a lock left by a
    process that is gone (same host) is reclaimed with a note (stderr, or ``log``). Re-entrant within
    one process (a nested hold of the same directory is a no-op)."""
    directory = Path(directory)
    key = directory.absolute()
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield directory
        finally:
            _HELD[key] -= 1
        return
    ensure_dir(directory)
    _take_lock(directory, log)
    _HELD[key] = 1
    try:
        yield directory
    finally:
        _HELD.pop(key, None)
        if (lock_holder(directory) or {}).get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                (directory / LOCK).unlink()


def is_vacant_dir(path: str | Path) -> bool:
    """An empty directory, or one holding nothing but a lock (an atomic build in progress, or one killed)."""
    path = Path(path)
    return path.is_dir() and all(p.name == LOCK for p in path.iterdir())


@contextlib.contextmanager
def atomic_dir(final: str | Path, *, overwrite: bool = False, log=None) -> Iterator[Path]:
    """Build a directory in a temporary sibling; rename it to ``final`` only on success.

    An existing ``final`` is refused unless ``overwrite``; then it is replaced only after the
    new one is complete. ``final`` is locked (:func:`dir_lock`) for the whole build: a missing
    ``final`` appears at once holding only the lock, and a second writer is refused. Temporaries of
    ``final`` left by a killed run (dead process id) are removed first, with a note on stderr.
    """
    final = Path(final)
    if final.exists() and not overwrite and not is_vacant_dir(final):
        raise LabelsplatError("the output already exists", path=final, hint="pass --overwrite or choose another path")
    _check_parent(final, allow_existing_dir=True)
    created = not final.exists()
    try:
        with dir_lock(final, log=log):
            clean_leftovers(final.parent, name=final.name, recursive=False)
            tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final.name), suffix=".partial", dir=final.parent))
            os.chmod(tmp, 0o777 & ~_UMASK)
            try:
                yield tmp
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            # ``final`` exists (at least with the lock): swap it for the new tree; the lock goes with the old one
            trash = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                final.rmdir()  # the directory made for the lock (only when empty: never another writer's)
        raise


# ----------------------------------------------------------------------------- images
def _open_image(path: Path):
    damaged = "the file is damaged or incomplete (an interrupted copy?): copy or export it again"
    if not path.exists():
        raise LabelsplatError("image file not found", path=path,
                              hint="check the path (scene paths are relative to transforms.json)")
    if path.is_dir():
        raise LabelsplatError("expected an image file but found a directory", path=path)
    check_regular_file(path, "image file")
    if path.stat().st_size == 0:
        raise LabelsplatError("the image file is empty", path=path, hint=damaged)
    try:
        img = Image.open(path)
        try:
            check_image_pixels(path, *img.size)
        except LabelsplatError:
            img.close()
            raise
        img.load()
    except UnidentifiedImageError as exc:
        raise LabelsplatError("not an image file (format not recognised)", path=path,
                              hint="use PNG (labels, masks) or PNG/JPEG (images); " + damaged) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise LabelsplatError(f"cannot decode the image, it may be truncated ({exc})", path=path, hint=damaged) from exc
    return img


# EXIF orientation (tag 0x0112): 1 = upright; 5-8 store the picture turned by 90 degrees
EXIF_ORIENTATION = 0x0112


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag of an opened image (1 = upright, also when there is none)."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not make the pixels unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(img: Image.Image) -> Image.Image:
    """The image as a viewer shows it: its EXIF orientation applied (phone portrait photos)."""
    return img if exif_orientation(img) == 1 else ImageOps.exif_transpose(img)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read any image as uint8 RGB (H, W, 3), upright (EXIF orientation applied): greyscale is
    expanded, alpha dropped, 16-bit scaled. Masks are read with it too."""
    path = Path(path)
    img = upright(_open_image(path))
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


_WHITE = 0xFFFFFF  # the colour of ignore (255) in colour-coded label maps


def _rgb_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _colour_lut(palette: np.ndarray) -> dict[int, int]:
    """Colour key -> class id for a (K, 3) palette; white is ignore (255) unless a class uses it."""
    lut = {int(k): i for i, k in enumerate(_rgb_keys(np.asarray(palette).reshape(-1, 3)))}
    lut.setdefault(_WHITE, IGNORE_INDEX)
    return lut


def _unknown_colour(path: Path, key: int, count: int | None = None) -> LabelsplatError:
    rgb = ((key >> 16) & 255, (key >> 8) & 255, key & 255)
    return LabelsplatError(
        f"colour {rgb} {'' if count is None else f'({count} pixels) '}is not in the label scheme's palette", path=path,
        hint="colour-coded labels must use the scheme's palette exactly (white = ignore; `labelsplat labels schemes "
             "NAME` lists it); or write class ids as uint8 greyscale PNGs (`labelsplat labels convert --colors`)")


def _labels_from_colours(rgb: np.ndarray, palette: np.ndarray, path: Path) -> np.ndarray:
    """(H, W, 3) colour-coded labels -> class ids by exact palette colour (white = 255)."""
    lut = _colour_lut(palette)
    uniq, inverse, counts = np.unique(_rgb_keys(rgb).reshape(-1), return_inverse=True, return_counts=True)
    ids = np.empty(len(uniq), np.uint8)
    for j, key in enumerate(uniq.tolist()):
        if key not in lut:
            raise _unknown_colour(path, key, int(counts[j]))
        ids[j] = lut[key]
    return ids[inverse.reshape(-1)].reshape(rgb.shape[:2])


def _labels_from_palette_image(img, palette: np.ndarray | None, path: Path) -> np.ndarray:
    """A palette-mode (P) PNG: decoded by colour when every used entry is a scheme colour (and the
    palette is not plain grey, index i = (i, i, i)); read as indices when no used entry is one
    (the id range is checked by the caller); refused naming the colour when only some are."""
    idx = np.asarray(img, dtype=np.uint8)
    if palette is None:
        return idx
    used = np.unique(idx)
    pal = np.zeros((256, 3), np.uint8)
    raw = np.asarray(img.getpalette() or [], np.uint8)[: 768 - 768 % 3].reshape(-1, 3)[:256]
    pal[: len(raw)] = raw
    keys = _rgb_keys(pal[used])
    if np.array_equal(pal[used], np.repeat(used[:, None], 3, axis=1)):
        return idx  # a grey palette: the indices are the ids
    lut = _colour_lut(palette)
    known = np.array([int(k) in lut for k in keys])
    if known.all():
        table = np.zeros(256, np.uint8)
        table[used] = [lut[int(k)] for k in keys]
        return table[idx]
    if not known.any():
        return idx  # a palette of other colours: indices, valid only if every one is a class (checked next)
    raise _unknown_colour(path, int(keys[~known][0]))


def read_label(path: str | Path, num_classes: int | None = None, *, shape: tuple[int, int] | None = None,
               palette: np.ndarray | None = None) -> np.ndarray:
    """Read a label PNG as uint8 (H, W) class ids; 255 (ignore) is always accepted. A file with an
    EXIF orientation tag other than 1 is refused.

    ``num_classes`` checks every id is in ``[0, num_classes)`` or 255; ``shape`` = (H, W)
    checks the size against its image. With the scheme's ``palette`` ((K, 3) RGB), colour-coded
    maps are decoded by colour: RGB(A) images (a colour outside the palette is refused naming it;
    white = ignore) and palette-mode PNGs whose colours are scheme colours (see
    :func:`_labels_from_palette_image`). Without it only single-channel maps are accepted.
    """
    path = Path(path)
    img = _open_image(path)
    tag = exif_orientation(img)
    if tag != 1:
        raise LabelsplatError(
            f"the label map carries an EXIF orientation tag ({tag}): its class ids would be shown turned or mirrored",
            path=path, hint="write label maps upright without an orientation tag (labels must match the upright image)")
    if img.mode == "L":
        arr = np.asarray(img, dtype=np.uint8)
    elif img.mode == "P":
        arr = _labels_from_palette_image(img, palette, path)
    elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.int64)
        if arr.max(initial=0) > 255 or arr.min(initial=0) < 0:
            raise LabelsplatError("label ids above 255 in a 16-bit label image", path=path,
                                  hint="labels are class ids 0..K-1 (255 = ignore): write them as uint8 PNGs")
        arr = arr.astype(np.uint8)
    elif img.mode in ("RGB", "RGBA") and palette is not None:
        arr = _labels_from_colours(np.asarray(img.convert("RGB")), palette, path)
    else:
        raise LabelsplatError(
            f"a label map must be a single-channel image of class ids (mode L or P), got mode {img.mode}",
            path=path,
            hint="write labels as uint8 greyscale PNGs; use `labelsplat labels convert` for colour maps",
        )
    arr = arr.copy()
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise LabelsplatError(
            f"label size {arr.shape[1]}x{arr.shape[0]} differs from its image {shape[1]}x{shape[0]}", path=path,
            hint="a label map must have its image's size: resize it (nearest-neighbour) or use the matching image",
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
    buf = _io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_png(path: str | Path, arr: np.ndarray, *, compress_level: int = 6) -> Path:
    """Atomically write a uint8 array (H, W) or (H, W, 3|4) as PNG (zlib ``compress_level`` 0-9:
    1 encodes about 3x faster than Pillow's default 6 for ~10 % larger files)."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8, got {arr.dtype}")
    return atomic_write_bytes(path, _encode_image(arr, "PNG", compress_level=compress_level))


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


# ----------------------------------------------------------------------------- video
def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: int = 24) -> Path:
    """Atomically write uint8 RGB frames (H, W, 3), all one size, as an H.264 MP4 (yuv420p; odd
    sizes are padded by one black row / column). Needs PyAV (the ``[video]`` extra)."""
    try:
        import av  # lazy: optional dependency (the [video] extra)
    except ImportError as exc:
        raise LabelsplatError("writing a video needs PyAV, which is not installed", path=path,
                              hint='pip install "labelsplat[video]"') from exc
    if not frames:
        raise ValueError("write_mp4: no frames")
    h, w = np.asarray(frames[0]).shape[:2]
    H, W = h + h % 2, w + w % 2
    buf = _io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for f in frames:
            arr = np.zeros((H, W, 3), dtype=np.uint8)
            arr[:h, :w] = np.asarray(f, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return atomic_write_bytes(path, buf.getvalue())
