"""COLMAP sparse models, text (``cameras.txt``, ``images.txt``, optional ``points3D.txt``) or
binary (the same as ``.bin``; preferred when both exist, as COLMAP does).

* ``cameras``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]``; supported models SIMPLE_PINHOLE
  (f cx cy), PINHOLE (fx fy cx cy), SIMPLE_RADIAL (f cx cy k), RADIAL (f cx cy k1 k2), OPENCV
  (fx fy cx cy k1 k2 p1 p2), FULL_OPENCV (fx fy cx cy k1 k2 p1 p2 k3 k4 k5 k6). COLMAP's
  intrinsics already use the pixel-centre convention (no shift).
* ``images``: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then the 2D points (in text, a
  possibly empty second line). (QW..QZ, T) is world-to-camera, OpenCV axes. COLMAP >= 3.12 (and
  4) also write ``rigs`` / ``frames``; its writer still stores each registered image's composed
  cam_from_world in ``images``, so those files are not needed and are ignored.
* ``points3D``: ``POINT3D_ID X Y Z R G B ERROR TRACK[]`` -> the scene's ``points3D.ply``.

The binary layouts follow COLMAP's ``reconstruction_io_binary.cc`` (little endian).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from ...errors import LabelsplatError
from ...io import IMAGE_EXTENSIONS, check_regular_file
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


def resolve_model_dir(src: str | Path) -> tuple[Path, str]:
    """The model folder and its kind (``"bin"`` or ``"txt"``; binary first, as COLMAP does)."""
    src = Path(src)
    if src.is_file():
        src = src.parent
    if not src.is_dir():
        raise LabelsplatError("COLMAP model folder not found", path=src)
    for cand in (src, src / "sparse" / "0", src / "sparse", src / "0"):
        for kind in ("bin", "txt"):
            if (cand / f"cameras.{kind}").is_file() and (cand / f"images.{kind}").is_file():
                return cand, kind
    raise LabelsplatError(
        "no cameras.txt + images.txt (or cameras.bin + images.bin) here: not a COLMAP model folder", path=src
    )


def _data_lines(path: Path) -> list[tuple[int, str]]:
    check_regular_file(path, "COLMAP file")  # a FIFO or device would hang or never end
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


CameraEntry = tuple[np.ndarray, int, int, "Distortion | None", str]


def _camera_entry(model: str, width: int, height: int, params: np.ndarray, cam_id: int, where: str, path: Path) -> CameraEntry:
    """Checked (K pixel-centre, width, height, distortion, model) for one camera record."""
    if model not in CAMERA_MODELS:
        raise LabelsplatError(
            f"{where}: camera model {model} is not supported (supported: {', '.join(CAMERA_MODELS)})",
            path=path,
            hint="undistort first with `colmap image_undistorter` (gives PINHOLE cameras) and import that model",
        )
    n, dist_model = CAMERA_MODELS[model]
    if len(params) != n:
        raise LabelsplatError(f"{where}: {model} takes {n} parameters, got {len(params)}", path=path)
    if not np.all(np.isfinite(params)):
        raise LabelsplatError(f"{where}: camera parameters contain NaN or infinite values", path=path)
    if width <= 0 or height <= 0:
        raise LabelsplatError(f"{where}: width and height must be positive", path=path)
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        f, cx, cy = params[:3]
        fx = fy = f
        rest = params[3:]
    else:
        fx, fy, cx, cy = params[:4]
        rest = params[4:]
    K = check_intrinsics([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], f"camera {cam_id} ({where})", path, shift=0.0)
    dist = Distortion(dist_model, tuple(rest)) if dist_model else None
    return K, int(width), int(height), dist, model


def read_cameras(path: Path) -> dict[int, CameraEntry]:
    """cameras.txt: camera id -> (K pixel-centre, width, height, distortion, model)."""
    cams: dict[int, CameraEntry] = {}
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
        if cam_id in cams:
            raise LabelsplatError(f"line {lineno}: duplicate CAMERA_ID {cam_id}", path=path)
        params = _floats(parts[4:], path, lineno, "camera parameters")
        cams[cam_id] = _camera_entry(parts[1].upper(), width, height, params, cam_id, f"line {lineno}", path)
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
    from scipy.spatial.transform import Rotation  # lazy: scipy.spatial (~0.3 s), only when writing COLMAP models

    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return q if q[0] >= 0 else -q


ImageEntry = tuple[int, str, np.ndarray, int, str]


def _image_entry(image_id: int, q: np.ndarray, t: np.ndarray, cam_id: int, name: str, where: str, path: Path) -> ImageEntry:
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))):
        raise LabelsplatError(f"{where}: image {name!r} has a NaN or infinite pose", path=path)
    if np.linalg.norm(q) < 1e-8:
        raise LabelsplatError(f"{where}: image {name!r} has a zero quaternion (singular rotation)", path=path)
    m = np.eye(4)
    m[:3, :3] = qvec_to_rotation(q)
    m[:3, 3] = t
    return image_id, name, check_extrinsics(m, f"image {name!r} ({where})", path), cam_id, where


def _is_points2d_line(s: str) -> bool:
    """A POINTS2D line: empty, or triples ``X Y POINT3D_ID`` (numbers only). An image line is told
    apart by its NAME (not a number) or, for a numeric NAME, by its 10 tokens (not a multiple of 3)."""
    parts = s.split()
    if len(parts) % 3:
        return False
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


_NUM_IMAGES = re.compile(r"#\s*Number of images:\s*(\d+)")


def read_images(path: Path) -> list[ImageEntry]:
    """images.txt: [(image id, NAME, w2c 4x4, camera id, where)] in file order.

    Each image line is normally followed by its POINTS2D line (possibly empty); files written
    without those lines are read too. A ``# Number of images: N`` header is checked against the
    images found."""
    lines = _data_lines(path)
    out = []
    declared = None
    i = 0
    while i < len(lines):
        lineno, line = lines[i]
        s = line.strip()
        i += 1
        if s.startswith("#") and (m := _NUM_IMAGES.match(s)):
            declared = int(m.group(1))
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) < 10:
            raise LabelsplatError(
                f"line {lineno}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {s[:80]!r}", path=path
            )
        if i < len(lines) and _is_points2d_line(lines[i][1].strip()):
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
        out.append(_image_entry(image_id, q, t, cam_id, " ".join(parts[9:]), f"line {lineno}", path))
    if not out:
        raise LabelsplatError("no images in images.txt", path=path)
    if declared is not None and declared != len(out):
        raise LabelsplatError(f"the header says {declared} images but {len(out)} image lines were read", path=path,
                              hint="the file is truncated or malformed: export the model again")
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


# ----------------------------------------------------------------------------- binary models
#: COLMAP's CameraModelId values (src/colmap/sensor/models.h) for the supported models
_MODEL_IDS = {0: "SIMPLE_PINHOLE", 1: "PINHOLE", 2: "SIMPLE_RADIAL", 3: "RADIAL", 4: "OPENCV", 6: "FULL_OPENCV"}
_OTHER_MODEL_IDS = {
    5: "OPENCV_FISHEYE", 7: "FOV", 8: "SIMPLE_RADIAL_FISHEYE", 9: "RADIAL_FISHEYE", 10: "THIN_PRISM_FISHEYE",
    11: "RAD_TAN_THIN_PRISM_FISHEYE",
}


class _Binary:
    """Little-endian reader over a whole file with 'truncated file' errors naming it."""

    def __init__(self, path: Path):
        check_regular_file(path, "COLMAP file")  # a FIFO or device would hang or never end
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise LabelsplatError(f"cannot read the file ({exc.strerror})", path=path) from exc
        self.path, self.off = path, 0

    def take(self, fmt: str):
        try:
            vals = struct.unpack_from("<" + fmt, self.data, self.off)
        except struct.error as exc:
            raise LabelsplatError(f"truncated or corrupt binary file (at byte {self.off})", path=self.path) from exc
        self.off += struct.calcsize("<" + fmt)
        return vals

    def skip(self, nbytes: int) -> None:
        if self.off + nbytes > len(self.data):
            raise LabelsplatError(f"truncated or corrupt binary file (at byte {self.off})", path=self.path)
        self.off += nbytes

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.off)
        if end < 0:
            raise LabelsplatError("truncated binary file (unterminated image name)", path=self.path)
        raw, self.off = self.data[self.off:end], end + 1
        return raw.decode("utf-8", errors="replace")


def read_cameras_bin(path: Path) -> dict[int, CameraEntry]:
    """cameras.bin: u64 count; per camera u32 id, i32 model id, u64 width, u64 height, f64 params."""
    b = _Binary(path)
    (n,) = b.take("Q")
    cams: dict[int, CameraEntry] = {}
    for k in range(n):
        cam_id, model_id, width, height = b.take("IiQQ")
        where = f"record {k}"
        if model_id not in _MODEL_IDS:
            name = _OTHER_MODEL_IDS.get(model_id, f"id {model_id}")
            raise LabelsplatError(
                f"{where}: camera model {name} is not supported (supported: {', '.join(CAMERA_MODELS)})",
                path=path,
                hint="undistort first with `colmap image_undistorter` (gives PINHOLE cameras) and import that model",
            )
        model = _MODEL_IDS[model_id]
        params = np.array(b.take("d" * CAMERA_MODELS[model][0]), dtype=np.float64)
        if cam_id in cams:
            raise LabelsplatError(f"{where}: duplicate camera id {cam_id}", path=path)
        cams[cam_id] = _camera_entry(model, width, height, params, cam_id, where, path)
    if not cams:
        raise LabelsplatError("no cameras in cameras.bin", path=path)
    return cams


def read_images_bin(path: Path) -> list[ImageEntry]:
    """images.bin: u64 count; per image u32 id, f64 qw qx qy qz tx ty tz, u32 camera id, NAME\\0,
    u64 n2d, n2d x (f64 x, f64 y, u64 point3D id)."""
    b = _Binary(path)
    (n,) = b.take("Q")
    out = []
    for k in range(n):
        image_id, qw, qx, qy, qz, tx, ty, tz, cam_id = b.take("I7dI")
        name = b.cstring()
        (n2d,) = b.take("Q")
        b.skip(24 * n2d)
        out.append(_image_entry(image_id, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cam_id, name, f"record {k}", path))
    if not out:
        raise LabelsplatError("no images in images.bin", path=path)
    return out


def read_points3d_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """points3D.bin: u64 count; per point u64 id, f64 xyz, u8 rgb, f64 error, u64 track length,
    track x (u32 image id, u32 point2D index)."""
    b = _Binary(path)
    (n,) = b.take("Q")
    xyz = np.empty((n, 3))
    rgb = np.empty((n, 3), dtype=np.uint8)
    for k in range(n):
        vals = b.take("Q3d3BdQ")
        xyz[k], rgb[k] = vals[1:4], vals[4:7]
        b.skip(8 * vals[8])
    if not np.all(np.isfinite(xyz)):
        raise LabelsplatError("point coordinates contain NaN or infinite values", path=path)
    return xyz, rgb


def frame_name(image_name: str) -> str:
    """A flat frame name for a COLMAP image NAME (sub-folders joined with '__', no extension)."""
    p = Path(image_name)
    return p.with_suffix("").as_posix().replace("/", "__")


def _report_unregistered(images: Path, names: set[str], report: ImportReport) -> None:
    """Images in the folder that the model does not list (COLMAP did not register them) are
    reported as skipped, each with that reason."""
    files = sorted(p.relative_to(images).as_posix() for p in images.rglob("*")
                   if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    unregistered = [f for f in files if f not in names]
    for f in unregistered:
        report.skipped.append(f"{f} (in the images folder but not in the COLMAP model: not registered)")
    if unregistered:
        report.notes.append(f"skipped {len(unregistered)} of {len(files)} image(s) of the folder that the model does not "
                            f"register, e.g. {unregistered[:3]}")


def read_colmap(
    src: str | Path, images_dir: str | Path, labels_dir: str | Path | None, report: ImportReport
) -> tuple[list[SourceView], Path, tuple[np.ndarray, np.ndarray] | None]:
    """Parse a COLMAP text model into views (image order by NAME) and its point cloud."""
    model, kind = resolve_model_dir(src)
    images = Path(images_dir)
    if not images.is_dir():
        raise LabelsplatError("images folder not found", path=images)
    for extra in (f"rigs.{kind}", f"frames.{kind}"):
        if (model / extra).is_file():
            report.notes.append(f"{extra} present (COLMAP >= 3.12); poses taken from images.{kind}")
    cams_path, imgs_path, pts_path = model / f"cameras.{kind}", model / f"images.{kind}", model / f"points3D.{kind}"
    if kind == "bin":
        report.notes.append("binary COLMAP model")
        cams, images_list = read_cameras_bin(cams_path), read_images_bin(imgs_path)
    else:
        cams, images_list = read_cameras(cams_path), read_images(imgs_path)
    views: list[SourceView] = []
    missing: list[str] = []
    for image_id, name, w2c, cam_id, where in sorted(images_list, key=lambda r: r[1]):
        if cam_id not in cams:
            raise LabelsplatError(f"{where}: image {name!r} uses CAMERA_ID {cam_id}, not in {cams_path.name}", path=imgs_path)
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
    _report_unregistered(images, {name for _, name, *_ in images_list}, report)
    points = None
    if pts_path.is_file():
        points = read_points3d_bin(pts_path) if kind == "bin" else read_points3d(pts_path)
    else:
        report.notes.append(f"no {pts_path.name}: the scene has no point cloud")
    return views, imgs_path, points
