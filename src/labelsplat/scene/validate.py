"""Scene validation: hard problems raise :class:`LabelsplatError`, soft ones come back as warnings.

:func:`load_scene` already checks the JSON structure (types, NaN, singular matrices, duplicate
names). :func:`validate_scene` checks the scene against its files and its label scheme.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import LabelsplatError
from ..io import check_image_pixels, check_regular_file, exif_orientation, read_label
from ..schemes import get_scheme
from .format import FRAME_PATH_KEYS, TRANSFORMS, Scene, path_escapes



def scheme_num_classes(scheme: Any, *, source: str | Path | None = None) -> int:
    """Number of classes of a scheme given by name or as an object with ``num_classes``.

    Unknown names raise :class:`LabelsplatError` listing the known schemes.
    """
    if scheme is not None and not isinstance(scheme, str):
        n = getattr(scheme, "num_classes", None)
        if not isinstance(n, int) or n <= 0:
            raise LabelsplatError(f"label scheme object {scheme!r} has no positive 'num_classes'")
        return n
    try:
        return int(get_scheme(scheme).num_classes)
    except LabelsplatError as exc:
        msg = exc.message if "unknown label scheme" in exc.message else f"unknown label scheme {scheme!r} ({exc.message})"
        raise LabelsplatError(msg, path=source, hint=exc.hint or "see `labelsplat labels schemes`") from exc
    except KeyError as exc:  # a registry that raises KeyError
        raise LabelsplatError(f"unknown label scheme {scheme!r}", path=source) from exc


def image_header(path: Path) -> tuple[int, int, int]:
    """(stored width, stored height, EXIF orientation tag) from the image header, without decoding the pixels."""
    damaged = "the file is damaged or incomplete (an interrupted copy?): copy or export it again"
    if not path.exists():
        raise LabelsplatError("file not found", path=path, hint="check the path (scene paths are relative to transforms.json)")
    if path.is_dir():
        raise LabelsplatError("expected an image file but found a directory", path=path)
    check_regular_file(path, "image file")
    if path.stat().st_size == 0:
        raise LabelsplatError("the image file is empty", path=path, hint=damaged)
    try:
        with Image.open(path) as img:
            check_image_pixels(path, *img.size)
            return int(img.size[0]), int(img.size[1]), exif_orientation(img)
    except UnidentifiedImageError as exc:
        raise LabelsplatError("not an image file (format not recognised)", path=path,
                              hint="use PNG (labels, masks) or PNG/JPEG (images); " + damaged) from exc
    except OSError as exc:
        raise LabelsplatError(f"cannot read the image ({exc})", path=path, hint=damaged) from exc


def image_size(path: Path) -> tuple[int, int]:
    """Upright (width, height) from the image header (EXIF orientation applied, as :func:`read_rgb` does)."""
    w, h, tag = image_header(path)
    return (h, w) if tag >= 5 else (w, h)


def _check_names_and_paths(scene: Scene, json_path: Path, allow_outside: bool) -> None:
    """Unique frame names and files; no path leaving the scene directory (unless ``allow_outside``)."""
    names = Counter(f.name for f in scene.frames)
    dups = sorted(n for n, c in names.items() if c > 1)
    if dups:
        raise LabelsplatError(f"duplicate frame name(s) {dups[:5]}", path=json_path, hint="give every frame a unique name")
    for key in FRAME_PATH_KEYS:
        used = Counter(os.path.normpath(getattr(f, key)) for f in scene.frames if getattr(f, key))
        dup_paths = sorted(p for p, c in used.items() if c > 1)
        if dup_paths:
            raise LabelsplatError(
                f"duplicate frames: {key} {dup_paths[:3]} is used by more than one frame", path=json_path,
                hint="each frame needs its own files: remove the repeated frame or fix its path",
            )
    checked: list[tuple[str, str, str]] = [(f.name, k, getattr(f, k)) for f in scene.frames for k in FRAME_PATH_KEYS if getattr(f, k)]
    if scene.ply_file_path:
        checked.append(("(scene)", "ply_file_path", scene.ply_file_path))
    if not allow_outside:
        for name, key, rel in checked:
            if path_escapes(rel):
                raise LabelsplatError(
                    f"frame '{name}': {key} {rel!r} points outside the scene directory",
                    path=json_path,
                    hint="keep files inside the scene (paths relative to transforms.json, no '..'), or pass allow_outside=True",
                )


def _scene_warnings(scene: Scene) -> list[str]:
    """Frames without an image or label, no head frame, principal points outside the image, the
    head centre outside views."""
    warnings: list[str] = []
    no_image = [f.name for f in scene.frames if not f.file_path]
    no_label = [f.name for f in scene.frames if not f.label_path]
    if no_image:
        warnings.append(f"{len(no_image)} frame(s) have no image (file_path), e.g. {no_image[:3]}")
    if no_label:
        warnings.append(
            f"{len(no_label)}/{len(scene.frames)} frame(s) have no label (label_path); run `labelsplat parse` to fill them"
        )
    if scene.head_frame is None:
        warnings.append("no head_frame: yaw/pitch are undefined; re-import with --head-frame or let the importer estimate it")

    for f in scene.frames:
        cam = f.camera
        if not (0 <= cam.cx <= cam.width and 0 <= cam.cy <= cam.height):
            warnings.append(
                f"frame '{f.name}': principal point ({cam.cx:.1f}, {cam.cy:.1f}) lies outside the {cam.width}x{cam.height} image"
            )
    if scene.head_frame is not None:
        outside = []
        for f in scene.frames:
            uv, z = f.camera.project(scene.head_frame.center[None])
            u, v = uv[0]
            if not (z[0] > 0 and 0 <= u < f.camera.width and 0 <= v < f.camera.height):
                outside.append(f.name)
        if outside:
            warnings.append(f"the head centre is not inside {len(outside)} view(s), e.g. {outside[:3]}")
    return warnings


def scheme_palette(scheme: Any) -> np.ndarray | None:
    """The (K, 3) palette of a scheme given by name or as an object with ``palette_array()`` (None otherwise)."""
    if isinstance(scheme, str):
        return get_scheme(scheme).palette_array()
    fn = getattr(scheme, "palette_array", None)
    return fn() if callable(fn) else None


def _check_frame_files(scene: Scene, f, json_path: Path, num_classes: int, check_label_ids: bool,
                       palette: np.ndarray | None = None) -> int:
    """A frame's image matches its intrinsics; its labels and mask exist, match the image's size
    and (``check_label_ids``) hold only the scheme's ids. Returns the image's EXIF orientation tag
    when it is not 1 although the stored (un-rotated) size matches w/h (made before labelsplat
    applied EXIF orientation), else 0."""
    cam = f.camera
    shape = (cam.height, cam.width)
    stale = 0
    if f.file_path:
        p = scene.path(f.file_path)
        sw, sh, tag = image_header(p)
        w, h = (sh, sw) if tag >= 5 else (sw, sh)
        if tag != 1 and (sw, sh) == (cam.width, cam.height):
            stale, (w, h) = tag, (sw, sh)
        if (w, h) != (cam.width, cam.height):
            raise LabelsplatError(
                f"frame '{f.name}': the image is {w}x{h} but its intrinsics say w={cam.width} h={cam.height}",
                path=p,
                hint=f"fix w/h in {json_path} or resize the image (and scale fl_x, fl_y, cx, cy with it)",
            )
    for key in ("label_path", "gt_label_path"):
        rel = getattr(f, key)
        if rel:
            p = scene.path(rel)
            if check_label_ids:
                read_label(p, num_classes, shape=shape, palette=palette)
            else:
                w, h = image_size(p)
                if (h, w) != shape:
                    raise LabelsplatError(
                        f"label size {w}x{h} differs from its image {shape[1]}x{shape[0]}", path=p,
                        hint="a label map must have its image's size: resize it (nearest-neighbour)",
                    )
    if f.mask_path:
        p = scene.path(f.mask_path)
        w, h = image_size(p)
        if (h, w) != shape:
            raise LabelsplatError(f"mask size {w}x{h} differs from its image {shape[1]}x{shape[0]}", path=p,
                                  hint="a mask must have its image's size: resize it (nearest-neighbour)")
    return stale


def validate_scene(
    scene: Scene,
    *,
    check_files: bool = True,
    scheme: Any = None,
    allow_outside: bool = False,
    check_label_ids: bool = True,
) -> list[str]:
    """Check a scene; raise :class:`LabelsplatError` for hard problems, return warnings.

    Hard problems: unknown label scheme; duplicate frame names or files; paths that are absolute
    or leave the scene directory (unless ``allow_outside``); and with ``check_files``: missing
    files, an image whose size differs from its intrinsics ``w, h``, a label / GT label / mask
    whose size differs from its image, label ids outside the scheme (255 = ignore is allowed;
    skipped with ``check_label_ids=False``, which avoids decoding every label).

    ``scheme`` overrides ``scene.label_scheme`` (a name or an object with ``num_classes``).
    Warnings: frames without an image or label, no head frame, head centre outside a view,
    intrinsics with the principal point outside the image, images with an EXIF orientation tag
    other than 1 stored at the scene's w/h (named).
    """
    json_path = Path(scene.root) / TRANSFORMS
    scheme = scene.label_scheme if scheme is None else scheme
    num_classes = scheme_num_classes(scheme, source=json_path)
    palette = scheme_palette(scheme)
    _check_names_and_paths(scene, json_path, allow_outside)
    warnings = _scene_warnings(scene)
    if not check_files:
        return warnings
    stale = {f.name: t for f in scene.frames
             if (t := _check_frame_files(scene, f, json_path, num_classes, check_label_ids, palette))}
    if stale:
        warnings.append(
            f"{len(stale)} image(s) carry an EXIF orientation tag other than 1 but are stored at the scene's w/h "
            f"(made before labelsplat applied EXIF orientation, so labels and cameras follow the un-rotated pixels): "
            f"{', '.join(f'{n} (tag {t})' for n, t in list(stale.items())[:10])}; re-import the scene from the source images"
        )
    if scene.ply_file_path:
        p = scene.path(scene.ply_file_path)
        if not p.is_file():
            raise LabelsplatError("point cloud (ply_file_path) not found", path=p)
    return warnings


def label_ids_present(scene: Scene) -> np.ndarray:
    """Sorted unique label ids over all frames' labels (for summaries)."""
    ids: set[int] = set()
    for f in scene.frames:
        if f.label_path:
            ids.update(np.unique(read_label(scene.path(f.label_path))).tolist())
    return np.array(sorted(ids), dtype=np.int64)
