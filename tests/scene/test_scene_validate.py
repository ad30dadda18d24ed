"""validate_scene: hard errors name the file; soft problems come back as warnings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scene_fixtures import HEAD, make_rig, save, write_facescape, write_labels

from labelsplat.errors import LabelsplatError
from labelsplat.scene import import_scene, load_scene, scene_summary, validate_scene


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    cams = make_rig(yaws=(-70, 0, 40), pitches=(0, 35))
    params = write_facescape(root / "fs", cams, ext=".png")
    write_labels(root / "labels", [str(i) for i in range(len(cams))], cams)
    import_scene("facescape", params, None, root / "scene", labels_dir=root / "labels", head_frame=HEAD)
    return root / "scene"


@pytest.fixture
def scene_dir(imported, tmp_path):
    dst = tmp_path / "scene"
    shutil.copytree(imported, dst)
    return dst


def _edit(scene_dir, fn, **load_kw):
    p = scene_dir / "transforms.json"
    data = json.loads(p.read_text())
    fn(data)
    p.write_text(json.dumps(data))
    return load_scene(scene_dir, **load_kw)


def test_valid_scene_and_summary(scene_dir):
    scene = load_scene(scene_dir)
    assert validate_scene(scene) == []
    s = scene_summary(scene)
    assert s["frames"] == 6 and s["resolutions"] == {"48x40": 6}
    assert s["yaw_bins"]["60-90"] == 2 and s["yaw_bins"]["0-30"] == 2 and s["yaw_bins"]["30-60"] == 2
    assert s["extreme_views"] == 2 + 2  # |yaw| 70 twice, plus pitch 35 at yaw 0 and 40
    assert s["optional"]["label_path"] == 6 and s["optional"]["mask_path"] == 0
    # check_files=False never opens a file
    for f in scene.frames:
        f.file_path = "missing/" + f.name + ".png"
    assert validate_scene(scene, check_files=False) == []


def test_warnings(scene_dir):
    def fn(d):
        d.pop("head_frame")
        d["frames"][0].pop("label_path")

    w = validate_scene(_edit(scene_dir, fn))
    assert any("no head_frame" in x for x in w) and any("1/6 frame(s) have no label" in x for x in w)


def test_image_size_mismatch(scene_dir):
    save(scene_dir / "images" / "1.png", np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(LabelsplatError, match=r"1\.png: frame '1': the image is 50x40 but its intrinsics say w=48 h=40"):
        validate_scene(load_scene(scene_dir))


def test_missing_file(scene_dir):
    (scene_dir / "labels" / "2.png").unlink()
    with pytest.raises(LabelsplatError, match=r"2\.png"):
        validate_scene(load_scene(scene_dir))


def test_label_size_and_ids(scene_dir):
    save(scene_dir / "labels" / "0.png", np.zeros((20, 48), np.uint8))
    with pytest.raises(LabelsplatError, match=r"0\.png: label size 48x20 differs"):
        validate_scene(load_scene(scene_dir))
    with pytest.raises(LabelsplatError, match=r"0\.png: label size"):
        validate_scene(load_scene(scene_dir), check_label_ids=False)
    bad = np.zeros((40, 48), np.uint8)
    bad[3, 3] = 19
    save(scene_dir / "labels" / "0.png", bad)
    with pytest.raises(LabelsplatError, match=r"0\.png: label ids \[19\] are outside the scheme's 19 classes"):
        validate_scene(load_scene(scene_dir))
    assert validate_scene(load_scene(scene_dir), check_label_ids=False) == []


def test_unknown_scheme(scene_dir):
    with pytest.raises(LabelsplatError, match="unknown label scheme 'nope'") as exc:
        validate_scene(_edit(scene_dir, lambda d: d.__setitem__("label_scheme", "nope")))
    assert "transforms.json" in str(exc.value)


def test_duplicate_files(scene_dir):
    def fn(d):
        d["frames"][1]["file_path"] = d["frames"][0]["file_path"]

    with pytest.raises(LabelsplatError, match="duplicate frames: file_path"):
        validate_scene(_edit(scene_dir, fn))


@pytest.mark.parametrize("bad", ["../elsewhere/0.png", "images/../../0.png", "/tmp/0.png"])
def test_paths_escaping(scene_dir, bad):
    shutil.copy(scene_dir / "images" / "0.png", scene_dir.parent / "0.png")
    with pytest.raises(LabelsplatError, match="points outside the scene directory"):  # load_scene refuses too
        _edit(scene_dir, lambda d: d["frames"][0].__setitem__("file_path", bad))
    scene = load_scene(scene_dir, allow_outside=True)
    with pytest.raises(LabelsplatError, match="points outside the scene directory") as exc:
        validate_scene(scene, check_files=False)
    assert "transforms.json" in str(exc.value)
    if bad == "images/../../0.png":
        assert validate_scene(scene, allow_outside=True) == []
