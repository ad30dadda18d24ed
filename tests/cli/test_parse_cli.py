"""`labelsplat parse` on an image folder and on a tiny scene; bad input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from labelsplat.io import read_label
from labelsplat.parsers.bisenet import BiSeNet
from labelsplat.parsers.preprocess import face_crop_box
from labelsplat.scene import Frame, HeadFrame, Scene, load_scene, look_at, save_scene

W, H = 96, 64

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def weights(bisenet_weights):
    return bisenet_weights


def make_scene(root, scheme="celebamask19-zll", n=3):
    """A scene in cm: cameras 60 cm from the head centre, fx 80 px -> the face crop applies."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "gt").mkdir()
    frames = []
    for i, yaw in enumerate(np.linspace(-70, 70, n)):
        c = 60 * np.array([np.sin(np.radians(yaw)), 0.1, np.cos(np.radians(yaw))])
        cam = look_at(c, [0, 0, 0], [0, 1, 0], 80, 80, W, H)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"cam{i}.png")
        Image.fromarray(rng.integers(0, 11, (H, W), dtype=np.uint8)).save(root / "gt" / f"cam{i}.png")
        frames.append(Frame(f"cam{i}", cam, file_path=f"images/cam{i}.png", gt_label_path=f"gt/cam{i}.png"))
    save_scene(Scene(root, frames, label_scheme=scheme, head_frame=HeadFrame.identity()))
    return root


def test_parse_folder(cli, weights, tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(src / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(src / "grey.png")  # greyscale
    Image.fromarray(rng.integers(0, 256, (33, 20, 4), dtype=np.uint8)).save(src / "rgba.png")  # RGBA
    Image.fromarray(rng.integers(0, 65535, (30, 30), dtype=np.uint16)).save(src / "deep.png")  # 16-bit
    out = tmp_path / "out"
    r = cli("parse", src, "--weights", weights, "--out", out, "--input-size", "64", "--device", "cpu", "--batch-size", "3")
    assert r.exit_code == 0, r.output
    for stem, shape in (("a", (50, 70)), ("grey", (40, 40)), ("rgba", (33, 20)), ("deep", (30, 30))):
        lab = read_label(out / f"{stem}.png", 19)
        assert lab.shape == shape
        assert (out / "overlays" / f"{stem}.jpg").is_file()


def test_parse_scene_fills_label_path_with_crop(cli, weights, tmp_path):
    root = make_scene(tmp_path / "scene")
    r = cli("parse", root, "--weights", weights, "--input-size", "64", "--device", "cpu")
    assert r.exit_code == 0, r.output
    scene = load_scene(root)
    assert "3 face-cropped" in " ".join(r.output.split())
    for fr in scene.frames:
        assert fr.label_path == f"labels/{fr.name}.png"
        lab = read_label(root / fr.label_path, 19, shape=(H, W))
        box = face_crop_box(fr.camera, np.zeros(3), 15.0)
        assert box is not None
        outside = np.ones((H, W), bool)
        outside[box.y0 : box.y1, box.x0 : box.x1] = False
        assert (lab[outside] == 0).all()
        assert fr.gt_label_path == f"gt/{fr.name}.png"  # untouched
    data = json.loads((root / "transforms.json").read_text())
    assert data["parse"]["crop_radius"] == 15.0 and data["schema_version"] == 1


def test_parse_scene_converts_to_scene_scheme(cli, weights, tmp_path):
    root = make_scene(tmp_path / "lapa", scheme="lapa11", n=2)
    r = cli("parse", root, "--weights", weights, "--input-size", "64", "--device", "cpu", "--no-crop")
    assert r.exit_code == 0, r.output
    assert "celebamask19-zll -> lapa11" in " ".join(r.output.split())
    for fr in load_scene(root).frames:
        read_label(root / fr.label_path, 11, shape=(H, W))


def test_parse_bad_inputs(cli, weights, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("parse", empty, "--weights", weights, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no images" in r.output
    r = cli("parse", empty, "--weights", weights)
    assert r.exit_code == 2 and "--out" in r.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    r = cli("parse", bad, "--weights", weights, "--out", tmp_path / "o2", "--input-size", "64", "--device", "cpu")
    assert r.exit_code == 2 and "broken.png" in r.output and "Traceback" not in r.output
    other = tmp_path / "w11.pth"
    torch.save(BiSeNet(11).state_dict(), other)
    img = tmp_path / "one"
    img.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img / "x.png")
    r = cli("parse", img, "--weights", other, "--out", tmp_path / "o3")
    assert r.exit_code == 2 and "11 classes but 19" in " ".join(r.output.split())
    r = cli("parse", img, "--weights", tmp_path / "missing.pth", "--out", tmp_path / "o4")
    assert r.exit_code == 2 and "not found" in r.output
    scene = make_scene(tmp_path / "sc", n=1)
    r = cli("parse", scene, "--weights", weights, "--out", tmp_path / "o5")
    assert r.exit_code == 2 and "in place" in r.output


def test_parse_scene_lr_convention_swaps_pairs(cli, weights, tmp_path):
    from labelsplat.schemes import get_scheme

    root = make_scene(tmp_path / "lr", n=2)
    args = ("parse", root, "--weights", weights, "--input-size", "64", "--device", "cpu", "--no-crop")
    assert cli(*args).exit_code == 0
    plain = [read_label(root / f.label_path) for f in load_scene(root).frames]
    r = cli(*args, "--lr-convention", "image", "--overwrite")  # replaces the labels of the first parse
    assert r.exit_code == 0 and "left/right swap" in " ".join(r.output.split())
    swapped = [read_label(root / f.label_path) for f in load_scene(root).frames]
    lut = get_scheme("celebamask19-zll").flip_permutation()  # swaps l_/r_ ids, no spatial flip
    assert any((lut[a] != a).any() for a in plain)  # the random parser does predict paired classes
    for a, b in zip(plain, swapped):
        assert np.array_equal(lut[a], b)
    assert cli(*args, "--lr-convention", "sideways").exit_code == 2
