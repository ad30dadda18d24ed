"""A synthetic orbit capture for the capture tests and benchmark: a synthetic head (with the
procedural texture, so SIFT finds features) rendered along a smooth orbit and encoded to a
video with PyAV; the true cameras and exact / noisy labels per video frame are kept."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Orbit:
    video: Path
    cameras: list  # true cameras per video frame (synth head frame, cm)
    labels: list  # noisy labels per video frame (uint8 (H, W))
    gt_labels: list
    head_params: object
    radius: float  # orbit radius (cm)


def orbit_cameras(n: int, resolution: int, *, yaw_range=(-100.0, 100.0), distance: float = 60.0):
    """``n`` cameras on a smooth arc around the synthetic head: yaw from ``yaw_range[0]`` to
    ``yaw_range[1]``, pitch 6 deg * sin (a gentle up-down wave, as a hand-held orbit)."""
    from labelsplat.synth.rigs import camera_at

    cams = []
    for k in range(n):
        a = k / max(n - 1, 1)
        yaw = yaw_range[0] + a * (yaw_range[1] - yaw_range[0])
        pitch = 6.0 * math.sin(2 * math.pi * a)
        cams.append(camera_at(yaw, pitch, distance=distance, resolution=resolution))
    return cams


def encode_video(path: Path, frames: list[np.ndarray], fps: int = 12, codec: str = "libx264") -> Path:
    """Encode uint8 RGB frames to an MP4 with PyAV (H.264 at CRF 12: near-lossless)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "medium"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_orbit(out_dir: Path, *, frames: int = 48, resolution: int = 256, seed: int = 3,
               noise: str = "simulated:medium", yaw_range=(-100.0, 100.0)) -> Orbit:
    from labelsplat.synth.head import build_head, sample_head
    from labelsplat.synth.scene import head_seed, render_views

    out_dir.mkdir(parents=True, exist_ok=True)
    params = sample_head(head_seed(seed, 0))
    mesh = build_head(params)
    cams = orbit_cameras(frames, resolution, yaw_range=yaw_range)
    views = render_views(mesh, cams, noise=noise, texture="procedural")
    video = encode_video(out_dir / "orbit.mp4", [v.rgb for v in views])
    return Orbit(video, cams, [v.labels for v in views], [v.gt_labels for v in views], params, 60.0)


def score_refined(scene_dir: Path, refined_out: Path, orbit: Orbit, noise: str = "simulated:medium") -> dict:
    """Score a ``refine`` run on a captured orbit against exact labels: the novel cameras (scene
    frame) are mapped back to the truth through the Umeyama alignment of the scene's cameras to
    the true ones, the exact and initial-noise labels are re-rendered there, and both the
    initial and the refined labels are scored (accepted views only, as ``refine`` does)."""
    import json

    from labelsplat.capture import align_cameras
    from labelsplat.eval import LabellingScores
    from labelsplat.io import read_label
    from labelsplat.scene import load_scene, yaw_pitch
    from labelsplat.synth.scene import render_views

    scene = load_scene(scene_dir)
    al = align_cameras(scene.cameras, [orbit.cameras[f.extra["source_index"]] for f in scene.frames])
    views_dir = Path(refined_out) / "scenes" / scene.name / "views"
    manifest = json.loads((views_dir / "manifest.json").read_text())
    accepted = {e["name"]: bool(e.get("accepted", True)) for e in manifest["views"]}
    nv = load_scene(views_dir)
    frames = [f for f in nv.frames if accepted.get(f.name, True)]
    gt_views = render_views(orbit.head_params, [al.similarity.apply_camera(f.camera) for f in frames], noise=noise)
    init_s = LabellingScores.for_scheme(scene.label_scheme)
    ref_s = LabellingScores.for_scheme(scene.label_scheme)
    for f, gv in zip(frames, gt_views):
        yaw, _ = yaw_pitch(f.camera.center, scene.head_frame)
        init_s.add(gv.labels, gv.gt_labels, yaw)
        ref_s.add(read_label(nv.path(f.label_path)), gv.gt_labels, yaw)
    i, r = init_s.to_dict(), ref_s.to_dict()
    return {"alignment": al, "novel_views": len(nv.frames), "accepted": len(frames),
            "initial": i["overall"], "refined": r["overall"], "initial_by_yaw": i["by_yaw"], "refined_by_yaw": r["by_yaw"]}
