"""End to end on a synthetic orbit video: capture (PyAV + pycolmap) -> scene; cameras checked
against the truth with a Umeyama alignment. One module-scoped run shared by the tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pycolmap")
pytest.importorskip("av")

from _capture_orbit import make_orbit  # noqa: E402

from labelsplat.capture import align_cameras  # noqa: E402
from labelsplat.io import write_png  # noqa: E402
from labelsplat.scene import Camera, load_scene  # noqa: E402

N_VIDEO, N_KEEP, RES = 48, 24, 256


@pytest.fixture(scope="module")
def orbit_run(tmp_path_factory):
    from labelsplat.cli import main
    from labelsplat.scene.importers import ImportReport
    from labelsplat.scene.importers.colmap import read_colmap
    from labelsplat.synth.scene import head_frame as synth_head_frame

    root = tmp_path_factory.mktemp("capture_orbit")
    orbit = make_orbit(root / "src", frames=N_VIDEO, resolution=RES)
    labels = root / "labels"
    for k, lbl in enumerate(orbit.labels):
        write_png(labels / f"frame_{k:05d}.png", lbl)
    work = root / "work"
    # one SfM thread: COLMAP's multi-threaded mapping differs run to run (e.g. 1242 vs 1245 points)
    base = ["capture", orbit.video, "--frames", N_KEEP, "--resolution", RES, "--work-dir", work, "--threads", 1]
    # 1) no head frame, and the landmark parser finds no face (rendered heads; no mediapipe needed)
    with pytest.MonkeyPatch.context() as mp:
        import labelsplat.parsers.landmarks as lmk

        mp.setattr(lmk, "detect_face_landmarks", lambda rgb, **kw: None)
        code_noface = main([str(a) for a in base + ["--out", root / "scene_noface"]])
    # 2) the true head frame mapped into the reconstruction's frame (align raw SfM cameras to the truth)
    views, _, _ = read_colmap(work / "sparse", work / "images", None, ImportReport("capture", "test"))
    raw = [Camera.from_w2c_opencv(v.w2c, v.K[0, 0], v.K[1, 1], v.K[0, 2], v.K[1, 2], v.width, v.height) for v in views]
    true_raw = [orbit.cameras[int(v.name.split("_")[1])] for v in views]
    to_true = align_cameras(raw, true_raw).similarity
    inv = to_true.inverse()
    hf = synth_head_frame()
    hf_json = root / "head_frame.json"
    hf_json.write_text(json.dumps({
        "center": inv.apply(hf.center).tolist(), "up": inv.apply_direction(hf.up).tolist(),
        "forward": inv.apply_direction(hf.forward).tolist(), "scale": inv.scale}))
    scene_dir = root / "scene"
    code = main([str(a) for a in base + ["--out", scene_dir, "--head-frame", hf_json, "--labels", labels]])
    return {"orbit": orbit, "root": root, "work": work, "scene": scene_dir, "code": code,
            "code_noface": code_noface, "base": base, "hf_json": hf_json, "labels": labels}


def test_no_face_is_a_clear_error(orbit_run):
    assert orbit_run["code_noface"] == 2
    assert not (orbit_run["root"] / "scene_noface").exists()
    # the reconstruction was kept for the rerun
    assert (orbit_run["work"] / "sparse" / "images.bin").is_file()


def test_capture_writes_a_scene(orbit_run):
    assert orbit_run["code"] == 0
    scene = load_scene(orbit_run["scene"])
    info = scene.extra["capture"]
    assert info["sfm"]["registered"] == info["sfm"]["total"] == len(scene.frames) == N_KEEP
    assert info["frames_seen"] == N_VIDEO and info["video"] is True
    assert np.allclose(scene.head_frame.center, 0) and np.allclose(scene.head_frame.up, [0, 1, 0])
    assert scene.ply_file_path and (scene.root / scene.ply_file_path).is_file()
    idx = [f.extra["source_index"] for f in scene.frames]
    assert idx == sorted(idx) and len(set(idx)) == N_KEEP and max(idx) < N_VIDEO
    for f in scene.frames[:3]:
        assert f.label_path and (scene.root / f.label_path).is_file()


def test_recovered_cameras_match_the_truth(orbit_run):
    """Rotation error < 2 deg and centre error < 2 % of the orbit radius after a similarity
    alignment; and the scene is already in the synthetic head frame and cm (the given head frame
    and scale came from the truth), so the alignment is nearly a pure shift by HEAD_CENTER."""
    from labelsplat.synth.head import HEAD_CENTER

    scene = load_scene(orbit_run["scene"])
    orbit = orbit_run["orbit"]
    true = [orbit.cameras[f.extra["source_index"]] for f in scene.frames]
    al = align_cameras(scene.cameras, true)
    assert al.rotation_errors_deg.max() < 2.0, al.to_dict()
    assert al.center_errors.max() < 0.02 * orbit.radius, al.to_dict()
    sim = al.similarity
    assert abs(sim.scale - 1.0) < 0.02
    assert np.degrees(np.arccos(np.clip((np.trace(sim.R) - 1) / 2, -1, 1))) < 2.0
    assert np.linalg.norm(sim.t - np.asarray(HEAD_CENTER)) < 0.02 * orbit.radius
    # the focal length is recovered (undistorted pinhole; the truth frames 36 cm at 60 cm)
    assert abs(scene.cameras[0].fx / (RES * 60.0 / 36.0) - 1.0) < 0.05


def test_rerun_reuses_the_reconstruction(orbit_run, cli):
    r = cli(*orbit_run["base"], "--out", orbit_run["root"] / "scene2", "--head-frame", orbit_run["hf_json"])
    assert r.exit_code == 0, r.output
    assert "reusing the reconstruction" in r.output
    a, b = load_scene(orbit_run["scene"]), load_scene(orbit_run["root"] / "scene2")
    for fa, fb in zip(a.frames, b.frames):
        assert np.allclose(fa.camera.c2w, fb.camera.c2w)


def test_existing_output_is_refused(orbit_run, cli):
    r = cli(*orbit_run["base"], "--out", orbit_run["scene"], "--head-frame", orbit_run["hf_json"])
    assert r.exit_code == 2 and "already exists" in r.output


@pytest.mark.slow
def test_refine_on_the_capture_beats_the_initial_labels(orbit_run, cli):
    """`refine` (tiny preset) on the captured scene: no GT in the scene, so it reports multiview
    consistency (which must rise); scored here against exact labels re-rendered at its novel
    cameras mapped back through the alignment, the refined labels beat the initial noisy ones.
    Measured numbers (larger runs): benchmarks/results/capture_orbit.json."""
    from _capture_orbit import score_refined

    out = orbit_run["root"] / "refined"
    r = cli("refine", orbit_run["scene"], "--out", out, "--preset", "tiny", "--novel-views", 12, "--quiet")
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "scenes" / "scene" / "metrics.json").read_text())
    assert metrics["labellings"] == {}  # a capture has no ground truth
    cons = metrics["consistency"]
    assert cons["after"]["agreement"] > cons["before"]["agreement"]
    assert "consistency" in (out / "report.html").read_text().lower()
    sc = score_refined(orbit_run["scene"], out, orbit_run["orbit"])
    assert sc["accepted"] >= 4
    print(f"capture refine: initial {sc['initial']['miou']:.4f} refined {sc['refined']['miou']:.4f}")
    assert sc["refined"]["miou"] > sc["initial"]["miou"], sc


def test_head_frame_from_landmarks(orbit_run, cli, monkeypatch):
    """The landmark path without MediaPipe: a stand-in detector returns the true eye centres,
    nose tip and chin of the synthetic template projected by the true camera of each frame
    (recognised by its pixels). The scene must come out in the synthetic head frame and cm."""
    import labelsplat.parsers.landmarks as lmk
    from labelsplat.capture import TEMPLATE_CM
    from labelsplat.capture.headframe import MEDIAPIPE_IDS
    from labelsplat.capture.pipeline import _undistorted
    from labelsplat.io import read_rgb
    from labelsplat.scene.importers import ImportReport
    from labelsplat.scene.importers.colmap import read_colmap
    from labelsplat.synth.head import HEAD_CENTER

    work, orbit = orbit_run["work"], orbit_run["orbit"]
    views, _, _ = read_colmap(work / "sparse", work / "images", None, ImportReport("capture", "test"))
    pts = TEMPLATE_CM + np.asarray(HEAD_CENTER)
    table = {}
    for k, v in enumerate(views):
        cam = orbit.cameras[int(v.name.split("_")[1])]
        lm = np.zeros((478, 3))
        uv, _ = cam.project(pts)
        lm[list(MEDIAPIPE_IDS), :2] = uv
        table[_undistorted(v, read_rgb(v.image)).tobytes()] = None if k % 4 == 3 else lm  # some frames: no face
    monkeypatch.setattr(lmk, "detect_face_landmarks", lambda rgb, **kw: table[np.ascontiguousarray(rgb).tobytes()])
    out = orbit_run["root"] / "scene_landmarks"
    r = cli(*orbit_run["base"], "--out", out)
    assert r.exit_code == 0, r.output
    scene = load_scene(out)
    info = scene.extra["capture"]["head_frame"]
    assert info["source"] == "landmarks" and info["faces_found"] == N_KEEP - N_KEEP // 4
    al = align_cameras(scene.cameras, [orbit.cameras[f.extra["source_index"]] for f in scene.frames])
    assert abs(al.similarity.scale - 1.0) < 0.03
    assert np.degrees(np.arccos(np.clip((np.trace(al.similarity.R) - 1) / 2, -1, 1))) < 2.0
    assert np.linalg.norm(al.similarity.t - np.asarray(HEAD_CENTER)) < 1.0  # cm


def test_parse_with_bisenet_weights_on_the_capture(orbit_run, cli, tmp_path):
    """`parse SCENE --weights W` fills the captured scene's labels (a random BiSeNet state dict:
    the path is checked, not the quality); the scene's cm units place the 15 cm face crop."""
    import shutil

    import torch

    from labelsplat.io import read_label
    from labelsplat.parsers.bisenet import BiSeNet

    torch.manual_seed(0)
    weights = tmp_path / "79999_iter.pth"
    torch.save(BiSeNet(19).eval().state_dict(), weights)
    scene_dir = tmp_path / "scene"
    shutil.copytree(orbit_run["scene"], scene_dir)
    shutil.rmtree(scene_dir / "labels")
    from labelsplat.scene import save_scene

    small = load_scene(scene_dir)
    small.frames = small.frames[::6]  # 4 frames keep the test fast
    for f in small.frames:
        f.label_path = None
    save_scene(small)
    r = cli("parse", scene_dir, "--weights", weights, "--input-size", 128, "--batch-size", 4)
    assert r.exit_code == 0, r.output
    scene = load_scene(scene_dir)
    assert len(scene.frames) == 4
    for f in scene.frames:
        lbl = read_label(scene.path(f.label_path), 19, shape=(RES, RES))
        assert lbl.shape == (RES, RES)


def test_masks_and_point_crop(orbit_run, cli, monkeypatch):
    """--mask stores one selfie-segmentation mask per frame (a stand-in segmenter: a disc) as
    mask_path, undistorted like the frame; sparse points are cropped around the head."""
    import labelsplat.parsers.landmarks as lmk
    from labelsplat.io import read_label

    def disc(rgb, *a, **kw):
        h, w = rgb.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        return (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (0.3 * w) ** 2

    monkeypatch.setattr(lmk, "selfie_mask", disc)
    out = orbit_run["root"] / "scene_masks"
    r = cli(*orbit_run["base"], "--out", out, "--head-frame", orbit_run["hf_json"], "--mask")
    assert r.exit_code == 0, r.output
    scene = load_scene(out)
    for f in scene.frames[:4]:
        m = read_label(scene.path(f.mask_path))
        assert set(np.unique(m)) <= {0, 255} and m[RES // 2, RES // 2] == 255 and m[0, 0] == 0
    notes = " ".join(scene.extra["import"]["notes"])
    assert "sparse points within 30 cm" in notes
