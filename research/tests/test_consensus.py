"""consensus_labels on hand-built planar scenes where the answer is known."""

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.scene import look_at
from research.consensus import consensus_labels

K = 5


def _plane(xs=(-0.5, 0.0, 0.5)):
    """Cameras at (x, 0, 10) looking at the plane z = 0; per view the world points of its pixel
    centres (H, W, 3) and the exact depth (camera z)."""
    cams = [look_at([x, 0.0, 10.0], [0, 0, 0], [0, 1, 0], 40.0, 40.0, 32, 32) for x in xs]
    pts, depths = [], []
    for cam in cams:
        origin, d = cam.pixel_rays()
        t = -origin[2] / d[..., 2]
        p = origin + t[..., None] * d
        pts.append(p)
        R = cam.w2c_opencv
        depths.append(p @ R[:3, :3].T[:, 2] + R[2, 3])
    return cams, pts, depths


def _central(p, r=2.0):
    """Pixels whose surface point every camera of _plane sees (|x|, |y| < r)."""
    return (np.abs(p[..., 0]) < r) & (np.abs(p[..., 1]) < r)


def test_consistent_labels_stay_unchanged():
    cams, pts, depths = _plane()
    uniform = [np.full((32, 32), 3, np.uint8) for _ in cams]
    fused, stats = consensus_labels(uniform, depths, cams, K)
    assert all(np.array_equal(f, u) for f, u in zip(fused, uniform)) and stats["changed"] == 0
    assert stats["lifted"] == 3 * 32 * 32 and stats["mean_votes"] > 2.0
    # a world-consistent two-region labelling: only pixels at the region edge may differ
    labels = [(1 + (p[..., 0] > 0.3)).astype(np.uint8) for p in pts]
    fused, _ = consensus_labels(labels, depths, cams, K)
    for f, lab, p in zip(fused, labels, pts):
        far = np.abs(p[..., 0] - 0.3) > 0.3  # > 1 px from the edge (a pixel is 0.25 units here)
        assert np.array_equal(f[far], lab[far])
        assert (f != lab).mean() < 0.02


def test_minority_label_is_outvoted_everywhere():
    cams, pts, depths = _plane()
    labels = [np.full((32, 32), 1, np.uint8) for _ in cams]
    patch = _central(pts[2], 1.0)
    labels[2][patch] = 2  # one view calls a surface patch 2, two views call it 1
    fused, stats = consensus_labels(labels, depths, cams, K)
    assert np.all(fused[2][patch] == 1)
    assert np.all(fused[0] == 1) and np.all(fused[1] == 1)
    assert stats["per_view"][2]["changed"] == int(patch.sum())
    # the same with stride 2 (votes on a 2 px grid): the patch interior still flips
    fused2, _ = consensus_labels(labels, depths, cams, K, stride=2)
    inner = _central(pts[2], 0.7)
    assert np.all(fused2[2][inner] == 1) and np.all(fused2[0] == 1)


def test_occluded_points_do_not_vote():
    cams, pts, depths = _plane()
    labels = [np.full((32, 32), 1, np.uint8), np.full((32, 32), 1, np.uint8), np.full((32, 32), 1, np.uint8)]
    region = [_central(p, 1.0) for p in pts]
    labels[1][region[1]] = 3
    labels[2][region[2]] = 3
    # without occlusion: 3 wins 2:1 on view 0's region
    fused, _ = consensus_labels(labels, depths, cams, K)
    assert np.all(fused[0][_central(pts[0], 0.8)] == 3)
    # view 1 sees a nearer occluder over that region: its label 3 there belongs to the occluder,
    # so it must not vote for view 0's plane points -> 1 (own) vs 3 (view 2): tie -> own label
    occ = [d.copy() for d in depths]
    occ[1] = np.where(region[1], 0.5 * depths[1], depths[1])
    fused, _ = consensus_labels(labels, occ, cams, K)
    assert np.all(fused[0][_central(pts[0], 0.8)] == 1)
    # the occluder's own pixels lift to points no other view sees: only their own vote, kept
    assert np.all(fused[1][region[1]] == 3)


def test_ignore_never_votes_and_is_filled_by_votes():
    cams, pts, depths = _plane()
    labels = [np.full((32, 32), 2, np.uint8), np.full((32, 32), 255, np.uint8), np.full((32, 32), 255, np.uint8)]
    fused, _ = consensus_labels(labels, depths, cams, K)
    assert np.all(fused[0] == 2)  # the 255 views cast no vote against it
    c1 = _central(pts[1])
    assert np.all(fused[1][c1] == 2)  # 255 pixels take the votes of the view that sees them
    # a 255 pixel with no vote at all stays 255
    labels = [np.full((32, 32), 255, np.uint8) for _ in cams]
    fused, stats = consensus_labels(labels, depths, cams, K)
    assert all(np.all(f == 255) for f in fused) and stats["changed"] == 0


def test_pixels_without_depth_keep_their_label():
    cams, pts, depths = _plane()
    labels = [np.full((32, 32), 1, np.uint8) for _ in cams]
    hole = np.zeros((32, 32), bool)
    hole[10:20, 10:20] = True
    labels[0][hole] = 4
    d0 = depths[0].copy()
    d0[hole] = 0.0
    d0[0, 0] = np.nan
    dd = [d0, depths[1], depths[2]]
    fused, stats = consensus_labels(labels, dd, cams, K)
    assert np.all(fused[0][hole] == 4) and stats["per_view"][0]["no_depth"] == 101
    fused, _ = consensus_labels(labels, dd, cams, K, no_depth_label=0)
    assert np.all(fused[0][hole] == 0) and fused[0][0, 0] == 0 and np.all(fused[0][~hole & (d0 > 0)] == 1)


def test_class_weights_as_computed_by_hand():
    cams, pts, depths = _plane()
    labels = [np.full((32, 32), 1, np.uint8), np.full((32, 32), 1, np.uint8), np.full((32, 32), 2, np.uint8)]
    c = [_central(p) for p in pts]
    # unweighted: class 1 has 2 votes, class 2 has 1 -> 1 everywhere all three views see
    fused, _ = consensus_labels(labels, depths, cams, K)
    assert all(np.all(f[m] == 1) for f, m in zip(fused, c))
    # weight 3 on class 2: 1 -> 2 x 1 = 2, 2 -> 1 x 3 = 3 -> 2 wins
    w = np.ones(K)
    w[2] = 3.0
    fused, _ = consensus_labels(labels, depths, cams, K, class_weights=w)
    assert all(np.all(f[m] == 2) for f, m in zip(fused, c))
    # weight 2 on class 2: 2 vs 2, a tie -> every view keeps its own label
    w[2] = 2.0
    fused, _ = consensus_labels(labels, depths, cams, K, class_weights=w)
    assert all(np.all(f[m] == lab[m]) for f, lab, m in zip(fused, labels, c))


def test_min_votes_keeps_thinly_supported_pixels():
    cams, pts, depths = _plane(xs=(-0.5, 0.5))
    labels = [np.full((32, 32), 255, np.uint8), np.full((32, 32), 1, np.uint8)]
    c0 = _central(pts[0])
    # view 0's unknown pixels get one valid vote (view 1's): enough for min_votes=1 ...
    fused, _ = consensus_labels(labels, depths, cams, K, min_votes=1)
    assert np.all(fused[0][c0] == 1)
    # ... not for min_votes=2: they stay 255; view 1's pixels (1 valid vote, their own) stay 1
    fused, stats = consensus_labels(labels, depths, cams, K, min_votes=2)
    assert np.array_equal(fused[0], labels[0]) and np.array_equal(fused[1], labels[1]) and stats["changed"] == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"depth_tolerance": 0.0}, "depth_tolerance"),
    ({"min_votes": 0}, "min_votes"),
    ({"stride": 0}, "stride"),
    ({"class_weights": [1.0, 2.0]}, "class_weights"),
    ({"class_weights": [1.0, 0.0, 1.0, 1.0, 1.0]}, "class_weights"),
    ({"no_depth_label": 7}, "no_depth_label"),
])
def test_bad_options(kwargs, match):
    cams, _, depths = _plane()
    labels = [np.ones((32, 32), np.uint8) for _ in cams]
    with pytest.raises(LabelsplatError, match=match):
        consensus_labels(labels, depths, cams, K, **kwargs)


def test_bad_inputs():
    cams, _, depths = _plane()
    labels = [np.ones((32, 32), np.uint8) for _ in cams]
    with pytest.raises(LabelsplatError, match="one label map and one depth map per camera"):
        consensus_labels(labels[:2], depths, cams, K)
    with pytest.raises(LabelsplatError, match="camera's size"):
        consensus_labels([labels[0][:16]] + labels[1:], depths, cams, K)
    bad = [l.copy() for l in labels]
    bad[1][0, 0] = 9
    with pytest.raises(LabelsplatError, match="label ids"):
        consensus_labels(bad, depths, cams, K)
    with pytest.raises(LabelsplatError, match="integer"):
        consensus_labels([l.astype(np.float32) for l in labels], depths, cams, K)
    with pytest.raises(LabelsplatError, match="at least one view"):
        consensus_labels([], [], [], K)
