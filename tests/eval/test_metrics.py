import json

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.eval import (
    BIN_NAMES,
    LabellingScores,
    boundary_exclusion_mask,
    confusion_matrix,
    metrics_document,
    pool_metrics_documents,
    read_metrics,
    scores_from_confusion,
    write_metrics,
)

GT = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
PRED = np.array([[0, 1, 1], [255, 2, 0]], np.uint8)


def test_confusion_hand_computed():
    c = confusion_matrix(PRED, GT, 3)
    assert c.dtype == np.int64 and c.shape == (3, 4)
    # rows GT, columns pred, last column = abstained; GT 255 skipped (the pred 0 under it is not counted)
    assert c.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]


def test_scores_hand_computed():
    s = scores_from_confusion(confusion_matrix(PRED, GT, 3), ["bg", "a", "b"])
    # bg: TP1 FN1 FP0 -> IoU 1/2, F1 2/3; a: TP1 FN1 (abstained) FP1 -> IoU 1/3, F1 1/2; b: 1, 1
    assert s["per_class"]["bg"] == pytest.approx({"iou": 0.5, "f1": 2 / 3})
    assert s["per_class"]["a"] == pytest.approx({"iou": 1 / 3, "f1": 0.5})
    assert s["miou"] == pytest.approx((0.5 + 1 / 3 + 1) / 3)
    assert s["mean_f1"] == pytest.approx((0.5 + 1.0) / 2)  # background excluded
    assert s["pixel_acc"] == pytest.approx(3 / 5)
    assert s["coverage"] == pytest.approx(4 / 5)


def test_classes_absent_from_gt_do_not_enter_means():
    gt = np.array([0, 0, 1, 1], np.uint8)
    pred = np.array([0, 2, 1, 1], np.uint8)  # class 2 predicted but absent from GT
    s = scores_from_confusion(confusion_matrix(pred, gt, 4))
    assert s["per_class"]["2"]["iou"] == 0.0
    assert s["per_class"]["3"] == {"iou": None, "f1": None}
    assert s["miou"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["mean_f1"] == pytest.approx(1.0)


def test_abstention_never_raises_a_score():
    """255 counts as wrong: abstaining scores no better than guessing right, no better than having
    those pixels left out of the evaluation, and never raises pixel accuracy."""
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, size=(40, 40)).astype(np.uint8)
    pred = gt.copy()
    wrong = rng.random(gt.shape) < 0.3
    pred[wrong] = (gt[wrong] + 1) % 5
    hard = rng.random(gt.shape) < 0.2  # the pixels a method abstains on (right or wrong before)
    abstain = pred.copy()
    abstain[hard] = 255
    s = scores_from_confusion(confusion_matrix(abstain, gt, 5))
    correct_there = pred.copy()
    correct_there[hard] = gt[hard]
    dropped = scores_from_confusion(confusion_matrix(pred, gt, 5, valid_mask=~hard))
    guessed_right = scores_from_confusion(confusion_matrix(correct_there, gt, 5))
    base = scores_from_confusion(confusion_matrix(pred, gt, 5))
    for key in ("miou", "mean_f1", "pixel_acc"):
        assert s[key] <= guessed_right[key] + 1e-12, key
        assert s[key] < dropped[key], key  # no free pass for skipping hard pixels
    for name in s["per_class"]:
        assert s["per_class"][name]["iou"] <= dropped["per_class"][name]["iou"] + 1e-12
    assert s["pixel_acc"] <= base["pixel_acc"]
    assert s["coverage"] == pytest.approx(1 - hard.mean())
    all_abstain = scores_from_confusion(confusion_matrix(np.full_like(gt, 255), gt, 5))
    assert all_abstain["miou"] == 0.0 and all_abstain["mean_f1"] == 0.0 and all_abstain["coverage"] == 0.0


def test_perfect_and_empty():
    gt = np.array([[0, 1], [2, 255]], np.uint8)
    s = scores_from_confusion(confusion_matrix(gt, gt, 3))
    assert s["miou"] == s["mean_f1"] == s["pixel_acc"] == s["coverage"] == 1.0
    e = scores_from_confusion(confusion_matrix(gt, np.full_like(gt, 255), 3))
    assert e["miou"] is None and e["coverage"] is None
    only_bg = scores_from_confusion(confusion_matrix(np.zeros(3, np.uint8), np.zeros(3, np.uint8), 3))
    assert only_bg["mean_f1"] is None and only_bg["miou"] == 1.0


def test_bad_ids_and_shapes():
    with pytest.raises(LabelsplatError, match="prediction"):
        confusion_matrix(np.array([3], np.uint8), np.array([0], np.uint8), 3)
    with pytest.raises(LabelsplatError, match="ground truth"):
        confusion_matrix(np.array([0], np.uint8), np.array([7], np.uint8), 3)
    with pytest.raises(LabelsplatError, match="shape"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 3)
    with pytest.raises(LabelsplatError):
        confusion_matrix(np.zeros(2, np.float32), np.zeros(2, np.uint8), 3)
    with pytest.raises(LabelsplatError):
        scores_from_confusion(np.zeros((3, 3)))


def test_valid_mask():
    m = np.array([[True, False, True], [True, True, True]])
    c = confusion_matrix(PRED, GT, 3, valid_mask=m)
    assert c.tolist() == [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]


def test_boundary_mask_hand_example():
    gt = np.array([
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1],
        [0, 0, 0, 1, 1],
    ], np.uint8)
    expect = np.array([
        [0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 0],
    ], bool)
    assert np.array_equal(boundary_exclusion_mask(gt), expect)
    assert not boundary_exclusion_mask(gt, radius=0).any()
    assert boundary_exclusion_mask(gt, radius=2)[0, 1:].all() and not boundary_exclusion_mask(gt, radius=2)[0, 0]
    b = boundary_exclusion_mask(np.stack([gt, np.zeros_like(gt)]))
    assert np.array_equal(b[0], expect) and not b[1].any()  # images in a batch do not touch


def test_accumulator_bins_and_boundary():
    rng = np.random.default_rng(3)
    acc = LabellingScores(3, ["bg", "a", "b"])
    views = []
    for yaw in (5.0, -45.0, 75.0, -75.0):
        gt = rng.integers(0, 3, size=(8, 8)).astype(np.uint8)
        pred = np.where(rng.random(gt.shape) < 0.8, gt, 255).astype(np.uint8)
        acc.add(pred, gt, yaw)
        views.append((pred, gt, yaw))
    d = acc.to_dict()
    assert set(d["by_yaw"]) == set(BIN_NAMES) and d["by_yaw"]["90-180"] is None
    assert d["by_yaw"]["60-90"] is not None
    c6090 = confusion_matrix(views[2][0], views[2][1], 3) + confusion_matrix(views[3][0], views[3][1], 3)
    assert d["confusion_by_yaw"]["60-90"] == c6090.tolist()
    assert np.array_equal(np.asarray(d["confusion"]), sum(np.asarray(d["confusion_by_yaw"][b]) for b in BIN_NAMES))
    assert set(d["overall"]) == {"miou", "mean_f1", "pixel_acc", "coverage"}
    assert set(d["per_class"]) == {"bg", "a", "b"}
    be = sum(confusion_matrix(p, g, 3, valid_mask=~boundary_exclusion_mask(g)) for p, g, _ in views)
    assert d["boundary_excluded_confusion"] == be.tolist()
    assert d["num_pixels"] == 4 * 64 and d["num_views"] == 4
    json.dumps(d, allow_nan=False)


def test_pooling_equals_concatenation(tmp_path):
    rng = np.random.default_rng(7)
    data = []
    for yaw in (0.0, 40.0, 100.0, -170.0, 65.0):
        gt = rng.integers(0, 4, size=(6, 9)).astype(np.uint8)
        gt[0, :2] = 255
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 4, size=gt.shape)).astype(np.uint8)
        pred[1, 1] = 255
        data.append((pred, gt, yaw))
    names = ["bg", "x", "y", "z"]
    a, b = LabellingScores(4, names), LabellingScores(4, names)
    for i, (p, g, y) in enumerate(data):
        (a if i < 2 else b).add(p, g, y)
    whole = LabellingScores(4, names)
    for p, g, y in data:
        whole.add(p, g, y)
    docs = [metrics_document({"prediction": acc}, config={"k": i}, seed=i) for i, acc in enumerate((a, b))]
    for i, doc in enumerate(docs):
        write_metrics(tmp_path / f"m{i}.json", doc)
    pooled = pool_metrics_documents([read_metrics(tmp_path / f"m{i}.json") for i in range(2)], names=["s0", "s1"])
    got, want = pooled["labellings"]["prediction"], whole.to_dict()
    for key in ("overall", "by_yaw", "per_class", "boundary_excluded", "confusion", "confusion_by_yaw"):
        assert got[key] == want[key], key
    assert got["num_sources"] == 2 and pooled["pooled_from"] == ["s0", "s1"]
    # the pooled score is not the mean of the per-scene scores
    assert LabellingScores.pool([a, b]).to_dict()["confusion"] == want["confusion"]


def test_document_schema_and_write(tmp_path):
    acc = LabellingScores(2).add(np.array([[0, 1]], np.uint8), np.array([[0, 1]], np.uint8), 10.0)
    doc = metrics_document({"initial": acc, "refined": acc.to_dict()}, consistency={"before": 0.5}, config={"a": 1},
                           seed=3)
    assert doc["schema_version"] == 1 and set(doc["labellings"]) == {"initial", "refined"}
    assert set(doc["versions"]) == {"labelsplat", "torch", "numpy", "python"}
    p = write_metrics(tmp_path / "metrics.json", doc)
    back = json.loads(p.read_text())
    assert back["seed"] == 3 and back["consistency"] == {"before": 0.5}
    assert back["labellings"]["initial"]["by_yaw"]["0-30"]["miou"] == 1.0
    with pytest.raises(LabelsplatError):
        write_metrics(tmp_path / "bad.json", {"schema_version": 1})
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": 99, "labellings": {}}))
    with pytest.raises(LabelsplatError, match="schema_version"):
        read_metrics(tmp_path / "old.json")


def test_pool_refuses_mismatched_classes():
    a = LabellingScores(2).add(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    b = LabellingScores(3).add(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(LabelsplatError, match="different classes"):
        LabellingScores.pool([a, b])
