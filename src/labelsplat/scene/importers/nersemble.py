"""NeRSemble-style ``camera_params.json``.

Assumed layout (from the NeRSemble dataset's published loaders; no real file was available
here)::

    {"world_2_cam": {"220700191": [[4x4]], ...},     # world-to-camera, OpenCV axes
     "intrinsics": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],   # shared by all cameras
     "distortion": [k1, k2, p1, p2, k3]}                    # optional, not in the original files

``intrinsics`` (and ``distortion``) may also be a dict keyed by serial. Intrinsics are in the
OpenCV pixel convention (+0.5 applied here) and belong to the resolution of the images given
(NeRSemble's are for the full-resolution frames; a principal point outside the image is
refused). Images are matched to cameras by the serial appearing in the file name as a whole
number (``cam_220700191.jpg``); cameras without an image are skipped and listed.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import LabelsplatError
from ...io import list_images, read_json_object
from ..distortion import Distortion
from ._common import OPENCV_TO_PIXEL_CENTER, ImportReport, SourceView, check_extrinsics, check_intrinsics


def resolve_params(src: str | Path) -> Path:
    src = Path(src)
    path = src / "camera_params.json" if src.is_dir() else src
    if not path.is_file():
        raise LabelsplatError("camera_params.json not found", path=path, hint="pass the camera_params.json file or its folder")
    return path


def _per_camera(value, serial: str, key: str, path: Path):
    if isinstance(value, dict):
        if serial not in value:
            raise LabelsplatError(f"'{key}' is per camera but has no entry for camera {serial}", path=path)
        return value[serial]
    return value


def read_nersemble(src: str | Path, images_dir: str | Path, report: ImportReport) -> tuple[list[SourceView], Path]:
    path = resolve_params(src)
    data = read_json_object(path, "camera_params.json")
    for key in ("world_2_cam", "intrinsics"):
        if key not in data:
            raise LabelsplatError(f"missing key '{key}'", path=path, hint="expected {'world_2_cam': {serial: 4x4}, 'intrinsics': 3x3}")
    w2cs = data["world_2_cam"]
    if not isinstance(w2cs, dict) or not w2cs:
        raise LabelsplatError("'world_2_cam' must be a non-empty object {serial: 4x4 matrix}", path=path)
    images = list_images(images_dir)
    views: list[SourceView] = []
    used: set[Path] = set()
    for serial in sorted(w2cs):
        pattern = re.compile(rf"(?<![0-9]){re.escape(str(serial))}(?![0-9])")
        hits = [p for p in images if pattern.search(p.stem)]
        if len(hits) > 1:
            raise LabelsplatError(
                f"camera {serial} matches several images {[h.name for h in hits[:4]]}", path=Path(images_dir),
                hint="give a folder with one image per camera (one timestep)",
            )
        if not hits:
            report.skipped.append(f"{serial} (no image)")
            continue
        K = check_intrinsics(
            _per_camera(data["intrinsics"], serial, "intrinsics", path), f"intrinsics of camera {serial}", path,
            shift=OPENCV_TO_PIXEL_CENTER,
        )
        w2c = check_extrinsics(w2cs[serial], f"world_2_cam of camera {serial}", path)
        dist = None
        if data.get("distortion") is not None:
            coeffs = _per_camera(data["distortion"], serial, "distortion", path)
            try:
                dist = Distortion("OPENCV", tuple(coeffs))
            except (TypeError, ValueError) as exc:
                raise LabelsplatError(f"distortion of camera {serial} must be 4, 5 or 8 numbers", path=path) from exc
            except LabelsplatError as exc:
                raise LabelsplatError(f"distortion of camera {serial}: {exc.message}", path=path) from exc
        used.add(hits[0])
        views.append(SourceView(hits[0].stem, hits[0], K, w2c, None, None, dist, where=f"camera {serial}"))
    if not views:
        raise LabelsplatError(
            f"no image file name contains any of the {len(w2cs)} camera serials (e.g. {sorted(w2cs)[:3]})",
            path=Path(images_dir),
            hint="NeRSemble images are named like cam_<serial>.jpg",
        )
    unused = [p.name for p in images if p not in used]
    if unused:
        report.notes.append(f"{len(unused)} image(s) match no camera and were ignored, e.g. {unused[:3]}")
    if report.skipped:
        report.notes.append(f"skipped {len(report.skipped)} camera(s) without an image")
    return views, path
