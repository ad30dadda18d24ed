"""The nerfstudio importer on transforms.json files written here: cameras, undistortion, masks, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scene_fixtures import HEAD, make_rig, write_labels, write_nerfstudio

from labelsplat.errors import LabelsplatError
from labelsplat.io import read_label, read_rgb
from labelsplat.scene import import_scene, load_scene
from labelsplat.scene.distortion import Distortion, undistort_image, undistort_label


def _same_cameras(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(y.c2w, x.c2w, atol=1e-9)
        np.testing.assert_allclose(y.K, x.K, atol=1e-9)
        assert (y.width, y.height) == (x.width, x.height)


def test_opencv_k1_undistorted_with_masks_labels_and_depth_note(tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0, 15))
    src = write_nerfstudio(tmp_path / "ns", cams, coeffs={"k1": 0.2, "p1": 0.001}, masks=True, depth=True)
    names = [f"frame_{i:02d}" for i in range(len(cams))]
    write_labels(tmp_path / "labels", names, cams)
    import_scene("nerfstudio", src, None, tmp_path / "out", labels_dir=tmp_path / "labels")
    back = load_scene(tmp_path / "out")
    assert [f.name for f in back.frames] == names
    _same_cameras(cams, back.cameras)  # OpenGL c2w and pixel-centre K taken as they are (no +0.5)
    d = Distortion("OPENCV", (0.2, 0.0, 0.001, 0.0))
    f = back.frames[2]
    assert f.extra["distortion_removed"] == d.to_dict()
    np.testing.assert_array_equal(read_rgb(back.path(f.file_path)),
                                  undistort_image(read_rgb(tmp_path / "ns" / "images" / "frame_02.png"), cams[2].K, d))
    np.testing.assert_array_equal(read_label(back.path(f.label_path), 19),
                                  undistort_label(read_label(tmp_path / "labels" / "frame_02.png"), cams[2].K, d))
    mask = read_label(back.path(f.mask_path))  # nerfstudio's 1 = use the pixel, stored as 255
    assert set(np.unique(mask).tolist()) == {0, 255}
    assert mask[3 * cams[2].height // 4, cams[2].width // 2] == 255 and mask[2, cams[2].width // 2] == 0
    notes = back.extra["import"]["notes"]
    assert any("depth_file_path of 6 frame(s) dropped" in n for n in notes)
    assert any("6 of 6 views undistorted" in n for n in notes)
    np.testing.assert_allclose(back.head_frame.center, HEAD.center, atol=1e-6)  # all cameras look at it


def test_pinhole_per_frame_intrinsics_copied(tmp_path):
    cams = make_rig(yaws=(-20, 0, 20), pitches=(0,))
    cams[1].fx, cams[1].fy = 60.0, 61.0
    src = write_nerfstudio(tmp_path / "ns", cams, model="PINHOLE", per_frame=True)
    import_scene("nerfstudio", tmp_path / "ns", None, tmp_path / "out")
    back = load_scene(tmp_path / "out")
    _same_cameras(cams, back.cameras)
    assert all("distortion_removed" not in f.extra for f in back.frames)
    assert (tmp_path / "out" / "images" / "frame_01.png").read_bytes() == (src.parent / "images" / "frame_01.png").read_bytes()


@pytest.mark.parametrize("model", ["OPENCV_FISHEYE", "FISHEYE624", "EQUIRECTANGULAR"])
def test_fisheye_and_equirectangular_refused(tmp_path, model):
    src = write_nerfstudio(tmp_path / "ns", make_rig(yaws=(0,), pitches=(0,)), model=model)
    with pytest.raises(LabelsplatError, match=f"camera_model {model} is not supported"):
        import_scene("nerfstudio", src, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_nerfstudio_inputs(tmp_path):
    cams = make_rig(yaws=(0, 20), pitches=(0,))
    src = write_nerfstudio(tmp_path / "ns", cams, coeffs={"k4": 0.01})
    with pytest.raises(LabelsplatError, match="k4"):
        import_scene("nerfstudio", src, None, tmp_path / "out")
    doc = json.loads(src.read_text())
    doc.pop("k4")
    doc["w"] = 50  # the images are 48 wide
    src.write_text(json.dumps(doc))
    with pytest.raises(LabelsplatError, match="the image is 48x40 but transforms.json says 50x40"):
        import_scene("nerfstudio", src, None, tmp_path / "out")
    with pytest.raises(LabelsplatError, match="--images is not used"):
        import_scene("nerfstudio", src, tmp_path, tmp_path / "out")


def test_scene_commands_refuse_a_nerfstudio_file(tmp_path):
    src = write_nerfstudio(tmp_path / "ns", make_rig(yaws=(0, 20), pitches=(0,)), coeffs={"k1": 0.2})
    with pytest.raises(LabelsplatError, match="camera_model") as exc:
        load_scene(src)
    assert "labelsplat scene import --format nerfstudio" in exc.value.hint
    doc = json.loads(src.read_text())
    doc.pop("camera_model")
    src.write_text(json.dumps(doc))
    with pytest.raises(LabelsplatError, match="no 'schema_version'"):
        load_scene(tmp_path / "ns")
