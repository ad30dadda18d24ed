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
crop) is what ``transforms.json`` records. ``max_abs_yaw`` keeps only views with
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
from ..parsers.preprocess import DEFAULT_CROP_RADIUS_CM, face_crop_box, scene_units_per_cm
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


def _frame_view(sc, fr, key: str, scheme, yaw: float | None, pitch: float | None, radius: float | None):
    """One frame as a dataset view: (rgb, labels in ``scheme``, camera, metadata), cropped around
    the head centre when ``radius`` is given."""
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
    box = face_crop_box(cam, head.center, radius) if radius is not None else None
    meta = {"source_scene": sc.name, "source_frame": fr.name, "yaw": yaw, "pitch": pitch, "label_source": key}
    if head is not None:
        meta["head_frame"] = head.to_dict()
    if box is not None:
        rgb = np.ascontiguousarray(rgb[box.y0 : box.y1, box.x0 : box.x1])
        lab = np.ascontiguousarray(lab[box.y0 : box.y1, box.x0 : box.x1])
        cam = Camera(cam.fx, cam.fy, cam.cx - box.x0, cam.cy - box.y0, box.width, box.height, cam.c2w)
        meta["crop_box"] = box.to_list()
    return rgb, lab, cam, meta


def dataset_from_scenes(
    scenes: Sequence[str | Path],
    out: str | Path,
    *,
    labels: str = "gt",
    crop: bool = True,
    crop_radius: float | None = None,
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
    names = [_safe(sc.name) for sc in loaded]
    if len(set(names)) != len(names):
        names = [f"{n}-{i}" for i, n in enumerate(names)]
    config = {"scenes": [str(sc.root) for sc in loaded], "labels": labels, "crop": crop, "crop_radius": crop_radius,
              "max_abs_yaw": max_abs_yaw}
    n_views = n_skip = n_crop = 0
    heads = [sc.head_frame.to_dict() if sc.head_frame is not None else None for sc in loaded]
    common_head = loaded[0].head_frame if all(h == heads[0] for h in heads) else None
    with DatasetWriter(out, scheme, overwrite=overwrite, head_frame=common_head, config=config, seed=seed,
                       val_fraction=val_fraction) as writer:
        for sc, sname in zip(loaded, names):
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
                rgb, lab, cam, meta = _frame_view(sc, fr, key, scheme, yaw, pitch, radius)
                n_crop += "crop_box" in meta
                writer.add_view(f"{sname}_{_safe(fr.name)}", rgb, lab, None, cam, meta)
                n_views += 1
        if n_views == 0:
            raise LabelsplatError(f"no view left: all {n_skip} views have |yaw| >= {max_abs_yaw}",
                                  hint="raise --max-yaw or drop it")
    return FromScenesSummary(Path(out), n_views, n_skip, n_crop, scheme.name)
