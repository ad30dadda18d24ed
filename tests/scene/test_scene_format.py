"""transforms.json round trip and load-time structure checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scene_fixtures import HEAD, make_rig

from labelsplat.errors import LabelsplatError
from labelsplat.scene import Frame, Scene, load_scene, save_scene


def _scene(tmp_path):
    cams = make_rig(yaws=(-40, 0, 40), pitches=(0,))
    cams[1].width, cams[1].height = 64, 48  # mixed resolutions survive per-frame intrinsics
    frames = [
        Frame(f"v{i}", c, file_path=f"images/v{i}.png", label_path=f"labels/v{i}.png",
              extra={"distortion_removed": {"model": "OPENCV", "params": [0.1, 0.0, 0.0, 0.0, 0.0]}} if i == 2 else {})
        for i, c in enumerate(cams)
    ]
    frames[0].mask_path = "masks/v0.png"
    return Scene(tmp_path, frames, label_scheme="celebamask19-zll", head_frame=HEAD, ply_file_path="points3D.ply",
                 extra={"import": {"format": "colmap"}})


def test_round_trip(tmp_path):
    scene = _scene(tmp_path)
    path = save_scene(scene)
    data = json.loads(path.read_text())
    assert data["schema_version"] >= 1 and data["label_scheme"] == "celebamask19-zll"
    back = load_scene(tmp_path)
    assert [f.name for f in back.frames] == ["v0", "v1", "v2"]
    for a, b in zip(scene.frames, back.frames):
        np.testing.assert_allclose(a.camera.c2w, b.camera.c2w, atol=1e-12)
        assert (a.camera.fx, a.camera.fy, a.camera.cx, a.camera.cy, a.camera.width, a.camera.height) == (
            b.camera.fx, b.camera.fy, b.camera.cx, b.camera.cy, b.camera.width, b.camera.height)
        assert (a.file_path, a.label_path, a.mask_path) == (b.file_path, b.label_path, b.mask_path)
    assert back.frames[2].extra["distortion_removed"]["model"] == "OPENCV"
    np.testing.assert_allclose(back.head_frame.center, HEAD.center)
    np.testing.assert_allclose(back.head_frame.forward, HEAD.forward, atol=1e-12)
    assert back.ply_file_path == "points3D.ply" and back.extra["import"] == {"format": "colmap"}


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d["frames"][0].pop("transform_matrix"), "missing key 'transform_matrix'"),
        (lambda d: d["frames"][0].__setitem__("transform_matrix", [[0.0] * 4] * 4), "singular"),
        (lambda d: d["frames"][1].__setitem__("name", "v0"), "duplicate frame name"),
        (lambda d: d["frames"][0].pop("fl_x"), "missing intrinsic 'fl_x'"),
        (lambda d: d["frames"][0].__setitem__("w", 48.5), "'w' must be a whole number"),
        (lambda d: d["frames"][0].__setitem__("fl_y", -3), "'fl_y' must be positive"),
        (lambda d: d.__setitem__("ply_file_path", 3), "'ply_file_path' must be a string"),
    ],
)
def test_load_rejects_bad_structure(tmp_path, mutate, needle):
    path = save_scene(_scene(tmp_path))
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(LabelsplatError) as exc:
        load_scene(tmp_path)
    assert needle in str(exc.value) and "transforms.json" in str(exc.value)


def test_load_rejects_nan(tmp_path):
    path = save_scene(_scene(tmp_path))
    path.write_text(path.read_text().replace('"fl_x": ', '"fl_x": NaN, "x": ', 1))
    with pytest.raises(LabelsplatError, match="transforms.json"):
        load_scene(tmp_path)
