"""The canonical scene directory: nerfstudio-style ``transforms.json`` (docs/design.md).

Top level: ``label_scheme``, optional ``head_frame``, ``ply_file_path``, shared intrinsics
(``fl_x, fl_y, cx, cy, w, h``), ``frames``. Per frame: ``file_path``, ``label_path``,
optional ``gt_label_path``, ``mask_path``, ``distortion_removed``, ``transform_matrix``
(camera-to-world, OpenGL) and optional per-frame intrinsics overriding the shared ones.
Paths are relative to the scene directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import SCHEMA_VERSION
from ..errors import LabelsplatError
from ..io import atomic_write_json, read_json, read_json_object
from .camera import Camera, HeadFrame
from .paths import check_name, path_escapes

TRANSFORMS = "transforms.json"
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
#: The frame keys that hold a file path (relative to the scene root).
FRAME_PATH_KEYS = ("file_path", "label_path", "gt_label_path", "mask_path")
#: The rotation block of a camera-to-world matrix must be orthonormal to this tolerance.
ROTATION_TOLERANCE = 1e-3
#: A plausible field of view (degrees, open interval), horizontally and vertically.
FOV_RANGE_DEG = (1.0, 179.0)


@dataclass
class Frame:
    """One view: its camera and the paths (relative to the scene root) of its files."""

    name: str
    camera: Camera
    file_path: str | None = None
    label_path: str | None = None
    gt_label_path: str | None = None
    mask_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name}
        for key in FRAME_PATH_KEYS:
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        d.update(self.camera.to_dict())
        d.update(self.extra)
        return d


@dataclass
class Scene:
    """A scene directory in memory. ``root`` resolves the frames' relative paths."""

    root: Path
    frames: list[Frame]
    label_scheme: str = "celebamask19-zll"
    head_frame: HeadFrame | None = None
    ply_file_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.root).resolve().name

    def path(self, relative: str | None) -> Path | None:
        """Absolute path of a frame file (``None`` passes through)."""
        if relative is None:
            return None
        p = Path(relative)
        return p if p.is_absolute() else Path(self.root) / p

    @property
    def cameras(self) -> list[Camera]:
        return [f.camera for f in self.frames]

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "label_scheme": self.label_scheme}
        if self.head_frame is not None:
            d["head_frame"] = self.head_frame.to_dict()
        if self.ply_file_path is not None:
            d["ply_file_path"] = self.ply_file_path
        d.update(self.extra)
        d["frames"] = [f.to_dict() for f in self.frames]
        return d


def save_scene(scene: Scene, root: str | Path | None = None) -> Path:
    """Write ``transforms.json`` atomically into ``root`` (default ``scene.root``)."""
    root = Path(scene.root if root is None else root)
    return atomic_write_json(root / TRANSFORMS, scene.to_dict())


def _matrix(value: Any, where: str, path: Path) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabelsplatError(f"{where}: transform_matrix is not a numeric 4x4 matrix", path=path) from exc
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise LabelsplatError(f"{where}: transform_matrix has shape {m.shape}, expected 4x4", path=path)
    if not np.all(np.isfinite(m)):
        raise LabelsplatError(f"{where}: transform_matrix has NaN or infinite values", path=path)
    R = m[:3, :3]
    if abs(np.linalg.det(R)) < 1e-8:
        raise LabelsplatError(f"{where}: transform_matrix is singular (rotation part has zero determinant)", path=path)
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > ROTATION_TOLERANCE or np.linalg.det(R) < 0:
        what = (f"is not orthonormal (|R^T R - I| = {err:.3g} > {ROTATION_TOLERANCE:g}: scaled or sheared)"
                if err > ROTATION_TOLERANCE else "is a reflection (determinant -1)")
        raise LabelsplatError(f"{where}: the rotation part of transform_matrix {what}; a camera-to-world matrix "
                              "holds a rotation and a translation", path=path)
    return m


def _number(container: dict, key: str, where: str, path: Path, *, positive: bool = False) -> float:
    value = container[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LabelsplatError(f"{where}: '{key}' must be a number, got {type(value).__name__}", path=path)
    if not np.isfinite(value):
        raise LabelsplatError(f"{where}: '{key}' is not finite", path=path)
    if positive and value <= 0:
        raise LabelsplatError(f"{where}: '{key}' must be positive, got {value}", path=path)
    return float(value)


_SCENE_FIX = ("repair transforms.json (format: docs/design.md 'Scene directory'; known problems: docs/errors.md) "
              "or re-create the scene with `labelsplat scene import` / `labelsplat synth`")


def load_scene(path: str | Path, *, allow_outside: bool = False) -> Scene:
    """Read a scene directory (or its ``transforms.json``), validating structure and values.

    File paths in ``transforms.json`` (``file_path``, ``label_path``, ``gt_label_path``,
    ``mask_path``, ``ply_file_path``) must stay inside the scene directory: an absolute path or
    one leaving it through ``..`` is refused (a scene from elsewhere must not make a command
    read, or later overwrite, arbitrary files) unless ``allow_outside`` (CLI ``--allow-outside``).
    The check is lexical; symbolic links inside the scene are followed.
    Every problem raises :class:`LabelsplatError` naming ``transforms.json`` (with a fix).
    """
    try:
        return _load_scene(path, allow_outside=allow_outside)
    except LabelsplatError as exc:
        if exc.hint is None and exc.path is not None and Path(exc.path).name == TRANSFORMS:
            exc.hint = _SCENE_FIX
            exc.args = (str(exc),)
        raise


def _head_frame_field(data: dict, json_path: Path) -> HeadFrame | None:
    if data.get("head_frame") is None:
        return None
    try:
        return HeadFrame.from_dict(data["head_frame"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LabelsplatError(
            "'head_frame' must be {center: [x,y,z], up: [..], forward: [..]}", path=json_path
        ) from exc
    except LabelsplatError as exc:
        raise LabelsplatError(exc.message, path=json_path) from exc


_FRAME_KEYS = {"name", *FRAME_PATH_KEYS, "transform_matrix", *_INTRINSIC_KEYS}


def _frame_field(idx: int, fr: Any, data: dict, json_path: Path, seen: set[str]) -> Frame:
    """Frame ``idx`` of transforms.json (intrinsics per frame or shared at the top level); its
    name must not be in ``seen`` (the names of the frames before it), which gets it."""
    where = f"frame {idx}"
    if not isinstance(fr, dict):
        raise LabelsplatError(f"{where} is not a JSON object", path=json_path)
    if "transform_matrix" not in fr:
        raise LabelsplatError(f"{where}: missing key 'transform_matrix'", path=json_path)
    c2w = _matrix(fr["transform_matrix"], where, json_path)
    intr = {}
    for key in _INTRINSIC_KEYS:
        src = fr if key in fr else data if key in data else None
        if src is None:
            raise LabelsplatError(f"{where}: missing intrinsic '{key}' (per frame or shared)", path=json_path)
        intr[key] = _number(src, key, where, json_path, positive=key in ("fl_x", "fl_y", "w", "h"))
        if key in ("w", "h") and intr[key] != int(intr[key]):
            raise LabelsplatError(f"{where}: '{key}' must be a whole number of pixels, got {intr[key]}", path=json_path)
    for f_key, size_key in (("fl_x", "w"), ("fl_y", "h")):
        fov = float(np.degrees(2 * np.arctan(intr[size_key] / (2 * intr[f_key]))))
        if not FOV_RANGE_DEG[0] < fov < FOV_RANGE_DEG[1]:
            raise LabelsplatError(f"{where}: {f_key}={intr[f_key]:g} with {size_key}={intr[size_key]:g} gives a field of "
                                  f"view of {fov:.3g} degrees, outside ({FOV_RANGE_DEG[0]:g}, {FOV_RANGE_DEG[1]:g})",
                                  path=json_path, hint="focal lengths are in pixels of this image (fl_x ~ w for a "
                                                       "53-degree lens); check the units")
    for key in FRAME_PATH_KEYS:
        if key in fr and fr[key] is not None and not isinstance(fr[key], str):
            raise LabelsplatError(f"{where}: '{key}' must be a string path", path=json_path)
    name = fr.get("name") or (Path(fr["file_path"]).stem if fr.get("file_path") else f"frame_{idx:04d}")
    check_name(name, what=f"{where}: 'name'", path=json_path)
    if name in seen:
        raise LabelsplatError(f"duplicate frame name '{name}'", path=json_path)
    seen.add(name)
    cam = Camera(intr["fl_x"], intr["fl_y"], intr["cx"], intr["cy"], int(intr["w"]), int(intr["h"]), c2w)
    return Frame(
        name=name,
        camera=cam,
        file_path=fr.get("file_path"),
        label_path=fr.get("label_path"),
        gt_label_path=fr.get("gt_label_path"),
        mask_path=fr.get("mask_path"),
        extra={k: v for k, v in fr.items() if k not in _FRAME_KEYS},
    )


def _check_inside(frames: list[Frame], ply: str | None, json_path: Path) -> None:
    """No frame file and no point cloud path leaves the scene directory."""
    checked = [(f.name, k, getattr(f, k)) for f in frames for k in FRAME_PATH_KEYS]
    checked.append(("(scene)", "ply_file_path", ply))
    for name, key, rel in checked:
        if rel and path_escapes(rel):
            raise LabelsplatError(
                f"frame '{name}': {key} {rel!r} points outside the scene directory" if name != "(scene)"
                else f"{key} {rel!r} points outside the scene directory",
                path=json_path,
                hint="keep files inside the scene (paths relative to transforms.json, no '..' or absolute paths), "
                     "or pass --allow-outside if you trust this scene",
            )


_IMPORT_HINT = ("import it first: `labelsplat scene import --format nerfstudio {src} --out SCENE` "
                "(other sources: --format facescape | colmap | nersemble)")


def _check_canonical(data: dict, json_path: Path) -> None:
    """A nerfstudio (or other foreign) transforms.json is not a scene: it may carry distortion and
    camera models the scene format does not have, so it is refused with the import command."""
    if "camera_model" in data or "schema_version" not in data:
        why = (f"it has a 'camera_model' ({data.get('camera_model')!r})" if "camera_model" in data
               else "it has no 'schema_version'")
        raise LabelsplatError(
            f"not a labelsplat scene: {why}, so it looks like a nerfstudio (or other) transforms.json whose cameras "
            "may be distorted",
            path=json_path, hint=_IMPORT_HINT.format(src=json_path),
        )


def _load_scene(path: str | Path, *, allow_outside: bool) -> Scene:
    path = Path(path)
    json_path = path / TRANSFORMS if path.is_dir() else path
    if not path.exists():
        raise LabelsplatError("scene not found", path=path,
                              hint="give a scene directory holding transforms.json (or the transforms.json itself)")
    data = read_json_object(json_path, "transforms.json")
    frames_raw = data.get("frames")
    if not isinstance(frames_raw, list):
        raise LabelsplatError("missing key 'frames' (a list of frames)", path=json_path)
    if not frames_raw:
        raise LabelsplatError("the scene has zero frames", path=json_path)
    _check_canonical(data, json_path)
    scheme = data.get("label_scheme", "celebamask19-zll")
    if not isinstance(scheme, str):
        raise LabelsplatError("'label_scheme' must be a string", path=json_path)
    head = _head_frame_field(data, json_path)
    seen: set[str] = set()
    frames = [_frame_field(idx, fr, data, json_path, seen) for idx, fr in enumerate(frames_raw)]
    ply = data.get("ply_file_path")
    if ply is not None and not isinstance(ply, str):
        raise LabelsplatError("'ply_file_path' must be a string path", path=json_path)
    if not allow_outside:
        _check_inside(frames, ply, json_path)
    extra = {k: v for k, v in data.items() if k not in {"frames", "label_scheme", "head_frame", "ply_file_path", "schema_version", *_INTRINSIC_KEYS}}
    return Scene(
        root=json_path.parent,
        frames=frames,
        label_scheme=scheme,
        head_frame=head,
        ply_file_path=data.get("ply_file_path"),
        extra=extra,
    )


def set_head_frame(path: str | Path, head: HeadFrame, *, overwrite: bool = False, allow_outside: bool = False) -> Path:
    """Write ``head`` as the ``head_frame`` of an existing scene, atomically; every other key of
    ``transforms.json`` stays as it is. A scene that has a head frame is refused unless ``overwrite``."""
    scene = load_scene(path, allow_outside=allow_outside)  # a valid canonical scene, or a clear error
    json_path = Path(scene.root) / TRANSFORMS
    data = read_json(json_path)
    if data.get("head_frame") is not None and not overwrite:
        raise LabelsplatError("the scene already has a head frame", path=json_path,
                              hint="pass --overwrite to replace it")
    data["head_frame"] = head.to_dict()
    return atomic_write_json(json_path, data)
