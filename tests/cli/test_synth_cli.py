import json

import numpy as np
import pytest

from labelsplat.io import read_label, read_rgb
from labelsplat.scene import load_scene


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    from labelsplat.cli import main

    out = tmp_path_factory.mktemp("synth") / "data"
    code = main(["synth", "--out", str(out), "--identities", "2", "--views", "3", "--rig", "facescape",
                 "--resolution", "64", "--noise", "simulated:medium", "--seed", "7"])
    assert code == 0
    return out


def test_synth_writes_loadable_scenes(synth_dir):
    for name in ("head_000", "head_001"):
        scene = load_scene(synth_dir / name)
        assert len(scene.frames) == 3 and scene.label_scheme == "celebamask19-zll"
        assert scene.head_frame is not None
        assert np.allclose(scene.head_frame.up, [0, 1, 0]) and np.allclose(scene.head_frame.forward, [0, 0, 1])
        doc = json.loads((synth_dir / name / "synth.json").read_text())
        assert doc["schema_version"] == 1 and doc["noise"] == "simulated:medium" and "head" in doc
        for f in scene.frames:
            rgb = read_rgb(scene.path(f.file_path))
            lab = read_label(scene.path(f.label_path), 19, shape=rgb.shape[:2])
            gt = read_label(scene.path(f.gt_label_path), 19, shape=rgb.shape[:2])
            mask = read_label(scene.path(f.mask_path), shape=rgb.shape[:2])
            assert rgb.shape == (64, 64, 3)
            assert np.array_equal(mask > 0, gt != 0)
            assert lab.shape == gt.shape
    a = json.loads((synth_dir / "head_000" / "synth.json").read_text())["head"]
    b = json.loads((synth_dir / "head_001" / "synth.json").read_text())["head"]
    assert a != b  # two different identities


def test_rerender_from_synth_json_is_pixel_identical(synth_dir):
    from labelsplat.synth import load_head, render_views

    scene = load_scene(synth_dir / "head_001")
    views = render_views(load_head(synth_dir / "head_001"), scene.cameras, noise="simulated:medium")
    for f, v in zip(scene.frames, views):
        assert np.array_equal(v.rgb, read_rgb(scene.path(f.file_path)))
        assert np.array_equal(v.gt_labels, read_label(scene.path(f.gt_label_path)))
        assert np.array_equal(v.labels, read_label(scene.path(f.label_path)))


def test_like_rerenders_at_given_cameras(cli, synth_dir, tmp_path):
    src = synth_dir / "head_000"
    cams = json.loads((src / "transforms.json").read_text())
    # keep two frames, reversed, one at another size and focal length; add one looking away
    f0, f1 = cams["frames"][1], dict(cams["frames"][0])
    f1.update(name="big", w=80, h=48, fl_x=f1["fl_x"] * 1.2, fl_y=f1["fl_y"] * 1.2, cx=40.0, cy=24.0)
    away = dict(f0, name="away")
    m = np.array(away["transform_matrix"])
    m[:3, 2] *= -1.0  # flip the viewing direction
    m[:3, 0] *= -1.0
    away["transform_matrix"] = m.tolist()
    cams["frames"] = [f0, f1, away]
    tf = tmp_path / "cams.json"
    tf.write_text(json.dumps(cams))
    r = cli("synth", "--like", src, "--cameras", tf, "--out", tmp_path / "like", "--noise", "none")
    assert r.exit_code == 0, r.output
    assert "away" in r.output and "does not see the head" in r.output
    scene = load_scene(tmp_path / "like" / "head_000")
    assert [f.name for f in scene.frames] == [f0["name"], "big", "away"]
    assert (scene.frames[1].camera.width, scene.frames[1].camera.height) == (80, 48)
    orig = load_scene(src)
    # same camera -> the same pixels as the original scene (RGB and exact labels)
    same = next(f for f in orig.frames if f.name == f0["name"])
    assert np.array_equal(read_rgb(scene.path(scene.frames[0].file_path)), read_rgb(orig.path(same.file_path)))
    assert np.array_equal(read_label(scene.path(scene.frames[0].gt_label_path)), read_label(orig.path(same.gt_label_path)))
    # --noise none: labels are the exact labels
    assert np.array_equal(read_label(scene.path(scene.frames[1].label_path)), read_label(scene.path(scene.frames[1].gt_label_path)))


@pytest.mark.parametrize("args, message", [
    (["--rig", "dome"], "unknown rig"),
    (["--noise", "simulated:extreme"], "unknown noise"),
    (["--views", "0"], "--views must be positive"),
    (["--resolution", "-4"], "--resolution must be positive"),
    (["--identities", "0"], "--identities must be positive"),
])
def test_bad_arguments(cli, tmp_path, args, message):
    r = cli("synth", "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_bad_like_inputs(cli, synth_dir, tmp_path):
    r = cli("synth", "--like", synth_dir / "head_000", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--cameras" in r.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "synth.json").write_text("{not json")
    r = cli("synth", "--like", broken, "--cameras", synth_dir / "head_000" / "transforms.json", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "synth.json" in r.output
    plain = tmp_path / "plain"
    plain.mkdir()
    r = cli("synth", "--like", plain, "--cameras", synth_dir / "head_000" / "transforms.json", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "synth.json is missing" in r.output
    r = cli("synth", "--out", synth_dir, "--identities", "1", "--views", "2", "--resolution", "32")
    assert r.exit_code == 2 and "--overwrite" in r.output
