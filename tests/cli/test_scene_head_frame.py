"""`labelsplat scene head-frame`: written atomically into an existing scene, spread printed, warnings."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scene"))
from scene_fixtures import HEAD, make_rig, write_nerfstudio  # noqa: E402

IDENTITY = '{"center": [0, 0, 0], "up": [0, 1, 0], "forward": [0, 0, 1]}'


def _flat(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def _import(cli, tmp_path, yaws, pitches=(0, 15)):
    cams = make_rig(yaws=yaws, pitches=pitches)
    src = write_nerfstudio(tmp_path / "ns", cams)
    out = tmp_path / "scene"
    r = cli("scene", "import", "--format", "nerfstudio", src, "--head-frame", IDENTITY, "--out", out)
    assert r.exit_code == 0, r.output
    return out, cams


def test_from_cameras_refused_then_overwritten_with_spread_and_warning(cli, tmp_path):
    out, cams = _import(cli, tmp_path, yaws=(-70, -60, -50, -35, 0, 35))  # denser on one side
    before = json.loads((out / "transforms.json").read_text())
    r = cli("scene", "head-frame", out, "--from-cameras")
    assert r.exit_code == 2 and "already has a head frame" in _flat(r.output) and "--overwrite" in r.output
    r = cli("scene", "head-frame", out, "--from-cameras", "--overwrite")
    assert r.exit_code == 0, r.output
    text = _flat(r.output)
    assert "look-at residual" in text and "camera yaw" in text and "poorly determined" in text and "degrees in yaw from the middle" in text
    after = json.loads((out / "transforms.json").read_text())
    assert {k: v for k, v in after.items() if k != "head_frame"} == {k: v for k, v in before.items() if k != "head_frame"}
    np.testing.assert_allclose(after["head_frame"]["center"], HEAD.center, atol=1e-6)


def test_set_and_symmetric_rig_without_warning(cli, tmp_path):
    out, _ = _import(cli, tmp_path, yaws=(-40, 0, 40), pitches=(-10, 10))
    r = cli("scene", "head-frame", out, "--set", json.dumps(HEAD.to_dict()), "--overwrite")
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    assert "yaw -40 .. +40" in _flat(r.output)
    np.testing.assert_allclose(json.loads((out / "transforms.json").read_text())["head_frame"]["up"], HEAD.up)
    r = cli("scene", "head-frame", out, "--from-cameras", "--overwrite")
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    assert cli("scene", "head-frame", out).exit_code == 2
    assert cli("scene", "head-frame", out, "--from-cameras", "--set", IDENTITY).exit_code == 2


def test_from_landmarks_uses_the_capture_path(cli, tmp_path, monkeypatch):
    from labelsplat.capture.headframe import MEDIAPIPE_IDS, TEMPLATE_CM
    from labelsplat.parsers import landmarks as lmk

    out, cams = _import(cli, tmp_path, yaws=(-60, -30, 0, 30), pitches=(0,))
    world = HEAD.to_world(TEMPLATE_CM * 10.0)  # 10 scene units per cm
    by_image = {}
    from labelsplat.io import read_rgb
    from labelsplat.scene import load_scene

    scene = load_scene(out)
    for f in scene.frames:
        lm = np.zeros((478, 2))
        lm[list(MEDIAPIPE_IDS)] = f.camera.project(world)[0]
        by_image[read_rgb(scene.path(f.file_path)).tobytes()] = lm
    monkeypatch.setattr(lmk, "detect_face_landmarks", lambda rgb, **kw: by_image[np.ascontiguousarray(rgb).tobytes()])
    r = cli("scene", "head-frame", out, "--from-landmarks", "--overwrite")
    assert r.exit_code == 0, r.output
    assert "landmarks" in r.output and "10 scene units per cm" in _flat(r.output)
    hf = json.loads((out / "transforms.json").read_text())["head_frame"]
    np.testing.assert_allclose(hf["forward"], HEAD.forward, atol=1e-6)
    np.testing.assert_allclose(hf["center"], HEAD.center, atol=1e-4)


def test_refuses_a_foreign_file(cli, tmp_path):
    src = write_nerfstudio(tmp_path / "ns", make_rig(yaws=(0, 20), pitches=(0,)))
    r = cli("scene", "head-frame", src, "--from-cameras")
    assert r.exit_code == 2 and "scene import --format nerfstudio" in _flat(r.output)
