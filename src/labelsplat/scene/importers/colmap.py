"""COLMAP text models: ``cameras.txt``, ``images.txt``, optional ``points3D.txt``.

* ``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]``; supported models SIMPLE_PINHOLE
  (f cx cy), PINHOLE (fx fy cx cy), SIMPLE_RADIAL (f cx cy k), RADIAL (f cx cy k1 k2), OPENCV
  (fx fy cx cy k1 k2 p1 p2), FULL_OPENCV (fx fy cx cy k1 k2 p1 p2 k3 k4 k5 k6). COLMAP's
  intrinsics already use the pixel-centre convention (no shift).
* ``images.txt``: two lines per image, ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then the
  2D points (possibly an empty line). (QW..QZ, T) is world-to-camera, OpenCV axes. COLMAP >=
  3.12 (and 4) also write ``rigs.txt`` / ``frames.txt``; images.txt still holds each image's
  composed world-to-camera pose, so those files are not needed and are ignored.
* ``points3D.txt``: ``POINT3D_ID X Y Z R G B ERROR TRACK[]`` -> the scene's ``points3D.ply``.

Binary models (``*.bin``) are not read: convert with
``colmap model_converter --input_path M --output_path M --output_type TXT``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import LabelsplatError
from ..distortion import Distortion
from ._common import ImportReport, SourceView, check_extrinsics, check_intrinsics

# model -> (number of params, distortion model name or None)
CAMERA_MODELS: dict[str, tuple[int, str | None]] = {
    "SIMPLE_PINHOLE": (3, None),
    "PINHOLE": (4, None),
    "SIMPLE_RADIAL": (4, "SIMPLE_RADIAL"),
    "RADIAL": (5, "RADIAL"),
    "OPENCV": (8, "OPENCV"),
    "FULL_OPENCV": (12, "FULL_OPENCV"),
}


def resolve_model_dir(src: str | Path) -> Path:
    src = Path(src)
    if src.is_file():
        src = src.parent
    if not src.is_dir():
        raise LabelsplatError("COLMAP model folder not found", path=src)
    for cand in (src, src / "sparse" / "0", src / "sparse", src / "0"):
        if (cand / "cameras.txt").is_file() and (cand / "images.txt").is_file():
            return cand
    if (src / "cameras.bin").is_file() or (src / "sparse" / "0" / "cameras.bin").is_file():
        raise LabelsplatError(
            "this is a binary COLMAP model; only the text format is read",
            path=src,
            hint="colmap model_converter --input_path MODEL --output_path MODEL --output_type TXT",
        )
    raise LabelsplatError("no cameras.txt and images.txt here (a COLMAP text model folder)", path=src)


def _data_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsplatError(f"cannot read the file ({exc})", path=path) from exc
    return [(n, line) for n, line in enumerate(text.splitlines(), 1)]


def _floats(parts: list[str], path: Path, lineno: int, what: str) -> np.ndarray:
    try:
        vals = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError as exc:
        raise LabelsplatError(f"line {lineno}: {what} must be numbers, got {' '.join(parts)!r}", path=path) from exc
    if not np.all(np.isfinite(vals)):
        raise LabelsplatError(f"line {lineno}: {what} contain NaN or infinite values", path=path)
    return vals


def read_cameras(path: Path) -> dict[int, tuple[np.ndarray, int, int, Distortion | None, str]]:
    """camera id -> (K pixel-centre, width, height, distortion, model)."""
    cams: dict[int, tuple[np.ndarray, int, int, Distortion | None, str]] = {}
    for lineno, line in _data_lines(path):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) < 4:
            raise LabelsplatError(f"line {lineno}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'", path=path)
        try:
            cam_id, width, height = int(parts[0]), int(parts[2]), int(parts[3])
        except ValueError as exc:
            raise LabelsplatError(f"line {lineno}: CAMERA_ID, WIDTH, HEIGHT must be integers", path=path) from exc
        model = parts[1].upper()
        if model not in CAMERA_MODELS:
            raise LabelsplatError(
                f"line {lineno}: camera model {parts[1]} is not supported (supported: {', '.join(CAMERA_MODELS)})",
                path=path,
                hint="undistort first with `colmap image_undistorter` (gives PINHOLE cameras) and import that model",
            )
        n, dist_model = CAMERA_MODELS[model]
        params = _floats(parts[4:], path, lineno, "camera parameters")
        if len(params) != n:
            raise LabelsplatError(f"line {lineno}: {model} takes {n} parameters, got {len(params)}", path=path)
        if width <= 0 or height <= 0:
            raise LabelsplatError(f"line {lineno}: width and height must be positive", path=path)
        if cam_id in cams:
            raise LabelsplatError(f"line {lineno}: duplicate CAMERA_ID {cam_id}", path=path)
        if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
            f, cx, cy = params[:3]
            fx = fy = f
            rest = params[3:]
        else:
            fx, fy, cx, cy = params[:4]
            rest = params[4:]
        K = check_intrinsics([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], f"camera {cam_id} (line {lineno})", path, shift=0.0)
        dist = Distortion(dist_model, tuple(rest)) if dist_model else None
        cams[cam_id] = (K, width, height, dist, model)
    if not cams:
        raise LabelsplatError("no cameras in cameras.txt", path=path)
    return cams


def qvec_to_rotation(q: np.ndarray) -> np.ndarray:
    """Hamilton quaternion (w, x, y, z) -> 3x3 rotation (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotation_to_qvec(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> Hamilton quaternion (w, x, y, z) with w >= 0."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return q if q[0] >= 0 else -q


def read_images(path: Path) -> list[tuple[int, str, np.ndarray, int, int]]:
    """[(image id, NAME, w2c 4x4, camera id, line number)] in file order."""
    lines = _data_lines(path)
    out = []
    i = 0
    while i < len(lines):
        lineno, line = lines[i]
        s = line.strip()
        i += 1
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) < 10:
            raise LabelsplatError(
                f"line {lineno}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {s[:80]!r}", path=path
            )
        i += 1  # the POINTS2D line that follows (possibly empty)
        try:
            image_id, cam_id = int(parts[0]), int(parts[8])
        except ValueError as exc:
            raise LabelsplatError(f"line {lineno}: IMAGE_ID and CAMERA_ID must be integers", path=path) from exc
        try:
            q = np.array([float(v) for v in parts[1:5]])
            t = np.array([float(v) for v in parts[5:8]])
        except ValueError as exc:
            raise LabelsplatError(f"line {lineno}: the pose QW QX QY QZ TX TY TZ must be numbers", path=path) from exc
        name = " ".join(parts[9:])
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
            raise LabelsplatError(f"line {lineno}: image {name!r} has a NaN or infinite pose", path=path)
        if np.linalg.norm(q) < 1e-8:
            raise LabelsplatError(f"line {lineno}: image {name!r} has a zero quaternion (singular rotation)", path=path)
        m = np.eye(4)
        m[:3, :3] = qvec_to_rotation(q)
        m[:3, 3] = t
        out.append((image_id, name, check_extrinsics(m, f"image {name!r} (line {lineno})", path), cam_id, lineno))
    if not out:
        raise LabelsplatError("no images in images.txt", path=path)
    return out


def read_points3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(xyz float64 (N, 3), rgb uint8 (N, 3)) from points3D.txt."""
    xyz, rgb = [], []
    for lineno, line in _data_lines(path):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) < 7:
            raise LabelsplatError(f"line {lineno}: expected 'POINT3D_ID X Y Z R G B ERROR TRACK...'", path=path)
        vals = _floats(parts[1:7], path, lineno, "X Y Z R G B")
        xyz.append(vals[:3])
        rgb.append(vals[3:6])
    if not xyz:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    return np.array(xyz), np.clip(np.round(np.array(rgb)), 0, 255).astype(np.uint8)


def frame_name(image_name: str) -> str:
    """A flat frame name for a COLMAP image NAME (sub-folders joined with '__', no extension)."""
    p = Path(image_name)
    return p.with_suffix("").as_posix().replace("/", "__")


def read_colmap(
    src: str | Path, images_dir: str | Path, labels_dir: str | Path | None, report: ImportReport
) -> tuple[list[SourceView], Path, tuple[np.ndarray, np.ndarray] | None]:
    """Parse a COLMAP text model into views (image order by NAME) and its point cloud."""
    model = resolve_model_dir(src)
    images = Path(images_dir)
    if not images.is_dir():
        raise LabelsplatError("images folder not found", path=images)
    for extra in ("rigs.txt", "frames.txt"):
        if (model / extra).is_file():
            report.notes.append(f"{extra} present (COLMAP >= 3.12); poses taken from images.txt")
    cams = read_cameras(model / "cameras.txt")
    imgs_path = model / "images.txt"
    views: list[SourceView] = []
    missing: list[str] = []
    for image_id, name, w2c, cam_id, lineno in sorted(read_images(imgs_path), key=lambda r: r[1]):
        if cam_id not in cams:
            raise LabelsplatError(f"line {lineno}: image {name!r} uses CAMERA_ID {cam_id}, not in cameras.txt", path=imgs_path)
        K, width, height, dist, _model = cams[cam_id]
        image = images / name
        if not image.is_file():
            missing.append(name)
            continue
        view = SourceView(frame_name(name), image, K, w2c, width, height, dist, where=f"image {name!r} (id {image_id})")
        if labels_dir is not None:
            cand = Path(labels_dir) / Path(name).with_suffix(".png")
            if cand.is_file():
                view.label = cand
        views.append(view)
    if missing:
        raise LabelsplatError(
            f"{len(missing)} image(s) listed in images.txt are not in the images folder, e.g. {missing[:5]}",
            path=images,
            hint="point --images at the folder COLMAP's image NAMEs are relative to",
        )
    points = None
    if (model / "points3D.txt").is_file():
        points = read_points3d(model / "points3D.txt")
    else:
        report.notes.append("no points3D.txt: the scene has no point cloud")
    return views, imgs_path, points
