"""Dataset export: round trip, atomicity, splits, CelebAMask-HQ layout, merging."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from labelsplat.dataset.export import CELEBAMASK_DIR, DatasetWriter, assign_splits, merge_datasets
from labelsplat.errors import LabelsplatError
from labelsplat.scene import HeadFrame, load_scene
from labelsplat.schemes import get_scheme
from labelsplat.views import camera_from_pose

S = get_scheme("celebamask19-zll")
HEAD = HeadFrame(np.array([0.0, 0.1, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))


def make_view(seed: int, h=24, w=32):
    g = np.random.default_rng(seed)
    rgb = g.integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = np.zeros((h, w), np.uint8)
    lab[4:20, 6:26] = S.index("skin")
    lab[8:12, 10:16] = S.index("l_eye")
    lab[14:17, 12:20] = S.index("nose")
    lab[0:2, 0:3] = 255
    conf = g.uniform(0, 1, (h, w)).astype(np.float32)
    cam = camera_from_pose(HEAD, 70.0 + seed, 5.0, 3.0, 2.5, 30.0, w, h)
    return rgb, lab, conf, cam


def write_basic(out, **kw):
    views = {}
    with DatasetWriter(out, "celebamask19-zll", head_frame=HEAD, config={"sampler": "extreme"}, seed=3, **kw) as wr:
        for i, (name, scene, accepted) in enumerate([("a0", "head_000", True), ("a1", "head_001", True),
                                                     ("r0", "head_000", False)]):
            rgb, lab, conf, cam = make_view(i)
            meta = {"source_scene": scene, "yaw": 70.0 + i, "pitch": 5.0, "roll": 3.0}
            if not accepted:
                meta.update(accepted=False, reason="mean foreground confidence 0.41 < 0.6")
            wr.add_view(name, rgb, lab, conf, cam, meta)
            views[name] = (rgb, lab, conf, cam)
    return views


def test_round_trip_with_plain_readers_and_load_scene(tmp_path):
    out = tmp_path / "dataset"
    views = write_basic(out, val_fraction=0.5, celebamask_layout=True)
    man = json.loads((out / "manifest.json").read_text())
    assert man["schema_version"] == 1 and man["label_scheme"] == "celebamask19-zll"
    assert man["seed"] == 3 and man["config"] == {"sampler": "extreme"} and "numpy" in man["versions"]
    assert man["counts"] == {"views": 3, "accepted": 2, "rejected": 1}
    by = {v["name"]: v for v in man["views"]}
    for name in ("a0", "a1"):
        rgb, lab, conf, cam = views[name]
        v = by[name]
        assert v["accepted"] is True and v["reason"] is None and v["roll"] == 3.0
        assert np.array_equal(np.asarray(Image.open(out / v["image"])), rgb)
        img = Image.open(out / v["label"])
        assert img.mode == "L" and np.array_equal(np.asarray(img), lab)
        assert np.array_equal(np.asarray(Image.open(out / v["confidence"])), np.rint(conf * 255).astype(np.uint8))
        assert (out / v["overlay"]).is_file()
        fg = (lab != 0) & (lab != 255)
        assert v["mean_confidence"] == pytest.approx(float(conf[fg].mean()), rel=1e-6)
    # identity-level split: the two scenes land in different splits, the rejected view follows its scene
    assert {by["a0"]["split"], by["a1"]["split"]} == {"train", "val"}
    assert by["r0"]["split"] == by["a0"]["split"]
    r = by["r0"]
    assert r["accepted"] is False and "0.41" in r["reason"]
    assert not (out / "images" / "r0.png").exists() and not (out / "labels" / "r0.png").exists()
    assert (out / "rejected" / "r0.jpg").is_file()
    # canonical transforms.json of the accepted cameras
    scene = load_scene(out)
    assert [f.name for f in scene.frames] == ["a0", "a1"]
    assert scene.label_scheme == "celebamask19-zll"
    assert np.allclose(scene.head_frame.center, HEAD.center)
    for f in scene.frames:
        cam = views[f.name][3]
        assert np.allclose(f.camera.c2w, cam.c2w) and f.camera.fx == cam.fx and f.camera.width == cam.width
        assert f.label_path == f"labels/{f.name}.png" and scene.path(f.file_path).is_file()
        assert f.extra["source_scene"] in ("head_000", "head_001")
    # CelebAMask-HQ layout: binary masks named in the official order
    camhq = get_scheme("celebamask-hq")
    lab = views["a0"][1]
    masks = sorted(p.name for p in (out / CELEBAMASK_DIR / "0").glob("00000_*.png"))
    assert masks == ["00000_l_eye.png", "00000_nose.png", "00000_skin.png"]
    nose = np.asarray(Image.open(out / CELEBAMASK_DIR / "0" / "00000_nose.png"))
    assert set(np.unique(nose).tolist()) == {0, 255}
    assert np.array_equal(nose == 255, lab == S.index("nose"))
    assert "nose" in camhq.classes
    index = json.loads((out / CELEBAMASK_DIR / "index.json").read_text())
    assert [e["name"] for e in index["views"]] == ["a0", "a1"]


def test_dataset_reader_accepts_the_export(tmp_path):
    read = pytest.importorskip("labelsplat.dataset.read")
    out = tmp_path / "ds"
    write_basic(out)
    ds = read.read_dataset(out)
    assert [v.name for v in ds.views] == ["a0", "a1"] and ds.label_scheme == "celebamask19-zll"
    assert ds.views[0].yaw == pytest.approx(70.0)


def test_failure_inside_the_writer_leaves_nothing(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(out, S) as wr:
            rgb, lab, conf, cam = make_view(0)
            wr.add_view("v0", rgb, lab, conf, cam, {"source_scene": "s"})
            raise RuntimeError("render crashed")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_all_rejected_or_empty_is_an_error_and_writes_nothing(tmp_path):
    out = tmp_path / "ds"
    rgb, lab, conf, cam = make_view(0)
    with pytest.raises(LabelsplatError, match="all 1 views were rejected"):
        with DatasetWriter(out, S) as wr:
            wr.add_view("v0", rgb, lab, conf, cam, {"accepted": False, "reason": "too dark"})
    with pytest.raises(LabelsplatError, match="no views"):
        with DatasetWriter(out, S):
            pass
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "ds"
    write_basic(out)
    with pytest.raises(LabelsplatError, match="already exists"):
        write_basic(out)
    write_basic(out, overwrite=True)
    assert (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_add_view_validates_its_inputs(tmp_path):
    rgb, lab, conf, cam = make_view(0)
    with pytest.raises(LabelsplatError):
        with DatasetWriter(tmp_path / "ds", S) as wr:
            wr.add_view("v0", rgb, lab, conf, cam, {})
            with pytest.raises(LabelsplatError, match="duplicate"):
                wr.add_view("v0", rgb, lab, conf, cam, {})
            with pytest.raises(LabelsplatError, match="uint8"):
                wr.add_view("v1", rgb.astype(np.float32), lab, conf, cam, {})
            with pytest.raises(LabelsplatError, match="outside scheme"):
                wr.add_view("v2", rgb, np.full_like(lab, 30), conf, cam, {})
            with pytest.raises(LabelsplatError, match="camera"):
                wr.add_view("v3", rgb[:, :10], lab[:, :10], conf[:, :10], cam, {})
            with pytest.raises(LabelsplatError, match="confidence"):
                wr.add_view("v4", rgb, lab, conf * 3, cam, {})
            with pytest.raises(LabelsplatError, match="view name .* contains '/'"):
                wr.add_view("../x", rgb, lab, conf, cam, {})
            with pytest.raises(LabelsplatError, match="without a reason"):
                wr.add_view("v5", rgb, lab, conf, cam, {"accepted": False})
            raise LabelsplatError("stop")
    assert not (tmp_path / "ds").exists()


def test_assign_splits_is_identity_level_and_seeded():
    names = [f"head_{i:03d}" for i in range(10)]
    a = assign_splits(names + names[:3], 0.3, seed=1)
    assert set(a) == set(names) and sum(v == "val" for v in a.values()) == 3
    assert a == assign_splits(list(reversed(names)), 0.3, seed=1)
    assert a != assign_splits(names, 0.3, seed=2)
    assert assign_splits(["x"], 0.5) == {"x": "train"}
    assert sorted(assign_splits(["x", "y"], 0.01).values()) == ["train", "val"]
    assert set(assign_splits(names, 0.0).values()) == {"train"}
    with pytest.raises(LabelsplatError):
        assign_splits(names, 1.5)


def test_merge_datasets(tmp_path):
    write_basic(tmp_path / "d1")
    other = HeadFrame(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    with DatasetWriter(tmp_path / "d2", S, head_frame=other, seed=4) as wr:
        for i, name in enumerate(["a0", "b1"]):
            rgb, lab, conf, cam = make_view(10 + i)
            wr.add_view(name, rgb, lab, conf, cam, {"source_scene": "head_002", "yaw": 80.0, "pitch": 0.0})
    out = merge_datasets([tmp_path / "d1", tmp_path / "d2"], tmp_path / "merged", val_fraction=0.34, seed=0)
    man = json.loads((out / "manifest.json").read_text())
    names = [v["name"] for v in man["views"]]
    assert names == ["head_000__a0", "a1", "r0", "head_002__a0", "b1"]
    assert man["counts"] == {"views": 5, "accepted": 4, "rejected": 1}
    splits = {v["source_scene"]: v["split"] for v in man["views"]}
    assert all(v["split"] == splits[v["source_scene"]] for v in man["views"]) and "val" in splits.values()
    scene = load_scene(out)
    assert scene.head_frame is None  # the sources' head frames differ: kept per frame
    hf = {f.name: f.extra["head_frame"] for f in scene.frames}
    assert np.allclose(hf["b1"]["center"], other.center) and np.allclose(hf["a1"]["center"], HEAD.center)
    src = np.asarray(Image.open(tmp_path / "d2" / "labels" / "a0.png"))
    assert np.array_equal(np.asarray(Image.open(out / "labels" / "head_002__a0.png")), src)
    assert not (out / "images" / "r0.png").exists() and (out / "rejected" / "r0.jpg").exists()
    # scheme mismatch is refused
    with DatasetWriter(tmp_path / "d3", "lapa11") as wr:
        rgb, _, conf, cam = make_view(0)
        wr.add_view("z", rgb, np.zeros(rgb.shape[:2], np.uint8) + 1, conf, cam, {})
    with pytest.raises(LabelsplatError, match="different label schemes"):
        merge_datasets([tmp_path / "d1", tmp_path / "d3"], tmp_path / "m2")
    assert not (tmp_path / "m2").exists()
