"""Preprocessing as face-parsing.PyTorch, the face crop, registry, and Parser.predict pasting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from labelsplat.errors import LabelsplatError
from labelsplat.parsers.bisenet import BiSeNet
from labelsplat.parsers.infer import Parser
from labelsplat.parsers.preprocess import CropBox, face_crop_box, preprocess, scene_units_per_cm
from labelsplat.parsers.registry import create_model, get_model_info, list_models
from labelsplat.scene import Frame, HeadFrame, Scene, look_at


def test_preprocess_matches_original_recipe():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    x = preprocess(rgb, 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    # the original: Image.resize((512, 512), Image.BILINEAR) then ToTensor + Normalize
    ref = np.asarray(Image.fromarray(rgb).resize((64, 64), Image.BILINEAR), dtype=np.float32) / 255.0
    ref = (ref - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), ref, atol=1e-6)
    with pytest.raises(LabelsplatError, match="multiple of 32"):
        preprocess(rgb, 50, (0, 0, 0), (1, 1, 1))


def test_registry():
    info = get_model_info("bisenet")
    assert info.input_size == 512 and info.label_scheme == "celebamask19-zll"
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert "face-parsing.PyTorch" in info.source and info.license
    assert "bisenet" in list_models()
    assert create_model("bisenet").n_classes == 19
    assert create_model("bisenet", n_classes=11).n_classes == 11
    with pytest.raises(LabelsplatError, match="unknown parser"):
        get_model_info("nope")


def _camera(dist=60.0, fx=80.0, W=96, H=64):
    return look_at([0, 0, dist], [0, 0, 0], [0, 1, 0], fx, fx, W, H)


def test_face_crop_box_centred_clamped_and_skipped():
    cam = _camera()
    box = face_crop_box(cam, np.zeros(3), 15.0)  # half side = 80 * 15 / 60 = 20 px
    assert box == CropBox(28, 12, 68, 52)
    # camera turned left: the head centre projects near the image's right edge and the box
    # is shifted to stay inside the image
    cam2 = look_at([0, 0, 60], [-25, 0, 0], [0, 1, 0], 80, 80, 96, 64)
    uv, _ = cam2.project(np.zeros((1, 3)))
    assert uv[0, 0] > 96 - 18
    b2 = face_crop_box(cam2, np.zeros(3), 15.0)
    assert b2 is not None and b2.x1 == 96 and b2.width == b2.height
    # large face (box >= 80% of the short side): full image
    assert face_crop_box(cam, np.zeros(3), 30.0) is None
    # head behind the camera: full image
    assert face_crop_box(cam, np.array([0, 0, 100.0]), 15.0) is None


def test_scene_units_guess():
    hf = HeadFrame.identity()
    for dist, expected in ((0.6, 0.01), (60.0, 1.0), (600.0, 10.0)):
        cam = _camera(dist=dist)
        sc = Scene(root=".", frames=[Frame("a", cam)], head_frame=hf)
        assert scene_units_per_cm(sc) == expected
    sc = Scene(root=".", frames=[Frame("a", _camera())], head_frame=hf, extra={"units": "mm"})
    assert scene_units_per_cm(sc) == 10.0


def test_predict_pastes_crop_and_background():
    torch.manual_seed(0)
    model = BiSeNet(19).eval()
    info = get_model_info("bisenet")
    from dataclasses import replace

    parser = Parser(model=model, info=replace(info, input_size=32), device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (48, 80, 3), dtype=np.uint8), rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)]
    box = CropBox(10, 5, 42, 37)
    labs = parser.predict(imgs, [box, None], batch_size=2)
    assert labs[0].shape == (48, 80) and labs[1].shape == (30, 30)
    assert labs[0].dtype == np.uint8 and labs[0].max() < 19
    outside = np.ones((48, 80), bool)
    outside[5:37, 10:42] = False
    assert (labs[0][outside] == 0).all()
    # the crop is what the network sees: same result as parsing the cropped image alone
    alone = parser.predict([imgs[0][5:37, 10:42]])[0]
    assert np.array_equal(labs[0][5:37, 10:42], alone)
    with pytest.raises(ValueError, match="outside"):
        parser.predict([imgs[1]], [CropBox(0, 0, 40, 40)])


def test_symlinked_weights_keep_their_sidecar_metadata(tmp_path):
    """A weights file reached through a symlink (experiment folders link their baseline) resolves
    the training's input size from its target's ``<weights>.json``, not the 512 px default."""
    import json

    from labelsplat.parsers.infer import load_parser, read_weights_metadata

    real = tmp_path / "train" / "baseline.pth"
    real.parent.mkdir()
    torch.save(BiSeNet(n_classes=19).state_dict(), real)
    (tmp_path / "train" / "baseline.pth.json").write_text(json.dumps(
        {"model": "bisenet", "label_scheme": "celebamask19-zll", "n_classes": 19, "input_size": 64}))
    link = tmp_path / "exp" / "baseline.pth"
    link.parent.mkdir()
    link.symlink_to(real)
    assert read_weights_metadata(link)["input_size"] == 64
    assert load_parser(link, device="cpu").info.input_size == 64
    # a plain copy without its sidecar has no metadata (registry defaults apply)
    copy = tmp_path / "exp" / "copy.pth"
    copy.write_bytes(real.read_bytes())
    assert read_weights_metadata(copy) is None
    # the link's own sidecar wins over the target's
    (tmp_path / "exp" / "baseline.pth.json").write_text(json.dumps({"input_size": 96}))
    assert read_weights_metadata(link)["input_size"] == 96
