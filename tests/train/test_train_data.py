"""Training data: flip with left/right swap, determinism, mixing, scheme conversion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from labelsplat.errors import LabelsplatError
from labelsplat.train.data import AugmentConfig, TrainData, augment, parse_mix

L_BROW, R_BROW, L_EYE, R_EYE, NOSE = 2, 3, 4, 5, 10


def test_flip_augmentation_swaps_left_right_classes():
    lab = np.zeros((8, 8), np.uint8)
    lab[2, 1] = L_EYE  # image-left column
    lab[2, 6] = R_BROW
    lab[5, 3] = NOSE
    lab[7, 0] = 255
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = 200  # bright left half
    cfg = AugmentConfig(scales=(1.0,), brightness=0, contrast=0, saturation=0, hflip=1.0)
    out_rgb, out_lab = augment(rgb, lab, 8, np.random.default_rng(0), cfg, "celebamask19-zll")
    assert out_lab[2, 6] == R_EYE  # mirrored position, partner class
    assert out_lab[2, 1] == L_BROW
    assert out_lab[5, 4] == NOSE  # unpaired class only moves
    assert out_lab[7, 7] == 255  # ignore stays ignore
    assert (out_rgb[:, 4:] == 200).all() and (out_rgb[:, :4] == 0).all()
    assert ((out_lab != 0).sum()) == ((lab != 0).sum())


def test_scale_crop_output_size_and_label_values(tiny_dataset):
    data = TrainData([tiny_dataset], [], scheme="celebamask19-zll", input_size=64, crop_size=48,
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x, y = data.batch(0, 3, seed=0)
    assert x.shape == (3, 3, 48, 48) and x.dtype == torch.float32
    assert y.shape == (3, 48, 48) and y.dtype == torch.int64
    assert set(torch.unique(y).tolist()) <= {0, 1, 2, 3, 4, 5, 10, 255}
    x2, y2 = data.batch(0, 3, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # a batch depends only on (seed, step)
    x3, _ = data.batch(1, 3, seed=0)
    assert not torch.equal(x, x3)
    assert len(data) == 8  # the rejected view is skipped


def test_mixing_weights_and_errors(tiny_dataset, tiny_dataset_b):
    data = TrainData([tiny_dataset], [(tiny_dataset_b, 0.25)], scheme="celebamask19-zll", input_size=32,
                     crop_size=32, mean=(0, 0, 0), std=(1, 1, 1))
    assert np.allclose(data.weights, [0.75, 0.25])
    d = data.describe()
    assert d[0]["views"] == 8 and d[1]["views"] == 4
    assert parse_mix("some/dir:0.3")[1] == pytest.approx(0.3)
    for bad in ("dir", "dir:abc", "dir:1.0", "dir:0"):
        with pytest.raises(LabelsplatError):
            parse_mix(bad)
    with pytest.raises(LabelsplatError, match="add up"):
        TrainData([tiny_dataset], [(tiny_dataset_b, 0.6), (tiny_dataset_b, 0.5)], scheme="celebamask19-zll",
                  input_size=32, crop_size=32, mean=(0, 0, 0), std=(1, 1, 1))


def test_labels_converted_from_dataset_scheme(tmp_path):
    root = tmp_path / "camhq"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(root / "images" / "a.png")
    lab = np.zeros((32, 32), np.uint8)
    lab[10:20, 10:20] = 2  # "nose" in the official CelebAMask-HQ order
    lab[0, 0] = 255
    Image.fromarray(lab).save(root / "labels" / "a.png")
    (root / "manifest.json").write_text(json.dumps({"label_scheme": "celebamask-hq", "views": [{"name": "a"}]}))
    data = TrainData([root], [], scheme="celebamask19-zll", input_size=32, crop_size=32, mean=(0, 0, 0), std=(1, 1, 1))
    _, out = data.load(0, 0)
    assert (out[10:20, 10:20] == NOSE).all() and out[0, 0] == 255 and out[25, 25] == 0
