"""Capture benchmark: a synthetic orbit video -> ``labelsplat capture`` -> ``labelsplat refine``,
scored against exact labels at the refine's novel views.

Per cell: render a synthetic head (procedural texture) along a -100..+100 deg orbit to an H.264
video, capture it (pycolmap SfM, CPU) with the true head frame mapped into the reconstruction
(``--head-frame``, via a Umeyama alignment of the SfM cameras to the truth) and the noisy labels
attached per video frame (``--labels``); measure the camera errors; refine (``--preset``); map the
novel cameras back to the truth through the alignment, re-render exact and initial-noise labels
there, and score both against the refined labels (accepted views, as ``refine`` does on synthetic
scenes). Results go to ``benchmarks/results/capture_orbit.json`` (cells already there are skipped).

    python -m benchmarks.capture_orbit --cell small          # 48 video frames -> 24 kept, 256 px
    python -m benchmarks.capture_orbit --cell large          # 120 -> 60, 512 px

The synthetic orbit itself comes from ``tests/capture/_capture_orbit.py`` (shared with the
capture tests), imported as ``tests.capture._capture_orbit`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_info

HERE = Path(__file__).resolve().parent

CELLS = {
    "small": {"video_frames": 48, "frames": 24, "resolution": 256, "preset": "tiny", "seed": 3},
    "large": {"video_frames": 120, "frames": 60, "resolution": 512, "preset": "tiny", "seed": 3},
}


def run_cell(name: str, cell: dict, root: Path, log=print) -> dict:
    from tests.capture._capture_orbit import make_orbit, score_refined  # pycolmap/PyAV: only when a cell runs

    from labelsplat.capture import align_cameras
    from labelsplat.cli import main
    from labelsplat.io import write_png
    from labelsplat.scene import load_scene
    from labelsplat.scene.importers import ImportReport
    from labelsplat.scene.importers.colmap import read_colmap
    from labelsplat.scene import Camera
    from labelsplat.synth.scene import head_frame as synth_head_frame

    timings = {}
    t = time.perf_counter()
    orbit = make_orbit(root / "src", frames=cell["video_frames"], resolution=cell["resolution"], seed=cell["seed"])
    timings["render_video"] = time.perf_counter() - t
    labels = root / "labels"
    for k, lbl in enumerate(orbit.labels):
        write_png(labels / f"frame_{k:05d}.png", lbl)
    work = root / "work"
    base = ["capture", orbit.video, "--frames", cell["frames"], "--resolution", cell["resolution"], "--work-dir", work]
    # SfM only (no landmark parser on renders: the head frame comes next, from the truth)
    t = time.perf_counter()
    from labelsplat.capture.pipeline import CaptureConfig, prepare
    from labelsplat.capture.sfm import SfmConfig

    prepare(orbit.video, work, CaptureConfig(frames=cell["frames"], resolution=cell["resolution"], sfm=SfmConfig(seed=0)))
    timings["frames_and_sfm"] = time.perf_counter() - t
    views, _, _ = read_colmap(work / "sparse", work / "images", None, ImportReport("capture", "bench"))
    raw = [Camera.from_w2c_opencv(v.w2c, v.K[0, 0], v.K[1, 1], v.K[0, 2], v.K[1, 2], v.width, v.height) for v in views]
    inv = align_cameras(raw, [orbit.cameras[int(v.name.split("_")[1])] for v in views]).similarity.inverse()
    hf = synth_head_frame()
    hf_json = root / "head_frame.json"
    hf_json.write_text(json.dumps({"center": inv.apply(hf.center).tolist(), "up": inv.apply_direction(hf.up).tolist(),
                                   "forward": inv.apply_direction(hf.forward).tolist(), "scale": inv.scale}))
    scene_dir = root / "scene"
    t = time.perf_counter()
    code = main([str(a) for a in base + ["--out", scene_dir, "--head-frame", hf_json, "--labels", labels]])
    timings["capture_write"] = time.perf_counter() - t
    if code != 0:
        raise RuntimeError(f"capture failed ({code})")
    scene = load_scene(scene_dir)
    info = scene.extra["capture"]
    true = [orbit.cameras[f.extra["source_index"]] for f in scene.frames]
    al = align_cameras(scene.cameras, true)
    out = root / "refined"
    t = time.perf_counter()
    code = main(["refine", str(scene_dir), "--out", str(out), "--preset", cell["preset"], "--quiet", "--seed", "0"])
    timings["refine"] = time.perf_counter() - t
    if code != 0:
        raise RuntimeError(f"refine failed ({code})")
    metrics = json.loads((out / "scenes" / scene.name / "metrics.json").read_text())
    t = time.perf_counter()
    sc = score_refined(scene_dir, out, orbit)
    timings["gt_render_and_score"] = time.perf_counter() - t
    return {
        "cell": name, "settings": cell,
        "sfm": info["sfm"], "frames_seen": info["frames_seen"],
        "camera_error": {"rotation_deg_max": float(al.rotation_errors_deg.max()),
                         "rotation_deg_mean": float(al.rotation_errors_deg.mean()),
                         "center_cm_max": float(al.center_errors.max()), "center_cm_mean": float(al.center_errors.mean()),
                         "center_pct_of_radius_max": float(100 * al.center_errors.max() / orbit.radius),
                         "alignment_scale": al.similarity.scale},
        "focal_px": {"recovered": scene.cameras[0].fx, "true": float(orbit.cameras[0].fx)},
        "novel_views": sc["novel_views"], "accepted": sc["accepted"],
        "scores_vs_gt": {k: sc[k] for k in ("initial", "refined", "initial_by_yaw", "refined_by_yaw")},
        "consistency": metrics.get("consistency"),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", choices=sorted(CELLS), action="append")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "capture_orbit.json")
    ap.add_argument("--force", action="store_true", help="rerun cells already in the results")
    args = ap.parse_args(argv)

    doc = json.loads(args.out.read_text()) if args.out.is_file() else {"cells": {}}
    doc["machine"] = machine_info("cpu")
    for name in args.cell or ["small"]:
        if name in doc["cells"] and not args.force:
            print(f"{name}: done, skipped")
            continue
        root = Path(tempfile.mkdtemp(prefix=f"capture_orbit_{name}_"))
        try:
            t = time.perf_counter()
            res = run_cell(name, CELLS[name], root)
            res["seconds"] = round(time.perf_counter() - t, 1)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        doc["cells"][name] = res
        from labelsplat.io import atomic_write_json

        atomic_write_json(args.out, doc)
        print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
