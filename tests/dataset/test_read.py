"""Reading datasets in the dataset layout of docs/design.md: tolerant manifest, rejected views, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from labelsplat.dataset.read import read_dataset
from labelsplat.errors import LabelsplatError


def _ds(tmp_path, views, scheme="celebamask19-zll", files=("a", "b")):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    for n in files:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / f"{n}.png")
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "labels" / f"{n}.png")
    (root / "manifest.json").write_text(json.dumps({"schema_version": 1, "label_scheme": scheme, "views": views,
                                                     "counts": {"views": len(views)}}))
    return root


def test_read_tolerant_manifest(tmp_path):
    root = _ds(tmp_path, [
        {"name": "a", "image": "images/a.png", "label": "labels/a.png", "yaw": 75.0, "pitch": -3, "split": "train",
         "mean_confidence": 0.9, "camera": {"w": 4}},
        {"name": "b"},  # defaults: images/b.png, labels/b.png, no pose
        {"name": "r", "accepted": False, "reason": "low confidence"},
    ])
    ds = read_dataset(root)
    assert [v.name for v in ds.views] == ["a", "b"] and ds.n_rejected == 1
    a, b = ds.views
    assert a.yaw == 75.0 and a.pitch == -3.0 and a.extra["mean_confidence"] == 0.9
    assert a.image == root / "images" / "a.png" and b.label == root / "labels" / "b.png"
    assert b.yaw is None and ds.extra["counts"] == {"views": 3}
    assert [v.name for v in read_dataset(root, split="val").views] == ["b"]  # b has no split: kept


@pytest.mark.parametrize("views,scheme,match", [
    ([{"name": "a"}, {"name": "a"}], "celebamask19-zll", "duplicate"),
    ([{"name": "zz"}], "celebamask19-zll", "label file missing|image file missing"),
    ([{"name": "a"}], "no-such-scheme", "no-such-scheme"),
    ([{"name": "a", "yaw": "left"}], "celebamask19-zll", "yaw"),
    ([{"name": "a", "accepted": False, "reason": "x"}], "celebamask19-zll", "no usable views"),
])
def test_read_errors(tmp_path, views, scheme, match):
    with pytest.raises(LabelsplatError, match=match):
        read_dataset(_ds(tmp_path, views, scheme))


def test_not_a_dataset(tmp_path):
    with pytest.raises(LabelsplatError, match="not found"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(LabelsplatError, match="manifest"):
        read_dataset(tmp_path)
