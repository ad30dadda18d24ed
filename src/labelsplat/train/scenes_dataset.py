"""``labelsplat dataset from-scenes``: a training set in the dataset layout from scene directories.

Each frame of each scene becomes one view: its image and its labels (``gt_label_path`` with
``labels="gt"``, ``label_path`` with ``labels="noisy"``), converted to the first scene's
label scheme when the scenes differ, written with :class:`labelsplat.dataset.export.DatasetWriter`
(``images/``, ``labels/``, ``overlays/``, ``transforms.json``, ``manifest.json``). View names
are ``<scene>_<frame>``; yaw/pitch (degrees, docs/design.md convention) come from the scene's head
frame (``None`` without one). With ``crop`` (default) and a head frame, each view is cropped
around the projected head centre exactly as ``labelsplat parse`` crops scene views
(:func:`labelsplat.parsers.preprocess.face_crop_box`), so a parser trained on the result sees
the framing it will get at inference; the crop's camera (principal point shifted, size of the
crop) is what ``transforms.json`` records. Crops are then resized to one size (``crop_size``,
default the median crop side; image bilinear, labels nearest, camera scaled with them), so the
dataset does not mix sizes; a view whose head is too large (or out of view) for the crop gets the
largest square around the projected head centre instead. ``max_abs_yaw`` keeps only views with
|yaw| < that many degrees (e.g. 30 for a frontal-only baseline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..dataset.export import DatasetWriter
from ..errors import LabelsplatError
from ..io import read_label, read_rgb
from ..parsers.preprocess import (DEFAULT_CROP_RADIUS_CM, CropBox, face_crop_box, resize_labels, resize_rgb,
                                  scene_units_per_cm)
from ..scene import Camera, load_scene, yaw_pitch
from ..schemes import convert_labels, get_scheme


@dataclass
class FromScenesSummary:
    out: Path
    n_views: int
    n_skipped_yaw: int
    n_cropped: int
    label_scheme: str


def _safe(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "x"
    return s if s[0].isalnum() else "x" + s


def _crop_box(cam: Camera, head_center, radius: float) -> CropBox:
    """The face crop of ``parse``, or (head too large for it, or out of view) the largest square
    around the projected head centre."""
    box = face_crop_box(cam, head_center, radius)
    if box is not None:
        return box
    side = min(cam.width, cam.height)
    uv, z = cam.project(np.asarray(head_center, dtype=np.float64).reshape(1, 3))
    u, v = (uv[0] if z[0] > 0 and np.all(np.isfinite(uv)) else (cam.width / 2, cam.height / 2))
    x0 = min(max(int(round(u - side / 2)), 0), cam.width - side)
    y0 = min(max(int(round(v - side / 2)), 0), cam.height - side)
    return CropBox(x0, y0, x0 + side, y0 + side)


def _frame_view(sc, fr, key: str, scheme, yaw: float | None, pitch: float | None, box: CropBox | None,
                size: int | None):
    """One frame as a dataset view: (rgb, labels in ``scheme``, camera, metadata), cropped to
    ``box`` and resized to ``size`` x ``size`` when given."""
    src_scheme = get_scheme(sc.label_scheme)
    head = sc.head_frame
    if not fr.file_path:
        raise LabelsplatError(f"frame {fr.name!r} has no file_path", path=sc.root)
    img_path = sc.path(fr.file_path)
    rgb = read_rgb(img_path)
    lab_path = sc.path(getattr(fr, key))
    lab = read_label(lab_path, src_scheme.num_classes, shape=rgb.shape[:2])
    if src_scheme.name != scheme.name:
        lab = convert_labels(lab, src_scheme, scheme)
    cam = fr.camera
    if (cam.width, cam.height) != (rgb.shape[1], rgb.shape[0]):
        raise LabelsplatError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but frame {fr.name!r} says "
                              f"{cam.width}x{cam.height}", path=img_path)
    meta = {"source_scene": sc.name, "source_frame": fr.name, "yaw": yaw, "pitch": pitch, "label_source": key}
    if head is not None:
        meta["head_frame"] = head.to_dict()
    if box is not None:
        rgb = np.ascontiguousarray(rgb[box.y0 : box.y1, box.x0 : box.x1])
        lab = np.ascontiguousarray(lab[box.y0 : box.y1, box.x0 : box.x1])
        cam = Camera(cam.fx, cam.fy, cam.cx - box.x0, cam.cy - box.y0, box.width, box.height, cam.c2w)
        meta["crop_box"] = box.to_list()
        if size is not None and box.width != size:
            rgb, lab = resize_rgb(rgb, (size, size)), resize_labels(lab, (size, size))
            cam = cam.scaled(size / box.width)
            cam.width = cam.height = size
            meta["crop_resized_to"] = size
    return rgb, lab, cam, meta


def _kept_views(loaded, max_abs_yaw: float | None, crop: bool, crop_radius: float | None):
    """[(scene, frame, yaw, pitch, crop box or None)] of the views kept by ``max_abs_yaw``, and the
    number skipped."""
    kept, n_skip = [], 0
    for sc in loaded:
        head = sc.head_frame
        radius = None
        if crop and head is not None:
            radius = float(crop_radius) if crop_radius is not None else DEFAULT_CROP_RADIUS_CM * scene_units_per_cm(sc)
        for fr in sc.frames:
            yaw = pitch = None
            if head is not None:
                yaw, pitch = yaw_pitch(fr.camera.center, head)
            if max_abs_yaw is not None:
                if yaw is None:
                    raise LabelsplatError("--max-yaw needs the scene's head_frame", path=sc.root)
                if abs(yaw) >= max_abs_yaw:
                    n_skip += 1
                    continue
            kept.append((sc, fr, yaw, pitch, _crop_box(fr.camera, head.center, radius) if radius is not None else None))
    return kept, n_skip


def dataset_from_scenes(
    scenes: Sequence[str | Path],
    out: str | Path,
    *,
    labels: str = "gt",
    crop: bool = True,
    crop_radius: float | None = None,
    crop_size: int | None = None,
    max_abs_yaw: float | None = None,
    overwrite: bool = False,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> FromScenesSummary:
    """Build the dataset (see the module doc); returns counts. Atomic: all or nothing."""
    if labels not in ("gt", "noisy"):
        raise LabelsplatError(f"--labels must be gt or noisy, got {labels!r}")
    if not scenes:
        raise LabelsplatError("no scenes given")
    loaded = [load_scene(s) for s in scenes]
    scheme = get_scheme(loaded[0].label_scheme)
    key = "gt_label_path" if labels == "gt" else "label_path"
    for sc in loaded:
        missing = [f.name for f in sc.frames if getattr(f, key) is None]
        if missing:
            raise LabelsplatError(
                f"{len(missing)} frames have no {key} (e.g. {missing[0]!r})", path=sc.root,
                hint="use --labels noisy for parser labels (label_path)" if labels == "gt"
                else "run `labelsplat parse SCENE --weights W` first",
            )
    safe = [_safe(sc.name) for sc in loaded]
    if len(set(safe)) != len(safe):
        safe = [f"{n}-{i}" for i, n in enumerate(safe)]
    names = {id(sc): n for sc, n in zip(loaded, safe)}
    config = {"scenes": [str(sc.root) for sc in loaded], "labels": labels, "crop": crop, "crop_radius": crop_radius,
              "max_abs_yaw": max_abs_yaw}
    kept, n_skip = _kept_views(loaded, max_abs_yaw, crop, crop_radius)
    sides = [box.width for *_, box in kept if box is not None]
    if crop_size is not None and int(crop_size) < 8:
        raise LabelsplatError(f"--crop-size must be at least 8 px, got {crop_size}")
    size = int(crop_size) if crop_size is not None else (int(np.median(sides)) if sides else None)
    config["crop_size"] = size
    n_views = n_crop = 0
    heads = [sc.head_frame.to_dict() if sc.head_frame is not None else None for sc in loaded]
    common_head = loaded[0].head_frame if all(h == heads[0] for h in heads) else None
    with DatasetWriter(out, scheme, overwrite=overwrite, head_frame=common_head, config=config, seed=seed,
                       val_fraction=val_fraction) as writer:
        for sc, fr, yaw, pitch, box in kept:
            rgb, lab, cam, meta = _frame_view(sc, fr, key, scheme, yaw, pitch, box, size)
            n_crop += "crop_box" in meta
            writer.add_view(f"{names[id(sc)]}_{_safe(fr.name)}", rgb, lab, None, cam, meta)
            n_views += 1
        if n_views == 0:
            raise LabelsplatError(f"no view left: all {n_skip} views have |yaw| >= {max_abs_yaw}",
                                  hint="raise --max-yaw or drop it")
    return FromScenesSummary(Path(out), n_views, n_skip, n_crop, scheme.name)
