"""FaceScape multi-view ``params.json`` (one per subject and expression).

Keys per view index ``i`` (FaceScape's doc/doc_mview_model.md): ``{i}_K`` intrinsics (3x3, or
4x4 whose top-left block is K; nested or flat), ``{i}_Rt`` world-to-camera 3x4 (OpenCV axes,
millimetres), ``{i}_distortion`` OpenCV ``k1 k2 p1 p2 k3``, ``{i}_width``, ``{i}_height``,
``{i}_valid`` (views marked false have unreliable poses and are skipped). Other keys
(``_matches``, ``_sn``, ``_ori``) are ignored. Images are ``{i}.jpg`` or ``{i}.png`` in the
images folder (default: next to params.json). Intrinsics are in the OpenCV pixel convention
(first pixel centre at 0), so cx, cy get +0.5 here.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import LabelsplatError
from ...io import read_json_object
from ..distortion import Distortion
from ._common import (
    OPENCV_TO_PIXEL_CENTER,
    ImportReport,
    SourceView,
    check_extrinsics,
    check_intrinsics,
    check_size,
    find_by_stem,
)

_KEY = re.compile(r"^(\d+)_([A-Za-z]+)$")


def _truthy(value, what: str, path: Path) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise LabelsplatError(f"{what} must be true/false, got {value!r}", path=path)


def resolve_params(src: str | Path) -> Path:
    src = Path(src)
    path = src / "params.json" if src.is_dir() else src
    if not path.is_file():
        raise LabelsplatError("FaceScape params.json not found", path=path, hint="pass the params.json file or its folder")
    return path


def read_facescape(src: str | Path, images_dir: str | Path | None, report: ImportReport) -> tuple[list[SourceView], Path]:
    """Parse ``params.json`` into views (invalid views skipped and listed in ``report``)."""
    path = resolve_params(src)
    images = Path(images_dir) if images_dir is not None else path.parent
    if not images.is_dir():
        raise LabelsplatError("images folder not found", path=images)
    data = read_json_object(path, "params.json", "a JSON object with keys like '0_K', '0_Rt'")
    indices = sorted({int(m.group(1)) for k in data if (m := _KEY.match(k))})
    if not indices:
        raise LabelsplatError("no camera keys ('{i}_K', '{i}_Rt') found: is this a FaceScape params.json?", path=path)
    views: list[SourceView] = []
    missing_images: list[str] = []
    for i in indices:
        where = f"view {i}"
        for key in (f"{i}_K", f"{i}_Rt"):
            if key not in data:
                raise LabelsplatError(f"missing key '{key}' (view {i} has other keys)", path=path)
        if f"{i}_valid" in data and not _truthy(data[f"{i}_valid"], f"'{i}_valid'", path):
            report.skipped.append(f"{i} (marked invalid)")
            continue
        K = check_intrinsics(data[f"{i}_K"], f"'{i}_K'", path, shift=OPENCV_TO_PIXEL_CENTER)
        w2c = check_extrinsics(data[f"{i}_Rt"], f"'{i}_Rt'", path)
        dist = None
        if f"{i}_distortion" in data:
            coeffs = data[f"{i}_distortion"]
            if not isinstance(coeffs, list) or len(coeffs) not in (4, 5, 8):
                raise LabelsplatError(f"'{i}_distortion' must be a list of 5 numbers (k1 k2 p1 p2 k3), got {coeffs!r}", path=path)
            try:
                dist = Distortion("OPENCV", tuple(coeffs))
            except (TypeError, ValueError) as exc:
                raise LabelsplatError(f"'{i}_distortion' must hold numbers, got {coeffs!r}", path=path) from exc
            except LabelsplatError as exc:
                raise LabelsplatError(f"'{i}_distortion': {exc.message}", path=path) from exc
        width = height = None
        if f"{i}_width" in data or f"{i}_height" in data:
            for key in (f"{i}_width", f"{i}_height"):
                if key not in data:
                    raise LabelsplatError(f"missing key '{key}' (its partner is present)", path=path)
            width = check_size(data[f"{i}_width"], f"'{i}_width'", path)
            height = check_size(data[f"{i}_height"], f"'{i}_height'", path)
        image = find_by_stem(images, str(i), exts=(".jpg", ".jpeg", ".png"))
        if image is None:
            missing_images.append(str(i))
            continue
        views.append(SourceView(str(i), image, K, w2c, width, height, dist, where=where))
    if missing_images:
        raise LabelsplatError(
            f"no image for {len(missing_images)} valid view(s) {missing_images[:8]} (expected <i>.jpg or <i>.png)",
            path=images,
            hint="point --images at the folder holding 0.jpg, 1.jpg, ...",
        )
    if report.skipped:
        report.notes.append(f"skipped {len(report.skipped)} view(s) marked invalid in params.json")
    return views, path
