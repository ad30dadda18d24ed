"""Nerfstudio ``transforms.json`` (``ns-process-data`` output, or written by hand).

Layout (nerfstudio's ``nerfstudio_dataparser``)::

    {"camera_model": "OPENCV",                     # optional; PINHOLE when absent
     "fl_x": .., "fl_y": .., "cx": .., "cy": .., "w": .., "h": ..,   # shared, or per frame
     "k1": .., "k2": .., "k3": .., "k4": .., "p1": .., "p2": ..,     # optional, shared or per frame
     "frames": [{"file_path": "images/frame_00001.png",
                 "transform_matrix": [[4x4]],     # camera-to-world, OpenGL axes (as labelsplat)
                 "mask_path": "masks/..png",      # optional, non-zero = use the pixel
                 "depth_file_path": ".."}]}       # optional, dropped

Paths are relative to the file's folder. Intrinsics follow COLMAP's pixel-centre convention
(nerfstudio shoots rays through ``pixel + 0.5``), so no shift is applied. The perspective models
(SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV) all read the same coefficients, as
nerfstudio does: ``k1 k2 k3`` radial and ``p1 p2`` tangential (OpenCV's order). ``k4`` is an
``r^8`` term in nerfstudio that the OpenCV model has no place for; a non-zero ``k4`` is refused.
Fisheye and equirectangular cameras are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import LabelsplatError
from ...io import is_finite_number, read_json_object
from ..distortion import Distortion
from ._common import ImportReport, SourceView, check_extrinsics, check_intrinsics, check_size

PERSPECTIVE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
REFUSED_MODELS = ("OPENCV_FISHEYE", "FISHEYE624", "EQUIRECTANGULAR")
_COEFFS = ("k1", "k2", "p1", "p2", "k3", "k4")
_UNDISTORT_HINT = ("undistort the images to pinhole first (e.g. `colmap image_undistorter`, or nerfstudio's "
                   "process step with a perspective camera) and import that")

#: OpenGL camera axes (x right, y up, z back) -> OpenCV (x right, y down, z forward)
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def resolve_transforms(src: str | Path) -> Path:
    src = Path(src)
    path = src / "transforms.json" if src.is_dir() else src
    if not path.is_file():
        raise LabelsplatError("nerfstudio transforms.json not found", path=path,
                              hint="pass the transforms.json file or its folder")
    return path


def _get(fr: dict, data: dict, key: str) -> Any:
    return fr[key] if key in fr else data.get(key)


def _number(value: Any, what: str, path: Path) -> float:
    if not is_finite_number(value):
        raise LabelsplatError(f"{what} must be a finite number, got {value!r}", path=path)
    return float(value)


def _camera_model(data: dict, path: Path) -> str:
    model = data.get("camera_model", "PINHOLE")
    if not isinstance(model, str):
        raise LabelsplatError(f"'camera_model' must be a string, got {model!r}", path=path)
    model = model.upper()
    if model in REFUSED_MODELS:
        raise LabelsplatError(
            f"camera_model {model} is not supported: labelsplat scenes are pinhole, and {model.lower()} images "
            "cannot be undistorted to one pinhole view without losing most of the field of view",
            path=path, hint=_UNDISTORT_HINT,
        )
    if model not in PERSPECTIVE_MODELS:
        raise LabelsplatError(f"unknown camera_model {model!r} (supported: {', '.join(PERSPECTIVE_MODELS)})", path=path)
    return model


def _distortion(fr: dict, data: dict, where: str, path: Path) -> Distortion | None:
    c = {k: _number(_get(fr, data, k) or 0.0, f"{where}: '{k}'", path) for k in _COEFFS}
    if c["k4"] != 0.0:
        raise LabelsplatError(
            f"{where}: k4 = {c['k4']} is nerfstudio's r^8 radial term, which labelsplat's OpenCV model does not have",
            path=path, hint=_UNDISTORT_HINT,
        )
    params = (c["k1"], c["k2"], c["p1"], c["p2"], c["k3"])
    if not any(params):
        return None
    return Distortion("OPENCV", params if c["k3"] else params[:4])


def _intrinsics(fr: dict, data: dict, where: str, path: Path) -> tuple[np.ndarray, int | None, int | None]:
    vals = {}
    for key in ("fl_x", "fl_y", "cx", "cy"):
        v = _get(fr, data, key)
        if v is None:
            raise LabelsplatError(f"{where}: missing intrinsic '{key}' (per frame or shared)", path=path)
        vals[key] = _number(v, f"{where}: '{key}'", path)
    size = [_get(fr, data, k) for k in ("w", "h")]
    w, h = (None, None) if any(s is None for s in size) else (check_size(size[0], f"{where}: 'w'", path),
                                                               check_size(size[1], f"{where}: 'h'", path))
    K = check_intrinsics([[vals["fl_x"], 0, vals["cx"]], [0, vals["fl_y"], vals["cy"]], [0, 0, 1]],
                         f"{where} intrinsics", path, shift=0.0)
    return K, w, h


def _source_path(root: Path, rel: Any, what: str, where: str, path: Path) -> Path:
    if not isinstance(rel, str) or not rel:
        raise LabelsplatError(f"{where}: '{what}' must be a non-empty string path", path=path)
    p = Path(rel)
    return p if p.is_absolute() else root / p


def _frame_view(idx: int, fr: Any, data: dict, root: Path, path: Path) -> SourceView:
    where = f"frame {idx}"
    if not isinstance(fr, dict):
        raise LabelsplatError(f"{where} is not a JSON object", path=path)
    for key in ("file_path", "transform_matrix"):
        if key not in fr:
            raise LabelsplatError(f"{where}: missing key '{key}'", path=path)
    image = _source_path(root, fr["file_path"], "file_path", where, path)
    c2w_gl = check_extrinsics(fr["transform_matrix"], f"{where}: transform_matrix", path)
    w2c = np.linalg.inv(c2w_gl @ _GL_TO_CV)
    K, w, h = _intrinsics(fr, data, where, path)
    view = SourceView(image.stem, image, K, w2c, w, h, _distortion(fr, data, where, path),
                      where=f"{where} ({fr['file_path']})")
    if fr.get("mask_path") is not None:
        view.mask = _source_path(root, fr["mask_path"], "mask_path", where, path)
        view.mask_nonzero = True
        if not view.mask.is_file():
            raise LabelsplatError(f"{where}: mask not found", path=view.mask)
    return view


def read_nerfstudio(src: str | Path, report: ImportReport) -> tuple[list[SourceView], Path]:
    """Parse a nerfstudio transforms.json into views (file order) in its own world frame."""
    path = resolve_transforms(src)
    data = read_json_object(path, "transforms.json")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise LabelsplatError("missing or empty 'frames' list", path=path)
    model = _camera_model(data, path)
    root = path.parent
    views = [_frame_view(i, fr, data, root, path) for i, fr in enumerate(frames)]
    report.notes.append(f"nerfstudio camera_model {model}; intrinsics used as given (pixel-centre convention)")
    depth = sum(1 for fr in frames if isinstance(fr, dict) and fr.get("depth_file_path"))
    if depth:
        report.notes.append(f"depth_file_path of {depth} frame(s) dropped (labelsplat does not use depth)")
    if "applied_transform" in data:
        report.notes.append("applied_transform present: cameras kept in the file's (transformed) world frame")
    if data.get("ply_file_path"):
        report.notes.append("ply_file_path not imported (the fit starts from its own initialisation)")
    return views, path
