"""`labelsplat labels check-lr` on a tiny synthetic scene (exact labels -> subject; swapped
pairs -> image), `parse --lr-convention auto`'s measure-and-swap step, and `parse --parser
mediapipe` argument errors (no MediaPipe needed)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from labelsplat.io import read_label, write_png
from labelsplat.scene import Frame, Scene, load_scene, save_scene
from labelsplat.schemes import get_scheme

ZLL = get_scheme("celebamask19-zll")
YAWS = (0.0, 18.0, -22.0, 75.0)  # three near-frontal views, one profile (not used by the check)


@pytest.fixture(scope="module")
def synth_scene(tmp_path_factory):
    """A 4-view, 64 px synthetic head with exact labels (subject's left) as label_path."""
    from labelsplat.synth import camera_at, head_frame, render_views, sample_head

    root = tmp_path_factory.mktemp("lr") / "head"
    cams = [camera_at(y, 5.0, resolution=64) for y in YAWS]
    views = render_views(sample_head(7), cams)
    frames = []
    for k, v in enumerate(views):
        name = f"view_{k}"
        write_png(root / "images" / f"{name}.png", v.rgb)
        write_png(root / "labels" / f"{name}.png", v.gt_labels)
        frames.append(Frame(name, v.camera, file_path=f"images/{name}.png", label_path=f"labels/{name}.png",
                            gt_label_path=f"labels/{name}.png"))
    save_scene(Scene(root, frames, label_scheme="celebamask19-zll", head_frame=head_frame()))
    return root


@pytest.fixture
def scene(synth_scene, tmp_path):
    dst = tmp_path / "scene"
    shutil.copytree(synth_scene, dst)
    return dst


def swap_pairs(root):
    s = load_scene(root)
    for fr in s.frames:
        p = s.path(fr.label_path)
        write_png(p, ZLL.flip_permutation()[read_label(p, 19)])


def test_exact_labels_follow_the_subject(cli, scene, tmp_path):
    out = tmp_path / "lr.json"
    r = cli("labels", "check-lr", scene, "--json", out)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "convention: subject" in text and "agreement 100%" in text
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1 and doc["convention"] == "subject" and doc["agreement"] == 1.0
    assert doc["n_views_near_frontal"] == 3 and [v["frame"] for v in doc["views"]] == ["view_0", "view_1", "view_2"]
    assert doc["votes"]["image"] == 0 and doc["votes"]["subject"] >= 5
    for v in doc["views"]:
        assert v["verdict"] == "subject"
        assert "brow" in [pv["pair"] for pv in v["votes"]]  # (this head wears glasses: eyes are often eye_g)
        for pv in v["votes"]:
            assert pv["offset_px"] > 1.0  # the l_ class lies on the subject's left: the image's right here
            assert pv["left_centroid"][0] > pv["right_centroid"][0]


def test_swapped_pairs_read_as_image_convention(cli, scene):
    swap_pairs(scene)
    r = cli("labels", "check-lr", scene, "--max-yaw", "25")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "convention: image" in text and "agreement 100%" in text and "differ from" in text


def test_profile_views_only_give_unknown(cli, scene):
    r = cli("labels", "check-lr", scene, "--max-yaw", "10")  # only view_0 (yaw 0) is kept
    assert r.exit_code == 0 and "convention: subject" in " ".join(r.output.split())
    from labelsplat.parsers.lrcheck import check_lr

    s = load_scene(scene)
    s.frames = [s.frames[3]]
    save_scene(s)
    res = check_lr(scene)
    assert res.convention == "unknown" and res.n_votes == 0 and res.agreement is None
    r = cli("labels", "check-lr", scene)
    assert r.exit_code == 0 and "convention: unknown" in " ".join(r.output.split())


def test_check_lr_bad_input(cli, scene, tmp_path):
    s = load_scene(scene)
    s.head_frame = None
    save_scene(s)
    r = cli("labels", "check-lr", scene)
    assert r.exit_code == 2 and "head_frame" in r.output
    r = cli("labels", "check-lr", tmp_path / "missing")
    assert r.exit_code == 2
    r = cli("labels", "check-lr", scene, "--labels", "noisy")
    assert r.exit_code == 2 and "label" in r.output


def test_auto_lr_swaps_an_image_convention_parser(scene):
    """What `parse --lr-convention auto` runs after labelling a scene at face value."""
    from rich.console import Console

    from labelsplat.cli.parse import _auto_lr

    before = {fr.name: read_label(scene / fr.label_path, 19) for fr in load_scene(scene).frames}
    swap_pairs(scene)  # a parser that names the image's left "left"
    _auto_lr(Console(file=open("/dev/null", "w")), scene, known_subject=False)
    s = load_scene(scene)
    for fr in s.frames:
        assert np.array_equal(read_label(scene / fr.label_path, 19), before[fr.name])
    assert s.extra["parse"]["lr_convention"] == "image" and s.extra["parse"]["lr_check"]["swapped"] is True
    _auto_lr(Console(file=open("/dev/null", "w")), scene, known_subject=False)  # now subject: nothing to do
    s = load_scene(scene)
    assert s.extra["parse"]["lr_check"]["swapped"] is False
    for fr in s.frames:
        assert np.array_equal(read_label(scene / fr.label_path, 19), before[fr.name])


def test_parse_mediapipe_argument_errors(cli, scene, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if the extra were not installed
    imgs = scene / "images"
    r = cli("parse", imgs, "--parser", "mediapipe", "--out", tmp_path / "o")
    assert r.exit_code == 2
    assert "mediapipe" in r.output and "labelsplat[mediapipe]" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()
    r = cli("parse", imgs, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "exactly one of --weights" in r.output
    r = cli("parse", imgs, "--parser", "mediapipe", "--weights", tmp_path / "w.pth", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "exactly one" in r.output
    r = cli("parse", imgs, "--parser", "dlib", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "unknown --parser" in r.output
    r = cli("parse", imgs, "--parser", "mediapipe", "--input-size", "512", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--input-size" in r.output
    r = cli("parse", scene, "--parser", "mediapipe", "--lr-convention", "image")
    assert r.exit_code == 2 and "anatomical" in r.output
    r = cli("parse", imgs, "--weights", tmp_path / "w.pth", "--lr-convention", "auto", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "auto" in r.output


def test_scheme_with_unknown_convention(cli, scene):
    """lapa11 leaves its left/right convention unknown: the check measures it and says how to use it."""
    from labelsplat.schemes import convert_labels

    s = load_scene(scene)
    for fr in s.frames:
        p = s.path(fr.label_path)
        write_png(p, convert_labels(read_label(p, 19), "celebamask19-zll", "lapa11"))
    s.label_scheme = "lapa11"
    save_scene(s)
    r = cli("labels", "check-lr", scene)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "convention: subject" in text and "leaves its convention unknown" in text and "--src-lr subject" in text
