"""Label assignment after the fit: the assigners through their protocol and the factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fit_scene import CENTER, RADIUS, head_gaussians, ring_cameras
from labelsplat.config import apply_fit_overrides
from labelsplat.config import fit_preset as make_config
from labelsplat.errors import LabelsplatError
from labelsplat.splat import GaussianModel, KeepFitted, VoteAssigner, make_assigner
from labelsplat.splat.assign import Unweight
from labelsplat.splat.data import ViewLevel
from labelsplat.splat.lift import lifted_logits, vote_semantics
from labelsplat.splat.rasterize import rasterize
from labelsplat.splat.render import camera_tensors

K = 19


def _model_and_level():
    pts, col, lab = head_gaussians(150, 0)
    m = GaussianModel.from_points(CENTER + RADIUS * pts, col, lab, sh_degree=0, num_classes=K, init_opacity=0.9)
    cams = ring_cameras(3, 24)
    rng = np.random.default_rng(0)
    labels = [torch.from_numpy(rng.integers(0, K, size=(24, 24))) for _ in cams]
    level = ViewLevel(cameras=cams, cam_t=[tuple(t[0] for t in camera_tensors([c], "cpu")) for c in cams],
                      images=[torch.zeros(24, 24, 3)] * 3, masks=[torch.ones(24, 24)] * 3, labels=labels)
    return m, level


def test_factory():
    assert isinstance(make_assigner(make_config("micro"), K), KeepFitted)
    v = make_assigner(make_config("micro", semantic_lift="vote:0.5"), K)
    assert isinstance(v, VoteAssigner) and v.prior == 0.5 and v.name == "vote:0.5"
    assert isinstance(make_assigner(make_config("micro", semantic_lift="vote"), 0), KeepFitted)  # RGB only


def test_keep_fitted_and_vote():
    m, level = _model_and_level()
    before = m.params["sem"].detach().clone()
    kw = dict(backend="cpu", class_weights=None, view_weights=None, scale=10.0)
    assert KeepFitted().assign(m, level, **kw) is None
    assert torch.equal(m.params["sem"], before)
    cw = torch.linspace(1.0, 3.0, K)
    votes = vote_semantics(m, level.cameras, level.labels, K, view_weights=[1.0, 0.5, 1.0])
    expect = lifted_logits(votes, before, prior=2.0, scale=7.0, class_weights=cw)
    summary = VoteAssigner(2.0, name="vote:2").assign(m, level, backend="cpu", class_weights=cw,
                                                      view_weights=[1.0, 0.5, 1.0], scale=7.0)
    assert torch.allclose(m.params["sem"], expect)
    assert summary["mode"] == "vote:2" and set(summary) == {"mode", "time_s", "gaussians_without_votes",
                                                          "median_vote_weight"}
    assert summary["gaussians_without_votes"] == int((votes.sum(-1) <= 0).sum())


def test_factory_unweight():
    u = make_assigner(make_config("micro", semantic_lift="unweight:0.5", class_weights_by_concept=(("l_eye", 10.0),)), K)
    assert isinstance(u, Unweight) and u.strength == 0.5 and u.name == "unweight:0.5"
    # the fast preset's unweight with its class weights switched off: nothing to undo, no refusal
    no_weights = apply_fit_overrides(make_config("fast"), {"class_weights_by_concept": None})
    assert no_weights.class_weights_by_concept is None and make_assigner(no_weights, K).name == "unweight"
    with pytest.raises(LabelsplatError, match="semantic_lift unweight needs semantic_target=logits"):
        make_config("micro", semantic_lift="unweight", semantic_target="palette", class_weights=(1.0,) * K)


def test_unweight_shifts_the_rendered_logits_by_the_log_weights():
    m, level = _model_and_level()
    kw = dict(backend="cpu", view_weights=None, scale=10.0)
    before = m.params["sem"].detach().clone()
    assert Unweight().assign(m, level, class_weights=None, **kw) is None  # no weights: nothing to undo
    assert torch.equal(m.params["sem"], before)
    cw = torch.ones(K)
    cw[4], cw[11] = 10.0, 3.0
    summary = Unweight(2.0, name="unweight:2").assign(m, level, class_weights=cw, **kw)
    assert summary == {"mode": "unweight:2", "max_shift": round(2 * float(np.log(10.0)), 4)}
    assert torch.allclose(m.params["sem"], before - 2.0 * torch.log(cw))
    # the composited logits move by the shift times the pixel's alpha: by the shift where opaque
    with torch.no_grad():
        m.params["opacities"].fill_(20.0)  # sigmoid -> 1
    act = {k: v.detach() for k, v in m.activated().items()}
    cam = level.cameras[0]
    vm, Kt = (torch.tensor(a, dtype=torch.float32)[None] for a in (cam.w2c_opencv, cam.K))
    args = (act["means"], act["quats"], act["scales"], act["opacities"])
    shifted, alpha, _ = rasterize(*args, m.params["sem"].detach()[None], vm, Kt, cam.width, cam.height,
                                  render_depth=False)
    orig, _, _ = rasterize(*args, before[None], vm, Kt, cam.width, cam.height, render_depth=False)
    assert (alpha > 0.999).sum() > 20
    assert torch.allclose((orig - shifted)[..., :K], alpha * 2.0 * torch.log(cw), atol=1e-4)
