"""``labelsplat capture``: a phone video or a folder of photos -> a canonical scene.

Steps (each reported in the scene's ``transforms.json`` under ``capture``):

1. frames: decode the video with PyAV (or read the photos), resize to ``resolution`` on the long
   side, keep the sharpest frame of each of ``frames`` temporal bins (:mod:`.frames`);
2. structure from motion with pycolmap on the CPU (:mod:`.sfm`): SIFT, sequential (video) or
   exhaustive (photos) matching, incremental mapping, the largest model;
3. head frame (given, or from triangulated face landmarks) and the normalisation similarity
   reconstruction -> scene (:mod:`.headframe`): head centre at the origin, x = subject's left,
   y = up, z = forward, 1 unit = 1 cm, as the synthetic heads;
4. optional selfie-segmentation masks (``mask_path``, used by the fit's alpha loss);
5. the scene written by the COLMAP importer's writer (:func:`labelsplat.scene.importers.write_scene`):
   images undistorted to pinhole, cameras converted from COLMAP's world-to-camera (OpenCV) to
   camera-to-world (OpenGL), sparse points as ``points3D.ply`` (``ply_file_path``).

The working folder (``work_dir``; default a temporary folder removed at the end) keeps the
selected frames, the COLMAP database and model; when it already holds a model for the same
input and settings (``capture.json``), steps 1-2 are skipped — rerunning with another head frame
is then quick.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import LabelsplatError
from ..io import atomic_write_json, is_vacant_dir, read_json, read_label, read_rgb, write_png
from ..parsers import landmarks
from ..scene import Camera, HeadFrame, Scene, load_scene, save_scene
from ..scene.distortion import undistort_image
from ..scene.headframe import parse_head_frame
from ..scene.importers import ImportReport, SourceView, write_scene
from ..scene.importers.colmap import read_colmap
from ..scene.validate import image_size
from .align import Similarity
from .frames import is_video, select_photos, select_video_frames
from .headframe import head_frame_from_landmarks, head_frame_normalisation, scale_from_cameras
from .sfm import SfmConfig, run_sfm

Log = Callable[[str], None]
CAPTURE_JSON = "capture.json"


@dataclass(frozen=True)
class CaptureConfig:
    """Settings of ``labelsplat capture``. ``frames``: frames kept (temporal bins);
    ``resolution``: long side in px (downscale only); ``min_registered``: the smallest fraction
    of frames structure from motion must register; ``mask``: compute selfie-segmentation masks
    (MediaPipe); ``min_face_fraction``: with landmark head frames, the smallest fraction of
    registered frames with a detected face; ``points_radius_cm``: sparse points farther from the
    head centre (the room behind the subject) are left out of ``points3D.ply``, which is written
    only when at least ``min_points`` remain (else the fit starts from its visual hull)."""

    frames: int = 60
    resolution: int = 512
    mask: bool = False
    min_registered: float = 0.5
    min_face_fraction: float = 0.3
    points_radius_cm: float = 30.0
    min_points: int = 100
    label_scheme: str = "celebamask19-zll"
    sfm: SfmConfig = field(default_factory=SfmConfig)

    def __post_init__(self) -> None:
        if int(self.frames) < 3:
            raise LabelsplatError(f"--frames must be at least 3, got {self.frames}")
        if int(self.resolution) < 64:
            raise LabelsplatError(f"--resolution must be at least 64 px, got {self.resolution}")
        if not 0.0 < float(self.min_registered) <= 1.0:
            raise LabelsplatError(f"min_registered must be in (0, 1], got {self.min_registered}")


def _source_key(path: Path) -> dict:
    st = path.stat()
    return {"input": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sfm_key(inp: Path, cfg: CaptureConfig) -> dict:
    key = {"source": _source_key(inp), "frames": int(cfg.frames), "resolution": int(cfg.resolution),
           "sfm": asdict(cfg.sfm)}
    return json.loads(json.dumps(key))


def prepare(inp: str | Path, work_dir: str | Path, cfg: CaptureConfig, log: Log = lambda s: None, *,
            verbose: bool = False) -> dict:
    """Steps 1-2 into ``work_dir`` (``images/``, ``database.db``, ``sparse/``, ``capture.json``);
    reused when ``capture.json`` matches the input and settings. Returns the ``capture.json`` document."""
    inp, work = Path(inp), Path(work_dir)
    if not inp.exists():
        raise LabelsplatError("input not found", path=inp, hint="give a video file or a folder of photos")
    video = is_video(inp)
    if not video and not inp.is_dir():
        raise LabelsplatError(
            f"not a video ({inp.suffix or 'no extension'}) or a folder of photos", path=inp,
            hint="supported videos: .mp4 .mov .m4v .avi .mkv .webm ...; or pass a folder of .jpg/.png photos")
    key = _sfm_key(inp, cfg)
    doc_path = work / CAPTURE_JSON
    if doc_path.is_file() and (work / "sparse" / "images.bin").is_file():
        try:
            doc = read_json(doc_path)
        except LabelsplatError:
            doc = None
        if isinstance(doc, dict) and doc.get("key") == key:
            log(f"reusing the reconstruction in {work}")
            return doc
    t0 = time.perf_counter()
    if video:
        log(f"decoding {inp.name} and picking {cfg.frames} sharp frames")
        sel = select_video_frames(inp, int(cfg.frames), int(cfg.resolution))
    else:
        log(f"reading photos from {inp}")
        sel = select_photos(inp, int(cfg.frames), int(cfg.resolution))
    t_frames = time.perf_counter() - t0
    images = work / "images"
    if images.exists():
        shutil.rmtree(images)
    names = []
    for img, idx in zip(sel.images, sel.source_index):
        name = f"frame_{idx:05d}.png"
        write_png(images / name, img)
        names.append(name)
    log(f"structure from motion on {len(names)} frames (pycolmap, CPU)")
    res = run_sfm(images, names, work, cfg.sfm, video=video, verbose=verbose)
    doc = {
        "key": key, "video": video, "frames_seen": sel.total,
        "selected": [{"name": n, "source_index": i, "source_name": s, "sharpness": round(float(q), 3)}
                     for n, i, s, q in zip(names, sel.source_index, sel.source_name, sel.sharpness)],
        "registered_names": res.registered_names,
        "sfm": {"registered": res.registered, "total": res.total, "points": res.num_points, "models": res.num_models,
                "timings_s": {k: round(v, 3) for k, v in res.timings.items()}},
        "timings_s": {"frames": round(t_frames, 3)},
    }
    atomic_write_json(doc_path, doc)
    return doc


def _check_registered(doc: dict, cfg: CaptureConfig, work: Path) -> None:
    reg, total = doc["sfm"]["registered"], doc["sfm"]["total"]
    need = max(3, int(np.ceil(cfg.min_registered * total)))
    if reg < need:
        raise LabelsplatError(
            f"structure from motion registered only {reg} of {total} frames (needs {need}); "
            f"the cameras of the other frames are unknown",
            path=work if work.exists() else None,
            hint="film a slower orbit with more overlap between frames, keep the whole head in view, avoid motion "
                 "blur and plain backgrounds; try more --frames or --matcher exhaustive")


def _undistorted(view, rgb: np.ndarray) -> np.ndarray:
    d = view.distortion
    if d is None or d.is_zero:
        return rgb
    return undistort_image(rgb, view.K, d, fill=0)


def landmark_head_frame(views, cams: list[Camera], cfg: CaptureConfig, log: Log):
    """Head frame + units per cm from MediaPipe face landmarks (needs the [mediapipe] extra)."""
    lms = []
    log(f"detecting face landmarks in {len(views)} frames")
    for v in views:
        try:
            lms.append(landmarks.detect_face_landmarks(_undistorted(v, read_rgb(v.image))))
        except LabelsplatError as exc:
            raise LabelsplatError(
                f"the head frame needs face landmarks: {exc.message}",
                hint=(exc.hint + "; " if exc.hint else "") + "or give the head frame with --head-frame JSON") from exc
    found = sum(lm is not None for lm in lms)
    need = max(3, int(np.ceil(cfg.min_face_fraction * len(views))))
    if found < need:
        raise LabelsplatError(
            f"no face found in most frames ({found} of {len(views)} have one, needs {need}); the head frame cannot be estimated",
            hint="film with the face visible (front and both sides), in even light, not too far away; "
                 "or give the head frame with --head-frame JSON")
    fit = head_frame_from_landmarks(cams, lms)
    return fit.head_frame, fit.units_per_cm, {
        "source": "landmarks", "faces_found": found, "template_rms_cm": round(fit.rms_cm, 3),
        "reprojection_px": [round(e, 2) for e in fit.reprojection_px]}


def scene_landmark_head_frame(scene: Scene, cfg: CaptureConfig | None = None,
                              log: Log = lambda _m: None) -> tuple[HeadFrame, float, dict[str, Any]]:
    """:func:`landmark_head_frame` over an existing (pinhole) scene's frames: the same landmark
    detection, triangulation and template fit as ``capture``. Returns (head frame, units per cm, info)."""
    missing = [f.name for f in scene.frames if not f.file_path]
    if missing:
        raise LabelsplatError(f"frames without an image cannot be searched for a face: {missing[:5]}",
                              path=Path(scene.root) / "transforms.json")
    views = [SourceView(f.name, scene.path(f.file_path), f.camera.K, f.camera.w2c_opencv) for f in scene.frames]
    return landmark_head_frame(views, scene.cameras, cfg or CaptureConfig(), log)


def _given_head_frame(value: Any) -> tuple[HeadFrame, float | None]:
    hf = parse_head_frame(value)
    raw = value
    if isinstance(value, (str, Path)):
        text = str(value).strip()
        raw = json.loads(text) if text.startswith("{") else read_json(Path(text))
    scale = None
    if isinstance(raw, dict):
        d = raw.get("head_frame", raw) if isinstance(raw.get("head_frame"), dict) else raw
        if "scale" in d:
            scale = d["scale"]
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
                raise LabelsplatError(f"head frame 'scale' (reconstruction units per cm) must be a positive number, got {scale!r}")
            scale = float(scale)
    return hf, scale


def _scene_head_frame(head_frame, views, cams: list[Camera], cfg: CaptureConfig, log: Log,
                      report: ImportReport) -> tuple[HeadFrame, float, dict[str, Any]]:
    """The head frame in the reconstruction, its scale (units per cm) and how they were found:
    given (the scale from the cameras when not given), or from face landmarks."""
    if head_frame is None:
        hf, scale, info = landmark_head_frame(views, cams, cfg, log)
        info["scale_source"] = "landmarks (synthetic-head template, inter-ocular 6.6 cm)"
        return hf, scale, info
    hf, scale = _given_head_frame(head_frame)
    info: dict[str, Any] = {"source": "given"}
    if scale is None:
        scale = scale_from_cameras(hf, cams)
        info["scale_source"] = "median camera distance set to 60 cm"
        report.notes.append("head frame given without scale: median camera distance set to 60 cm")
    else:
        info["scale_source"] = "given"
    return hf, scale, info


def _normalise(views, points, norm: Similarity, cfg: CaptureConfig, report: ImportReport):
    """Moves the cameras (in place) and the sparse points into the head's frame in cm; keeps the
    points near the head (none when too few). Returns the points."""
    for v in views:  # world' = N(world): w2c' = [R_w2c R_N^T | s t - R_w2c R_N^T t_N]
        R, t = v.w2c[:3, :3], v.w2c[:3, 3]
        Rn = R @ norm.R.T
        m = np.eye(4)
        m[:3, :3] = Rn
        m[:3, 3] = norm.scale * t - Rn @ norm.t
        v.w2c = m
    if points is None or not len(points[0]):
        return points
    xyz = norm.apply(points[0])
    near = np.linalg.norm(xyz, axis=1) <= float(cfg.points_radius_cm)
    report.notes.append(f"{int(near.sum())} of {len(xyz)} sparse points within {cfg.points_radius_cm:g} cm "
                        f"of the head centre kept")
    points = (xyz[near], points[1][near])
    if len(points[0]) < int(cfg.min_points):
        report.notes.append(f"fewer than {cfg.min_points} points near the head: no point cloud written "
                            f"(the fit starts from its visual hull)")
        points = None
    return points


def _record_provenance(scene: Scene, inp: str | Path, doc: dict, cfg: CaptureConfig, info: dict, norm: Similarity,
                       hf: HeadFrame, scale: float, seconds: float) -> None:
    """Each frame's source index (and name), and the capture's record in the scene's extras."""
    by_name = {s["name"].rsplit(".", 1)[0]: s for s in doc["selected"]}
    for f in scene.frames:
        sel = by_name.get(f.name)
        if sel is not None:
            f.extra["source_index"] = sel["source_index"]
            if sel.get("source_name"):
                f.extra["source_name"] = sel["source_name"]
    scene.extra["units"] = "cm"
    scene.extra["capture"] = {
        "input": str(Path(inp).resolve()), "video": doc["video"], "frames_seen": doc["frames_seen"],
        "frames_selected": len(doc["selected"]), "sfm": doc["sfm"], "head_frame": info,
        "reconstruction_to_scene": norm.to_dict(),
        "reconstruction_head_frame": {**hf.to_dict(), "scale": scale},
        "config": json.loads(json.dumps(asdict(cfg))),
        "seconds": round(seconds, 2),
    }


def capture(inp: str | Path, out: str | Path, cfg: CaptureConfig = CaptureConfig(), *,
            head_frame: HeadFrame | dict | str | Path | None = None, work_dir: str | Path | None = None,
            labels_dir: str | Path | None = None,
            overwrite: bool = False, log: Log = lambda s: None, verbose: bool = False) -> Scene:
    """Build the scene ``out`` from a video or photo folder ``inp`` (see the module doc).

    ``head_frame``: center/up/forward in the reconstruction's frame (the model in
    ``work_dir/sparse``), optional ``scale`` (reconstruction units per cm); None = from face
    landmarks. ``labels_dir``: optional per-frame label PNGs (ids of ``cfg.label_scheme``, 255 =
    ignore) at the source frames' size: for a video ``frame_<index>.png`` (index of the decoded
    frame, 5 digits, from 0), for photos ``<photo stem>.png``; resized (nearest) and undistorted
    like the images. Returns the written scene (cameras in cm, head frame = identity).
    """
    out = Path(out)
    if out.exists() and not overwrite and not is_vacant_dir(out):
        raise LabelsplatError("the output already exists", path=out, hint="pass --overwrite or choose another --out")
    tmp = None
    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="labelsplat-capture-")
        work = Path(tmp)
    else:
        work = Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        doc = prepare(inp, work, cfg, log, verbose=verbose)
        _check_registered(doc, cfg, work)
        report = ImportReport(format="capture", source=str(Path(inp).resolve()))
        views, _, points = read_colmap(work / "sparse", work / "images", None, report)
        registered = set(doc.get("registered_names") or [])
        if registered:  # only posed images (a model may also list images it could not register)
            views = [v for v in views if v.image.name in registered]
        cams = [Camera.from_w2c_opencv(v.w2c, v.K[0, 0], v.K[1, 1], v.K[0, 2], v.K[1, 2], v.width, v.height)
                for v in views]
        hf, scale, info = _scene_head_frame(head_frame, views, cams, cfg, log, report)
        norm = head_frame_normalisation(hf, scale)
        points = _normalise(views, points, norm, cfg, report)
        labels = None
        if labels_dir is not None:
            labels = _collect_labels(Path(labels_dir), doc, views, work)
        masks_dir = None
        if cfg.mask:
            masks_dir = _write_masks(views, work, log)
        scene = write_scene(views, out, report=report, calib_path=work / "sparse" / "images.bin", masks_dir=masks_dir,
                            labels_dir=labels,
                            head_frame=HeadFrame.identity(), label_scheme=cfg.label_scheme, overwrite=overwrite,
                            points=points)
        _record_provenance(scene, inp, doc, cfg, info, norm, hf, scale, time.perf_counter() - t0)
        save_scene(scene)
        return load_scene(out)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _collect_labels(labels_dir: Path, doc: dict, views, work: Path) -> Path:
    """Copy the labels of the kept frames to ``work/labels/<view name>.png`` at the frames' size."""
    if not labels_dir.is_dir():
        raise LabelsplatError("--labels folder not found", path=labels_dir)
    d = work / "labels"
    if d.exists():
        shutil.rmtree(d)
    by_name = {s["name"].rsplit(".", 1)[0]: s for s in doc["selected"]}
    missing = []
    for v in views:
        sel = by_name[v.name]
        stem = Path(sel["source_name"]).stem if sel.get("source_name") else f"frame_{sel['source_index']:05d}"
        src = labels_dir / f"{stem}.png"
        if not src.is_file():
            missing.append(src.name)
            continue
        lbl = read_label(src)
        w, h = image_size(v.image)
        if lbl.shape != (h, w):
            if abs(lbl.shape[1] / lbl.shape[0] - w / h) > 0.01:
                raise LabelsplatError(f"label {lbl.shape[1]}x{lbl.shape[0]} has another aspect ratio than its frame {w}x{h}",
                                      path=src, hint="give labels at the size of the video frames / photos")
            lbl = np.asarray(Image.fromarray(lbl).resize((w, h), Image.NEAREST))
        write_png(d / f"{v.name}.png", lbl)
    if missing:
        raise LabelsplatError(f"no label PNG for {len(missing)} of {len(views)} kept frames, e.g. {missing[:4]}",
                              path=labels_dir, hint="name labels frame_<video frame index, 5 digits>.png, or like the photos")
    return d


def _write_masks(views, work: Path, log: Log) -> Path:
    d = work / "masks"
    if d.exists():
        shutil.rmtree(d)
    log(f"selfie segmentation masks for {len(views)} frames")
    for v in views:
        m = landmarks.selfie_mask(read_rgb(v.image))  # distorted like the image; write_scene undistorts both
        write_png(d / f"{v.name}.png", (np.asarray(m, dtype=bool).astype(np.uint8) * 255))
    return d


__all__ = ["CAPTURE_JSON", "CaptureConfig", "Similarity", "capture", "landmark_head_frame", "prepare",
           "scene_landmark_head_frame"]
