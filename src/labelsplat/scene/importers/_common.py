"""Shared importer machinery: checked camera matrices and the canonical scene writer.

Every importer parses its calibration into :class:`SourceView` records (intrinsics already in
the pixel-centre convention, world-to-camera in the OpenCV convention, the source's
distortion) and hands them to :func:`write_scene`, which copies / hard-links / undistorts the
images, labels and masks into ``OUT`` (built in a temporary sibling and renamed at the end)
and writes ``transforms.json``.
"""

from __future__ import annotations

import io as _io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from plyfile import PlyData, PlyElement

from ...errors import LabelsplatError
from ...io import (IMAGE_EXTENSIONS, atomic_dir, atomic_write_bytes, is_vacant_dir, read_label, read_rgb, write_jpg,
                   write_png)
from ..camera import Camera, HeadFrame
from ..distortion import Distortion, undistort_image, undistort_label
from ..format import Frame, Scene, save_scene
from ..paths import check_name
from ..headframe import estimate_head_frame_detailed, parse_head_frame
from ..validate import image_header, image_size, scheme_num_classes, scheme_palette, validate_scene

OPENCV_TO_PIXEL_CENTER = 0.5  # OpenCV puts the first pixel centre at 0; docs/design.md at 0.5


@dataclass
class SourceView:
    """One calibrated source image, before it is written into the scene.

    ``K`` (3x3) is in the pixel-centre convention (OpenCV-convention sources add 0.5 to
    cx, cy before building this); ``w2c`` is 4x4 world-to-camera, OpenCV axes (x right,
    y down, z forward), in source world units. ``width``/``height`` are the calibrated size
    if the source states it (checked against the image), else taken from the image.
    ``label``/``mask`` are filled by :func:`write_scene` from the labels/masks folders unless
    an importer sets them (``mask_nonzero``: any non-zero mask value means foreground).
    """

    name: str
    image: Path
    K: np.ndarray
    w2c: np.ndarray
    width: int | None = None
    height: int | None = None
    distortion: Distortion | None = None
    where: str = ""
    label: Path | None = None
    mask: Path | None = None
    mask_nonzero: bool = False  # the source's masks mean "non-zero = use" (nerfstudio): stored as 0/255


@dataclass
class ImportReport:
    """What an import did, stored in ``transforms.json`` under ``import``."""

    format: str
    source: str
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "source": self.source, "notes": self.notes, "skipped": self.skipped}


# ----------------------------------------------------------------------------- matrix checks
def as_matrix(value: Any, shapes: tuple[tuple[int, int], ...], what: str, path: Path) -> np.ndarray:
    """A finite numeric matrix of one of ``shapes`` (flat lists of the right length accepted)."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LabelsplatError(f"{what} is not a numeric matrix", path=path) from exc
    if m.ndim == 1:
        for shape in shapes:
            if m.size == shape[0] * shape[1]:
                m = m.reshape(shape)
                break
    if m.shape not in shapes:
        want = " or ".join(f"{a}x{b}" for a, b in shapes)
        raise LabelsplatError(f"{what} has shape {m.shape}, expected {want}", path=path)
    if not np.all(np.isfinite(m)):
        raise LabelsplatError(f"{what} has NaN or infinite values", path=path)
    return m


def check_intrinsics(K: Any, what: str, path: Path, *, shift: float) -> np.ndarray:
    """Validate a pinhole K (3x3, or 4x4 whose top-left block is K) and add ``shift`` to cx, cy."""
    K = as_matrix(K, ((3, 3), (4, 4)), what, path)[:3, :3].copy()
    fx, fy = K[0, 0], K[1, 1]
    if fx <= 0 or fy <= 0:
        raise LabelsplatError(f"{what}: focal lengths must be positive, got fx={fx}, fy={fy}", path=path)
    if abs(K[1, 0]) > 1e-9 * fx or abs(K[2, 0]) > 1e-12 or abs(K[2, 1]) > 1e-12 or abs(K[2, 2] - 1.0) > 1e-9:
        raise LabelsplatError(f"{what} is not an intrinsic matrix [[fx,0,cx],[0,fy,cy],[0,0,1]]: {K.tolist()}", path=path)
    if abs(K[0, 1]) > 1e-6 * fx:
        raise LabelsplatError(f"{what}: skewed intrinsics (K[0][1] = {K[0, 1]}) are not supported", path=path)
    K[0, 1] = 0.0
    K[0, 2] += shift
    K[1, 2] += shift
    return K


def check_rotation(R: np.ndarray, what: str, path: Path) -> np.ndarray:
    """Reject singular / reflecting / non-orthonormal rotations; return the nearest rotation."""
    det = float(np.linalg.det(R))
    if abs(det) < 1e-8:
        raise LabelsplatError(f"{what}: the rotation part is singular (determinant {det:.3g})", path=path)
    if det < 0:
        raise LabelsplatError(f"{what}: the rotation part is a reflection (determinant {det:.3g}), not a rotation", path=path)
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > 1e-3:
        raise LabelsplatError(
            f"{what}: the rotation part is not orthonormal (max |R^T R - I| = {err:.3g}); scaled or sheared poses are not supported",
            path=path,
        )
    u, _, vt = np.linalg.svd(R)
    return u @ vt


def check_extrinsics(M: Any, what: str, path: Path) -> np.ndarray:
    """A world-to-camera matrix (3x4 or 4x4) -> checked 4x4."""
    m = as_matrix(M, ((3, 4), (4, 4)), what, path)
    if m.shape == (4, 4):
        if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-9):
            raise LabelsplatError(f"{what}: the last row of a 4x4 pose must be [0, 0, 0, 1], got {m[3].tolist()}", path=path)
        m = m[:3]
    out = np.eye(4)
    out[:3, :3] = check_rotation(m[:3, :3], what, path)
    out[:3, 3] = m[:3, 3]
    return out


def check_size(value: Any, what: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0 or int(value) != value:
        raise LabelsplatError(f"{what} must be a positive integer, got {value!r}", path=path)
    return int(value)


# ----------------------------------------------------------------------------- files
def find_by_stem(folder: Path, stem: str, *, exts: tuple[str, ...] = IMAGE_EXTENSIONS) -> Path | None:
    """The single file ``folder/<stem><ext>`` for an image extension (any case); error if ambiguous."""
    seen: set[tuple[int, int]] = set()
    hits: list[Path] = []
    for e in exts:
        for cand in (folder / f"{stem}{e}", folder / f"{stem}{e.upper()}"):
            if cand.is_file():
                st = cand.stat()
                if (st.st_dev, st.st_ino) not in seen:  # one file seen twice on case-insensitive systems
                    seen.add((st.st_dev, st.st_ino))
                    hits.append(cand)
    if len(hits) > 1:
        raise LabelsplatError(
            f"ambiguous: several files for '{stem}': {[h.name for h in hits]}", path=folder, hint="keep one file per view"
        )
    return hits[0] if hits else None


def _place(src: Path, dst: Path, link: bool, notes: list[str]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError as exc:
            msg = f"hard link failed ({exc.strerror}); copied instead"
            if msg not in notes:
                notes.append(msg)
    shutil.copyfile(src, dst)


def _write_image(dst_stem: Path, src: Path, arr: np.ndarray) -> Path:
    ext = src.suffix.lower()
    if ext in (".jpg", ".jpeg"):
        return write_jpg(dst_stem.with_suffix(ext), arr, quality=95)
    return write_png(dst_stem.with_suffix(".png"), arr)


def write_ply_points(path: Path, xyz: np.ndarray, rgb: np.ndarray | None = None) -> Path:
    """Write a point cloud (N, 3) float with optional (N, 3) uint8 colours as a binary PLY."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    data = np.empty(len(xyz), dtype=fields)
    data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is not None:
        rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
        data["red"], data["green"], data["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    buf = _io.BytesIO()
    PlyData([PlyElement.describe(data, "vertex")], text=False).write(buf)
    return atomic_write_bytes(path, buf.getvalue())


def _read_mask(path: Path, shape: tuple[int, int], nonzero: bool = False) -> np.ndarray:
    """A mask as uint8 (H, W): grey value, or the max over channels of a colour image (0 = background);
    ``nonzero``: every non-zero value becomes 255 (sources whose masks are 0/1)."""
    arr = read_rgb(path).max(axis=2)
    if arr.shape != shape:
        raise LabelsplatError(f"mask size {arr.shape[1]}x{arr.shape[0]} differs from its image {shape[1]}x{shape[0]}", path=path)
    return np.where(arr > 0, 255, 0).astype(np.uint8) if nonzero else arr


# ----------------------------------------------------------------------------- label maps
@dataclass(frozen=True)
class LabelReader:
    """How source label maps become the scene's class-id PNGs: single-channel maps of ids are
    copied as they are; colour-coded maps (RGB, or palette mode with the scheme's colours) are
    decoded by the scheme's palette (:func:`labelsplat.io.read_label`; a colour outside it is
    refused naming the file and the colour) and written as ids."""

    num_classes: int
    palette: np.ndarray | None = None

    @classmethod
    def for_scheme(cls, scheme: Any, source: Path) -> "LabelReader":
        return cls(scheme_num_classes(scheme, source=source), scheme_palette(scheme))

    def read(self, path: Path, shape: tuple[int, int]) -> np.ndarray:
        return read_label(path, self.num_classes, shape=shape, palette=self.palette)

    @staticmethod
    def holds_ids(path: Path) -> bool:
        """A single-channel PNG (class ids as they are), which is copied unchanged."""
        with Image.open(path) as img:
            return path.suffix.lower() == ".png" and img.mode == "L"


# ----------------------------------------------------------------------------- the writer
def _check_output(out: Path, overwrite: bool, views: list[SourceView], calib_path: Path) -> bool:
    """The ``overwrite`` to use (an existing empty folder counts as absent); refuses an existing
    output before the slow checks (``atomic_dir`` checks again) and an empty view list."""
    if is_vacant_dir(out):
        overwrite = True  # an existing empty folder (or one a killed import left holding its lock) is fine
    if out.exists() and not overwrite:
        raise LabelsplatError("the output already exists", path=out, hint="pass --overwrite or choose another path")
    if not views:
        raise LabelsplatError("no usable cameras to import", path=calib_path)
    return overwrite


def _view_camera(v: SourceView, calib_path: Path) -> Camera:
    """The camera of a view, after checking its image against the calibration (size, principal point)."""
    if not v.image.is_file():
        raise LabelsplatError(f"{v.where}: image not found", path=v.image)
    w, h = image_size(v.image)
    if v.width is not None and (v.width, v.height) != (w, h):
        raise LabelsplatError(
            f"{v.where}: the image is {w}x{h} but {calib_path.name} says {v.width}x{v.height}",
            path=v.image,
            hint="use the images the calibration belongs to (resized images need rescaled intrinsics)",
        )
    fx, fy, cx, cy = v.K[0, 0], v.K[1, 1], v.K[0, 2], v.K[1, 2]
    off_centre = abs(cx / w - 0.5) > 0.3 or abs(cy / h - 0.5) > 0.3
    if not (0 < cx < w and 0 < cy < h) or (v.width is None and off_centre):
        # calibrations without an image size (NeRSemble) cannot be checked against the image
        # directly: a principal point far from the centre means the images were resized
        raise LabelsplatError(
            f"{v.where}: the principal point ({cx:.1f}, {cy:.1f}) is outside or far from the centre of the {w}x{h} image: "
            f"the calibration is probably for another resolution (about {2 * cx / w:.2f}x this image)",
            path=calib_path,
            hint="import the images at the calibrated resolution",
        )
    return Camera.from_w2c_opencv(v.w2c, fx, fy, cx, cy, w, h)


def _check_views(views: list[SourceView], calib_path: Path, labels_dir: Path | None, masks_dir: Path | None,
                 labels: LabelReader) -> list[Camera]:
    """Pass 1, before anything is written: every view's camera, and its label and mask found
    (in ``labels_dir`` / ``masks_dir`` by name when not given) and readable."""
    cams: list[Camera] = []
    missing_labels: list[str] = []
    missing_masks: list[str] = []
    for v in views:
        cams.append(_view_camera(v, calib_path))
        if labels_dir is not None and v.label is None:
            v.label = find_by_stem(labels_dir, v.name, exts=(".png",))
            if v.label is None:
                missing_labels.append(v.name)
        if masks_dir is not None and v.mask is None:
            v.mask = find_by_stem(masks_dir, v.name)
            if v.mask is None:
                missing_masks.append(v.name)
    for missing, d, what in ((missing_labels, labels_dir, "label"), (missing_masks, masks_dir, "mask")):
        if missing:
            raise LabelsplatError(
                f"no {what} PNG for {len(missing)} of {len(views)} images, e.g. {missing[:5]} (expected <name>.png)",
                path=d,
                hint=f"give one {what} per image named like the image, or import without it",
            )
    for v, cam in zip(views, cams):
        if v.label is not None:
            labels.read(v.label, (cam.height, cam.width))
        if v.mask is not None:
            _read_mask(v.mask, (cam.height, cam.width), v.mask_nonzero)
    return cams


def _scene_head_frame(head: HeadFrame | None, cams: list[Camera], calib_path: Path, report: ImportReport) -> HeadFrame:
    """The given head frame, or one estimated from the cameras; the report notes which."""
    if head is not None:
        report.notes.append("head frame given")
        return head
    est = estimate_head_frame_detailed(cams, source=calib_path)
    report.notes.append(
        f"head frame estimated from the cameras (frontal-hemisphere rig assumed; widest camera "
        f"{est.max_angle_deg:.0f} deg from the mean direction, optical axes within {est.axis_rms:.3g} units RMS "
        f"of the centre{f', {est.rolled_cameras} rolled camera(s)' if est.rolled_cameras else ''})"
    )
    return est.head


def _write_view(v: SourceView, cam: Camera, tmp: Path, labels: LabelReader, link: bool, notes: list[str]) -> Frame:
    """Pass 2 for one view: its image, label and mask under ``tmp``, copied (or linked) as they
    are, or undistorted to the pinhole camera when the view has distortion (a colour-coded label
    map is written as class ids)."""
    extra: dict[str, Any] = {}
    dist = v.distortion if v.distortion is not None and not v.distortion.is_zero else None
    lbl_dst = msk_dst = None
    if dist is None:
        img_dst = tmp / "images" / f"{v.name}{v.image.suffix.lower()}"
        tag = image_header(v.image)[2]
        if tag != 1:  # stored upright, so no reader has to apply the EXIF tag again
            img_dst = _write_image(tmp / "images" / v.name, v.image, read_rgb(v.image))
            extra["exif_orientation_applied"] = tag
        else:
            _place(v.image, img_dst, link, notes)
        if v.label is not None and labels.holds_ids(v.label):
            lbl_dst = tmp / "labels" / f"{v.name}.png"
            _place(v.label, lbl_dst, link, notes)
        elif v.label is not None:
            lbl_dst = write_png(tmp / "labels" / f"{v.name}.png", labels.read(v.label, (cam.height, cam.width)))
            extra["label_colours_decoded"] = True
        if v.mask is not None:
            msk_dst = tmp / "masks" / f"{v.name}.png"
            if v.mask.suffix.lower() == ".png" and not v.mask_nonzero and image_header(v.mask)[2] == 1:
                _place(v.mask, msk_dst, link, notes)
            else:
                write_png(msk_dst, _read_mask(v.mask, (cam.height, cam.width), v.mask_nonzero))
    else:
        img_dst = _write_image(tmp / "images" / v.name, v.image, undistort_image(read_rgb(v.image), cam.K, dist, fill=0))
        if v.label is not None:
            lbl = labels.read(v.label, (cam.height, cam.width))
            lbl_dst = write_png(tmp / "labels" / f"{v.name}.png", undistort_label(lbl, cam.K, dist, fill=255))
        if v.mask is not None:
            msk = _read_mask(v.mask, (cam.height, cam.width), v.mask_nonzero)
            msk_dst = write_png(tmp / "masks" / f"{v.name}.png", undistort_label(msk, cam.K, dist, fill=0))
        extra["distortion_removed"] = dist.to_dict()

    def rel(p: Path | None) -> str | None:
        return None if p is None else p.relative_to(tmp).as_posix()

    return Frame(name=v.name, camera=cam, file_path=rel(img_dst), label_path=rel(lbl_dst), mask_path=rel(msk_dst),
                 extra=extra)


def write_scene(
    views: list[SourceView],
    out: str | Path,
    *,
    report: ImportReport,
    calib_path: Path,
    labels_dir: str | Path | None = None,
    masks_dir: str | Path | None = None,
    head_frame: HeadFrame | dict | str | Path | None = None,
    label_scheme: str = "celebamask19-zll",
    link: bool = False,
    overwrite: bool = False,
    points: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> Scene:
    """Write ``views`` as a canonical scene directory at ``out`` and return the loaded :class:`Scene`.

    Images go to ``images/<name><ext>``, labels to ``labels/<name>.png``, masks to
    ``masks/<name>.png``. Views with non-zero distortion are undistorted to the pinhole camera
    with the same K (images bilinear, labels/masks nearest; outside the source: black / 255 /
    0) and record ``distortion_removed``; the others are copied (or hard-linked with ``link``)
    unchanged. Everything is checked before anything is written; ``out`` appears only complete.
    """
    out = Path(out)
    overwrite = _check_output(out, overwrite, views, calib_path)
    labels = LabelReader.for_scheme(label_scheme, calib_path)
    head = parse_head_frame(head_frame) if head_frame is not None else None
    labels_dir = Path(labels_dir) if labels_dir is not None else None
    masks_dir = Path(masks_dir) if masks_dir is not None else None
    for d, opt in ((labels_dir, "--labels"), (masks_dir, "--masks")):
        if d is not None and not d.is_dir():
            raise LabelsplatError(f"{opt} folder not found", path=d)
    for v in views:
        check_name(v.name, what=f"{v.where}: name" if v.where else "name", path=calib_path)
    names = [v.name for v in views]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LabelsplatError(f"duplicate frame names {dup[:5]} (two source images map to the same name)", path=calib_path)
    cams = _check_views(views, calib_path, labels_dir, masks_dir, labels)
    head = _scene_head_frame(head, cams, calib_path, report)

    # pass 2: write into a temporary sibling, rename at the end
    with atomic_dir(out, overwrite=overwrite) as tmp:
        frames = [_write_view(v, cam, tmp, labels, link, report.notes) for v, cam in zip(views, cams)]
        n_decoded = sum(bool(f.extra.pop("label_colours_decoded", False)) for f in frames)
        if n_decoded:
            report.notes.append(f"{n_decoded} colour-coded label map(s) decoded by the {label_scheme} palette")
        n_undistorted = sum("distortion_removed" in f.extra for f in frames)
        if n_undistorted:
            report.notes.append(f"{n_undistorted} of {len(views)} views undistorted to pinhole")
        ply = None
        if points is not None and len(points[0]):
            write_ply_points(tmp / "points3D.ply", points[0], points[1])
            ply = "points3D.ply"
            report.notes.append(f"{len(points[0])} points written to points3D.ply")
        scene = Scene(
            root=tmp, frames=frames, label_scheme=label_scheme, head_frame=head, ply_file_path=ply,
            extra={"import": report.to_dict()},
        )
        save_scene(scene)
        validate_scene(scene, check_label_ids=False)
    scene.root = out
    return scene
