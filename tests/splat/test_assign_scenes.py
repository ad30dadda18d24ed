"""Label assignment on hand-built scenes: the multiview votes of a few Gaussians seen by two
cameras (splat/lift.py), the views' agreement and its warning (splat/assign.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelsplat.scene import look_at
from labelsplat.splat.assign import label_agreement
from labelsplat.splat.data import ViewLevel
from labelsplat.splat.lift import vote_agreement, vote_semantics
from labelsplat.splat.model import GaussianModel
from labelsplat.splat.render import camera_tensors

K = 5
RES = 32


def _model(means, scale=0.15, opacity=0.95):
    pts = np.asarray(means, dtype=np.float64)
    m = GaussianModel.from_points(pts, np.full((len(pts), 3), 0.5), np.zeros(len(pts), dtype=np.int64), sh_degree=0,
                                  num_classes=K, init_opacity=opacity)
    with torch.no_grad():
        m.params["scales"].fill_(float(np.log(scale)))
    return m


def _cam(eye):
    """A 32 px camera at ``eye`` looking at the origin (field of view ~37 degrees)."""
    return look_at(np.asarray(eye, dtype=np.float64), np.zeros(3), [0.0, 1.0, 0.0], 1.5 * RES, 1.5 * RES, RES, RES)


def _labels(value):
    return torch.full((RES, RES), value, dtype=torch.int64)


FRONT, SIDE = _cam([0.0, 0.0, 3.0]), _cam([3.0, 0.0, 0.0])


def test_two_views_that_disagree_split_the_vote_and_view_weights_decide():
    m = _model([[0.0, 0.0, 0.0]])
    votes = vote_semantics(m, [FRONT, SIDE], [_labels(2), _labels(3)], K)
    assert votes[0, 2] > 1.0 and torch.allclose(votes[0, 2], votes[0, 3], rtol=1e-3)  # symmetric: a tie
    assert float(votes[0, [0, 1, 4]].abs().sum()) == 0.0
    weighted = vote_semantics(m, [FRONT, SIDE], [_labels(2), _labels(3)], K, view_weights=[1.0, 0.5])
    assert int(weighted[0].argmax()) == 2 and torch.allclose(weighted[0, 3], 0.5 * weighted[0, 2], rtol=1e-3)
    share = vote_agreement(votes)
    assert share["top_share"] == pytest.approx(0.5, abs=1e-3) and not share["no_class_wins"]


def test_an_occluding_gaussian_takes_the_votes_of_the_view_it_hides_from():
    # an opaque Gaussian in front (z = 1) hides the one at the origin from the front camera only
    m = _model([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], scale=0.15, opacity=0.999)
    with torch.no_grad():
        m.params["scales"][1].fill_(float(np.log(0.45)))  # the occluder is larger
    front = vote_semantics(m, [FRONT], [_labels(1)], K)
    assert front[1, 1] > 20 * front[0, 1]  # the hidden Gaussian gets (almost) nothing
    both = vote_semantics(m, [FRONT, SIDE], [_labels(1), _labels(4)], K)
    assert int(both[0].argmax()) == 4  # decided by the one view that sees it
    # the side camera sees both Gaussians side by side: each gets its own pixels' labels
    assert both[1, 4] > 0 and both[1, 1] > both[1, 4]


def test_a_gaussian_seen_by_one_view_only_gets_that_views_label():
    # at x = 1.5 it faces the side camera but lies 27 degrees off the front camera's axis (outside its field)
    m = _model([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]], scale=0.1)
    votes = vote_semantics(m, [FRONT, SIDE], [_labels(2), _labels(3)], K)
    assert float(votes[1, 2]) == 0.0 and votes[1, 3] > 0.1  
    assert int(votes[1].argmax()) == 3


def _level(cams, labels):
    cam_t = [tuple(t[0] for t in camera_tensors([c], "cpu")) for c in cams]
    return ViewLevel(cameras=cams, cam_t=cam_t, images=[torch.zeros(RES, RES, 3)] * len(cams),
                     masks=[torch.ones(RES, RES)] * len(cams), labels=labels)


def test_views_that_disagree_everywhere_warn_and_agreeing_views_do_not():
    rng = np.random.default_rng(0)
    m = _model(rng.uniform(-0.3, 0.3, size=(8, 3)), scale=0.25)
    cams = [_cam([3 * np.sin(a), 0.3, 3 * np.cos(a)]) for a in np.linspace(-1.2, 1.2, 6)]
    noise = [torch.from_numpy(rng.integers(0, K, size=(RES, RES))) for _ in cams]
    doc, warning = label_agreement(m, _level(cams, noise), "head_007", backend="cpu", view_weights=None)
    assert doc["no_class_wins"] and doc["top_share"] < 1 / K + 0.05
    assert warning is not None and warning.startswith("head_007: ") and "no class wins" in warning
    doc, warning = label_agreement(m, _level(cams, [_labels(1)] * len(cams)), "head_007", backend="cpu",
                                   view_weights=None)
    assert doc["top_share"] == pytest.approx(1.0) and warning is None and doc["warning"] is None
    assert vote_agreement(torch.zeros(3, K))["top_share"] is None


@pytest.mark.cuda
def test_cpu_and_gsplat_votes_agree():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("gsplat")
    rng = np.random.default_rng(1)
    m = _model(rng.uniform(-0.4, 0.4, size=(60, 3)), scale=0.08, opacity=0.7)
    cams = [FRONT, SIDE, _cam([0.0, 2.0, 2.2])]
    labels = [torch.from_numpy(rng.integers(0, K, size=(RES, RES))) for _ in cams]
    v_cpu = vote_semantics(m, cams, labels, K, backend="cpu")
    m_cuda = GaussianModel.from_state_dict(m.state_dict(), torch.device("cuda"))
    v_gpu = vote_semantics(m_cuda, cams, labels, K, backend="gsplat").cpu()
    assert v_cpu.sum() > 10
    assert torch.allclose(v_cpu, v_gpu, atol=1e-3, rtol=1e-3)
