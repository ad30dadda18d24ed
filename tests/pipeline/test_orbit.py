"""labelsplat render --orbit: an MP4 of RGB | label overlay once around the head."""

from __future__ import annotations

import numpy as np
import pytest

from labelsplat.scene import load_scene
from labelsplat.views import orbit_cameras, orbit_yaws


def test_orbit_cameras_circle_the_head_at_the_mean_distance(synth_scene):
    from labelsplat.scene import yaw_pitch

    scene = load_scene(synth_scene)
    cams = orbit_cameras(scene.cameras, scene.head_frame, 8)
    mean = np.mean([np.linalg.norm(c.center - scene.head_frame.center) for c in scene.cameras])
    for cam, want in zip(cams, orbit_yaws(8)):
        yaw, pitch = yaw_pitch(cam.center, scene.head_frame)
        assert abs((yaw - want + 180) % 360 - 180) < 1e-6 and abs(pitch) < 1e-6
        assert np.linalg.norm(cam.center - scene.head_frame.center) == pytest.approx(mean)


def test_render_orbit_writes_the_video_and_frames(cli, tmp_path, refined):
    av = pytest.importorskip("av")
    from labelsplat.io import read_rgb

    run = refined / "scenes" / "head_000" / "run"
    r = cli("render", run, "--out", tmp_path / "o", "--orbit", "4", "--frames")
    assert r.exit_code == 0, r.output
    pngs = sorted((tmp_path / "o" / "orbit").glob("*.png"))
    assert len(pngs) == 4
    first = read_rgb(pngs[0])
    w = first.shape[1] // 2
    assert first.shape[1] == 2 * w and not np.array_equal(first[:, :w], first[:, w:])  # RGB | overlay
    with av.open(str(tmp_path / "o" / "orbit.mp4")) as c:
        s = c.streams.video[0]
        assert float(s.average_rate) == 24.0
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(decoded) == 4 and decoded[0].shape[:2] == (first.shape[0] + first.shape[0] % 2, 2 * w)
    r = cli("render", run, "--out", tmp_path / "o", "--orbit", "0")
    assert r.exit_code == 2


def test_refine_report_links_the_orbit_and_the_viewer(cli, tmp_path, refined, synth_scene):
    pytest.importorskip("av")
    import shutil

    out = tmp_path / "refined"
    shutil.copytree(refined, out)
    r = cli("render", out / "scenes" / "head_000" / "run", "--out", out / "scenes" / "head_000" / "orbit",
            "--orbit", "2")
    assert r.exit_code == 0, r.output
    r = cli("refine", synth_scene, "--out", out, "--preset", "micro", "--novel-views", "6", "--quiet", "--seed", "1",
            "--resume")
    assert r.exit_code == 0, r.output
    text = (out / "report.html").read_text()
    assert "src='scenes/head_000/orbit/orbit.mp4'" in text and "labelsplat view scenes/head_000/run" in text
