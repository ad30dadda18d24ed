import json
import math

import numpy as np
import pytest

from labelsplat.io import write_png

# 3 classes used of the 19 (0 background, 1 skin, 10 nose); hand-checkable counts.
GT_A = np.array([[0, 0, 1, 1], [1, 10, 10, 255]], np.uint8)
PR_A = np.array([[0, 1, 1, 1], [255, 10, 0, 0]], np.uint8)
GT_B = np.array([[0, 1, 1, 1], [1, 1, 10, 10]], np.uint8)
PR_B = np.array([[0, 1, 1, 1], [1, 1, 10, 10]], np.uint8)


def _folders(tmp_path):
    for sub, arrays in (("pred", (PR_A, PR_B)), ("gt", (GT_A, GT_B))):
        (tmp_path / sub).mkdir()
        for name, a in zip(("a", "b"), arrays):
            write_png(tmp_path / sub / f"{name}.png", a)
    return tmp_path / "pred", tmp_path / "gt"


def test_evaluate_hand_checkable(cli, tmp_path):
    pred, gt = _folders(tmp_path)
    out = tmp_path / "m" / "metrics.json"
    r = cli("evaluate", pred, gt, "--scheme", "celebamask19-zll", "--out", out, "--seed", "4")
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1 and doc["seed"] == 4 and doc["consistency"] is None
    lab = doc["labellings"]["prediction"]
    conf = np.asarray(lab["confusion"])
    assert conf.shape == (19, 20)
    # pooled over both views: GT bg: 3 px (2 right, 1 -> skin); skin: 8 px (7 right, 1 abstained);
    # nose: 4 px (3 right, 1 -> bg); the GT-ignore pixel is skipped
    assert conf[0, 0] == 2 and conf[0, 1] == 1
    assert conf[1, 1] == 7 and conf[1, 19] == 1
    assert conf[10, 10] == 3 and conf[10, 0] == 1
    assert conf.sum() == 15
    iou_bg, iou_skin, iou_nose = 2 / 4, 7 / 9, 3 / 4  # bg: TP2 FP1 FN1; skin: TP7 FP1 FN1; nose: TP3 FN1
    f1_skin, f1_nose = 14 / 16, 6 / 7
    ov = lab["overall"]
    assert ov["miou"] == pytest.approx((iou_bg + iou_skin + iou_nose) / 3)
    assert ov["mean_f1"] == pytest.approx((f1_skin + f1_nose) / 2)
    assert ov["pixel_acc"] == pytest.approx(12 / 15)
    assert ov["coverage"] == pytest.approx(14 / 15)
    assert lab["per_class"]["nose"]["iou"] == pytest.approx(iou_nose)
    assert lab["per_class"]["hat"] == {"iou": None, "f1": None}
    assert all(v is None for v in lab["by_yaw"].values())  # no scene: yaw unknown
    assert "mIoU" in r.output and "nose" in r.output and "by_yaw bins are null" in r.output


def test_evaluate_mismatched_names(cli, tmp_path):
    pred, gt = _folders(tmp_path)
    (pred / "b.png").rename(pred / "c.png")
    r = cli("evaluate", pred, gt, "--out", tmp_path / "m.json")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "c" in r.output and "without ground truth" in r.output and "without prediction" in r.output
    assert not (tmp_path / "m.json").exists()


def test_evaluate_bad_ids_and_unknown_scheme(cli, tmp_path):
    pred, gt = _folders(tmp_path)
    r = cli("evaluate", pred, gt, "--scheme", "lapa11", "--out", tmp_path / "m.json")  # ids 0, 1, 10 exist in LaPa too
    assert r.exit_code == 0, r.output
    write_png(pred / "a.png", np.full((2, 4), 40, np.uint8))
    r = cli("evaluate", pred, gt, "--out", tmp_path / "m2.json")
    assert r.exit_code == 2 and "a.png" in r.output and "outside" in r.output
    r = cli("evaluate", pred, gt, "--scheme", "nope", "--out", tmp_path / "m3.json")
    assert r.exit_code == 2 and "unknown label scheme" in r.output and "Traceback" not in r.output
    r = cli("evaluate", pred, gt, "--device", "tpu", "--out", tmp_path / "m4.json")
    assert r.exit_code == 2 and "unknown device" in r.output


def _scene(tmp_path, yaws):
    from labelsplat.scene import Frame, HeadFrame, Scene, look_at, save_scene

    root = tmp_path / "scene"
    (root / "gt").mkdir(parents=True)
    frames = []
    for i, yaw in enumerate(yaws):
        y = math.radians(yaw)
        cam = look_at([3 * math.sin(y), 0.0, 3 * math.cos(y)], [0, 0, 0], [0, 1, 0], 10.0, 10.0, 4, 2)
        frames.append(Frame(name=f"v{i}", camera=cam, file_path=f"images/v{i}.png", label_path=f"labels/v{i}.png",
                            gt_label_path=f"gt/v{i}.png"))
    save_scene(Scene(root=root, frames=frames, label_scheme="celebamask19-zll", head_frame=HeadFrame.identity()))
    return root


def test_evaluate_with_scene_fills_yaw_bins(cli, tmp_path):
    root = _scene(tmp_path, [10.0, -75.0])
    write_png(root / "gt" / "v0.png", GT_A)
    write_png(root / "gt" / "v1.png", GT_B)
    (tmp_path / "pred").mkdir()
    write_png(tmp_path / "pred" / "v0.png", PR_A)
    write_png(tmp_path / "pred" / "v1.png", PR_B)
    out = tmp_path / "metrics.json"
    r = cli("evaluate", tmp_path / "pred", "--scene", root, "--out", out, "--name", "refined")
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    lab = doc["labellings"]["refined"]
    assert lab["by_yaw"]["30-60"] is None and lab["by_yaw"]["90-180"] is None
    assert lab["by_yaw"]["60-90"] == {"miou": 1.0, "mean_f1": 1.0, "pixel_acc": 1.0, "coverage": 1.0}
    assert lab["by_yaw"]["0-30"]["pixel_acc"] == pytest.approx(4 / 7)
    assert doc["config"]["yaw_deg"]["v1"] == pytest.approx(-75.0)
    assert "|yaw| 60-90" in r.output
    # same result with the GT folder given explicitly
    r = cli("evaluate", tmp_path / "pred", root / "gt", "--scene", root, "--out", tmp_path / "m2.json", "--name", "refined")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m2.json").read_text())["labellings"]["refined"]["by_yaw"] == lab["by_yaw"]


def test_evaluate_scene_size_mismatch(cli, tmp_path):
    root = _scene(tmp_path, [0.0])
    write_png(root / "gt" / "v0.png", np.zeros((3, 3), np.uint8))
    (tmp_path / "pred").mkdir()
    write_png(tmp_path / "pred" / "v0.png", np.zeros((3, 3), np.uint8))
    r = cli("evaluate", tmp_path / "pred", "--scene", root, "--out", tmp_path / "m.json")
    assert r.exit_code == 2 and "differs from the scene camera" in r.output


def test_evaluate_help_has_example(cli):
    r = cli("evaluate", "--help")
    assert r.exit_code == 0 and "Examples" in r.output and "labelsplat evaluate" in r.output


def test_evaluate_scene_as_prediction(cli, tmp_path):
    """PRED = a scene: its frames' label_path (e.g. a parser's noisy labels) against gt_label_path."""
    from labelsplat.scene import load_scene, save_scene

    root = _scene(tmp_path, [10.0, -75.0])
    (root / "labels").mkdir()
    for i, (g, p) in enumerate(((GT_A, PR_A), (GT_B, PR_B))):
        write_png(root / "gt" / f"v{i}.png", g)
        write_png(root / "labels" / f"v{i}.png", p)
    r = cli("evaluate", root, "--out", tmp_path / "m.json", "--name", "initial")
    assert r.exit_code == 0, r.output
    lab = json.loads((tmp_path / "m.json").read_text())["labellings"]["initial"]
    assert lab["overall"]["pixel_acc"] == pytest.approx(12 / 15) and lab["by_yaw"]["60-90"]["miou"] == 1.0
    # GT as a folder matched to the frames by name; an extra GT file is reported
    write_png(root / "gt" / "zz.png", GT_A)
    r = cli("evaluate", root, root / "gt", "--out", tmp_path / "m2.json")
    assert r.exit_code == 2 and "zz" in r.output and "without prediction" in r.output
    (root / "gt" / "zz.png").unlink()
    r = cli("evaluate", root, root / "gt", "--out", tmp_path / "m2.json")
    assert r.exit_code == 0, r.output
    # a frame without gt_label_path and no GT folder: a clear error
    scene = load_scene(root)
    scene.frames[1].gt_label_path = None
    save_scene(scene)
    r = cli("evaluate", root, "--out", tmp_path / "m3.json")
    assert r.exit_code == 2 and "gt_label_path" in r.output and "v1" in r.output
