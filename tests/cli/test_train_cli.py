"""`labelsplat dataset from-scenes`, `train`, `finetune` (+ --mix, --resume), `export-onnx`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from labelsplat.dataset.read import read_dataset
from labelsplat.io import read_label, read_rgb
from labelsplat.parsers.bisenet import load_bisenet
from labelsplat.scene import Frame, HeadFrame, Scene, load_scene, look_at, save_scene, yaw_pitch

W, H = 96, 64

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_scene(root, n=4, with_noisy=True):
    """Scene in cm, cameras 60 cm away, fx 80 px (face crop 40 px); yaws spread over +-70 degrees."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "gt").mkdir()
    (root / "labels").mkdir()
    frames = []
    for i, yaw in enumerate(np.linspace(-70, 70, n)):
        c = 60 * np.array([np.sin(np.radians(yaw)), 0.0, np.cos(np.radians(yaw))])
        cam = look_at(c, [0, 0, 0], [0, 1, 0], 80, 80, W, H)
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"c{i}.png")
        gt = np.zeros((H, W), np.uint8)
        gt[20:44, 30:66] = 1
        gt[28:34, 36:42] = 4
        Image.fromarray(gt).save(root / "gt" / f"c{i}.png")
        Image.fromarray(rng.integers(0, 19, (H, W), dtype=np.uint8)).save(root / "labels" / f"c{i}.png")
        frames.append(Frame(f"c{i}", cam, file_path=f"images/c{i}.png", gt_label_path=f"gt/c{i}.png",
                            label_path=f"labels/c{i}.png" if with_noisy else None))
    save_scene(Scene(root, frames, head_frame=HeadFrame.identity()))
    return root


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("sc") / "head_000")


def test_dataset_from_scenes(cli, scene, tmp_path):
    out = tmp_path / "ds"
    r = cli("dataset", "from-scenes", scene, "--out", out, "--labels", "gt")
    assert r.exit_code == 0, r.output
    ds = read_dataset(out)
    assert len(ds) == 4 and ds.label_scheme == "celebamask19-zll"
    src = load_scene(scene)
    for v, fr in zip(ds.views, src.frames):
        yaw, pitch = yaw_pitch(fr.camera.center, src.head_frame)
        assert v.yaw == pytest.approx(yaw) and v.pitch == pytest.approx(pitch)
        assert v.source_scene == "head_000" and v.name == f"head_000_{fr.name}"
        x0, y0, x1, y1 = v.extra["crop_box"]
        full_rgb = read_rgb(scene / fr.file_path)
        full_gt = read_label(scene / fr.gt_label_path)
        assert np.array_equal(read_rgb(v.image), full_rgb[y0:y1, x0:x1])
        assert np.array_equal(read_label(v.label), full_gt[y0:y1, x0:x1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and all(v["accepted"] for v in manifest["views"])
    # crop camera in transforms.json projects the head centre to the crop's centre
    cams = load_scene(out)
    uv, _ = cams.frames[0].camera.project(np.zeros((1, 3)))
    assert abs(uv[0, 0] - cams.frames[0].camera.width / 2) < 1.0

    # frontal-only subset and noisy labels
    r = cli("dataset", "from-scenes", scene, "--out", tmp_path / "frontal", "--max-yaw", "30", "--labels", "noisy",
            "--no-crop")
    assert r.exit_code == 0, r.output
    fr = read_dataset(tmp_path / "frontal")
    assert len(fr) == 2 and all(abs(v.yaw) < 30 for v in fr.views)
    assert read_label(fr.views[0].label).shape == (H, W)


def test_from_scenes_crops_to_one_size(cli, tmp_path):
    """Cameras at 50 and 75 cm give face crops of different sides: every view is resized to one."""
    root = tmp_path / "near_far"
    (root / "images").mkdir(parents=True)
    (root / "gt").mkdir()
    frames = []
    for i, (yaw, dist) in enumerate([(-20, 50.0), (0, 75.0), (20, 60.0)]):
        c = dist * np.array([np.sin(np.radians(yaw)), 0.0, np.cos(np.radians(yaw))])
        cam = look_at(c, [0, 0, 0], [0, 1, 0], 80, 80, W, H)
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(root / "images" / f"c{i}.png")
        Image.fromarray(np.ones((H, W), np.uint8)).save(root / "gt" / f"c{i}.png")
        frames.append(Frame(f"c{i}", cam, file_path=f"images/c{i}.png", gt_label_path=f"gt/c{i}.png"))
    save_scene(Scene(root, frames, head_frame=HeadFrame.identity()))
    r = cli("dataset", "from-scenes", root, "--out", tmp_path / "ds")
    assert r.exit_code == 0, r.output
    ds = read_dataset(tmp_path / "ds")
    sides = {v.extra["crop_box"][2] - v.extra["crop_box"][0] for v in ds.views}
    assert len(sides) == 3  # the crops differ ...
    shapes = {read_rgb(v.image).shape for v in ds.views} | {read_label(v.label).shape + (3,) for v in ds.views}
    assert shapes == {(40, 40, 3)}  # ... and are stored at one size, the median side (60 cm: 40 px)
    for f in load_scene(tmp_path / "ds").frames:  # the resized crop's camera still sees the head at its centre
        uv, _ = f.camera.project(np.zeros((1, 3)))
        assert (f.camera.width, f.camera.height) == (40, 40) and np.abs(uv[0] - 20).max() < 1.0
    r = cli("dataset", "from-scenes", root, "--out", tmp_path / "ds32", "--crop-size", "32")
    assert r.exit_code == 0 and {read_rgb(v.image).shape for v in read_dataset(tmp_path / "ds32").views} == {(32, 32, 3)}


def test_from_scenes_errors(cli, tmp_path):
    sc = make_scene(tmp_path / "nolabels", n=2, with_noisy=False)
    r = cli("dataset", "from-scenes", sc, "--out", tmp_path / "x", "--labels", "noisy")
    assert r.exit_code == 2 and "label_path" in r.output
    assert not (tmp_path / "x").exists()
    r = cli("dataset", "from-scenes", sc, "--out", tmp_path / "y", "--max-yaw", "1")
    assert r.exit_code == 2 and "no view left" in r.output
    assert not (tmp_path / "y").exists()


def test_train_finetune_mix_resume_export(cli, scene, tmp_path):
    ds = tmp_path / "ds"
    assert cli("dataset", "from-scenes", scene, "--out", ds).exit_code == 0
    base = tmp_path / "base.pth"
    common = ["--input-size", "32", "--batch-size", "2", "--device", "cpu", "--log-every", "1"]
    r = cli("train", "--data", ds, "--out", base, "--iters", "1", *common)
    assert r.exit_code == 0, r.output
    assert load_bisenet(base).n_classes == 19
    r = cli("train", "--data", ds, "--out", base, "--iters", "1", *common)
    assert r.exit_code == 2 and "already exists" in r.output
    r = cli("train", "--data", ds, "--out", base, "--iters", "2", *common, "--resume")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "base.pth.json").read_text())["steps"] == 2
    ft = tmp_path / "ft.pth"
    r = cli("finetune", "--init", base, "--data", ds, "--mix", f"{ds}:0.5", "--out", ft, "--iters", "1",
            "--batch-size", "2", "--device", "cpu")
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "ft.pth.json").read_text())
    assert meta["input_size"] == 32  # taken from --init's sidecar
    assert [round(d["weight"], 3) for d in meta["data"]] == [0.5, 0.5]
    r = cli("finetune", "--init", base, "--data", ds, "--mix", f"{ds}:1.5", "--out", tmp_path / "bad.pth")
    assert r.exit_code == 2 and "RATIO" in r.output
    r = cli("train", "--data", tmp_path / "nothing", "--out", tmp_path / "n.pth", "--iters", "1")
    assert r.exit_code == 2 and "not found" in r.output

    # parse with the fine-tuned weights picks the sidecar's input size
    r = cli("parse", scene, "--weights", ft, "--device", "cpu", "--overwrite")  # the scene has labels
    assert r.exit_code == 0 and "input 32px" in r.output


def test_export_onnx_cli(cli, tmp_path):
    from labelsplat.parsers.bisenet import BiSeNet

    torch.manual_seed(0)
    w = tmp_path / "w.pth"
    torch.save(BiSeNet(19).state_dict(), w)
    onnx_path = tmp_path / "m.onnx"
    r = cli("export-onnx", w, "--out", onnx_path, "--input-size", "64")
    try:
        import onnx  # noqa: F401
    except ImportError:  # without the [onnx] extra: one clear error naming the fix
        assert r.exit_code == 2 and "pip install onnx onnxruntime" in r.output and not onnx_path.exists()
        return
    assert r.exit_code == 0, r.output
    assert onnx_path.stat().st_size > 1_000_000
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    assert side["input_size"] == 64 and len(side["classes"]) == 19 and side["input_name"] == "input"
    r = cli("export-onnx", tmp_path / "missing.pth", "--out", tmp_path / "x.onnx")
    assert r.exit_code == 2 and "not found" in r.output


def _torchvision_resnet18_state(seed=1):
    """A state dict with torchvision's resnet18 names and shapes (random values; torchvision is not needed)."""
    from labelsplat.parsers.resnet import Resnet18

    torch.manual_seed(seed)
    sd = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in Resnet18().state_dict().items()}
    return {**sd, "fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}


def test_backbone_weights(cli, scene, tmp_path):
    from labelsplat.errors import LabelsplatError
    from labelsplat.parsers.bisenet import BiSeNet, load_backbone_weights

    sd = _torchvision_resnet18_state()
    w = tmp_path / "resnet18.pth"
    torch.save(sd, w)
    model = BiSeNet(19)
    assert load_backbone_weights(model, w) == len(sd) - 2
    assert torch.equal(model.cp.resnet.layer3[0].downsample[0].weight, sd["layer3.0.downsample.0.weight"])
    torch.save(BiSeNet(19).state_dict(), tmp_path / "bisenet.pth")
    with pytest.raises(LabelsplatError, match="not a torchvision ResNet-18 state dict"):
        load_backbone_weights(model, tmp_path / "bisenet.pth")
    ds = tmp_path / "ds"
    assert cli("dataset", "from-scenes", scene, "--out", ds).exit_code == 0
    common = ["--data", ds, "--iters", "1", "--input-size", "32", "--batch-size", "2", "--device", "cpu"]
    r = cli("train", *common, "--out", tmp_path / "m.pth", "--backbone-weights", w)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m.pth.json").read_text())["config"]["backbone_weights"] == str(w)
    r = cli("train", *common, "--out", tmp_path / "bad.pth", "--backbone-weights", tmp_path / "bisenet.pth")
    assert r.exit_code == 2 and "ResNet-18" in r.output and not (tmp_path / "bad.pth").exists()


def test_validation_miou_logged_when_a_val_split_exists(cli, scene, tmp_path):
    import shutil

    second = tmp_path / "head_001"
    shutil.copytree(scene, second)
    ds = tmp_path / "ds"
    r = cli("dataset", "from-scenes", scene, second, "--out", ds, "--val-fraction", "0.5")
    assert r.exit_code == 0, r.output
    n_val = sum(v["split"] == "val" for v in json.loads((ds / "manifest.json").read_text())["views"])
    assert n_val == 4
    r = cli("train", "--data", ds, "--out", tmp_path / "m.pth", "--iters", "2", "--ckpt-every", "1",
            "--input-size", "32", "--batch-size", "2", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "validation mIoU" in r.output and "on 4 val view(s) at step 2" in r.output
    log = [json.loads(x) for x in (tmp_path / "m.pth.train_log.jsonl").read_text().splitlines()]
    val = [x for x in log if "val_miou" in x]
    assert [x["step"] for x in val] == [1, 2] and all(0.0 <= x["val_miou"] <= 1.0 for x in val)
    assert json.loads((tmp_path / "m.pth.json").read_text())["validation"] == val
