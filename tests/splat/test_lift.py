"""Semantic lifting by multiview voting (splat/lift.py) and FitConfig.semantic_lift."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fit_scene import CENTER, RADIUS, cached_scene, head_gaussians, ring_cameras
from labelsplat.errors import LabelsplatError
from labelsplat.config import fit_preset as make_config
from labelsplat.splat import fit
from labelsplat.splat.config import SemanticLiftSpec
from labelsplat.splat.lift import lifted_logits, vote_semantics
from labelsplat.splat.model import GaussianModel
from labelsplat.splat.rasterize import rasterize

K = 19


def _gt_model(n=300):
    """The procedural head's Gaussians (fit_scene) as a GaussianModel, with their true labels."""
    pts, col, lab = head_gaussians(n, 0)
    m = GaussianModel.from_points(CENTER + RADIUS * pts, col, lab, sh_degree=0, num_classes=K, init_opacity=0.95)
    with torch.no_grad():
        m.params["scales"].fill_(float(np.log(0.12 * RADIUS)))
    return m, lab


def _render_labels(model, cams):
    out = []
    act = {k: v.detach() for k, v in model.activated().items()}
    for cam in cams:
        vm = torch.tensor(cam.w2c_opencv, dtype=torch.float32)[None]
        Kt = torch.tensor(cam.K, dtype=torch.float32)[None]
        r, _, _ = rasterize(act["means"], act["quats"], act["scales"], act["opacities"],
                            model.params["sem"].detach()[None], vm, Kt, cam.width, cam.height, render_depth=False)
        out.append(r[0, ..., :K].argmax(-1))
    return out


def test_parse_semantic_lift():
    parse = SemanticLiftSpec.parse
    assert not parse("none").enabled
    assert parse("vote") == SemanticLiftSpec("vote", 1.0)
    assert parse("VOTE:0").prior == 0.0
    assert parse("vote:2.5").prior == 2.5 and str(parse("vote:2.5")) == "vote:2.5" and str(parse("vote:1")) == "vote"
    assert parse("unweight") == SemanticLiftSpec("unweight", 1.0) and str(parse("unweight:3.5")) == "unweight:3.5"
    for bad in ("vote:-1", "vote:x", "median", "", "unweight:-2", "unweight:"):
        with pytest.raises(LabelsplatError, match="semantic_lift"):
            parse(bad)
    with pytest.raises(LabelsplatError, match="semantic_lift"):
        make_config("micro", semantic_lift="vote", semantic_target="palette")
    assert make_config("micro").semantic_lift == "none"


def test_lifted_logits_math():
    votes = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    prior = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    got = lifted_logits(votes, prior, prior=1.0, scale=10.0)
    assert torch.allclose(got[0], 10 * torch.tensor([3 + 1 / 3, 1 + 1 / 3, 1 / 3]) / 5)
    assert torch.allclose(got[1], torch.full((3,), 10 / 3))  # no votes: the prior alone
    no_prior = lifted_logits(votes, None, scale=2.0)
    assert torch.allclose(no_prior[0], torch.tensor([1.5, 0.5, 0.0]))
    assert torch.allclose(no_prior[2], torch.full((3,), 2 / 3))  # neither: uniform
    assert torch.allclose(got.sum(-1), torch.full((3,), 10.0))
    # class weights multiply the votes (the class-weighted cross-entropy's per-Gaussian optimum)
    weighted = lifted_logits(votes, None, scale=1.0, class_weights=torch.tensor([1.0, 6.0, 1.0]))
    assert torch.allclose(weighted[0], torch.tensor([3.0, 6.0, 0.0]) / 9.0)
    with pytest.raises(ValueError):
        lifted_logits(votes[0], None)
    with pytest.raises(ValueError, match="class_weights"):
        lifted_logits(votes, None, class_weights=torch.ones(4))


def test_votes_total_is_the_blend_weight_sum_and_backends_agree():
    m, _ = _gt_model(120)
    cams = ring_cameras(2, 24)
    rng = np.random.default_rng(0)
    labels = [torch.from_numpy(rng.integers(0, K, size=(24, 24))) for _ in cams]
    v_cpu = vote_semantics(m, cams, labels, K, backend="cpu")
    v_ref = vote_semantics(m, cams, labels, K, backend="naive")
    assert torch.allclose(v_cpu, v_ref, atol=1e-4, rtol=1e-4)
    # every pixel votes once with its blend weights: per Gaussian the votes sum to its blend-weight sum
    act = {k: v.detach() for k, v in m.activated().items()}
    total = torch.zeros(m.num_gaussians)
    for cam in cams:
        vm = torch.tensor(cam.w2c_opencv, dtype=torch.float32)[None]
        Kt = torch.tensor(cam.K, dtype=torch.float32)[None]
        _, _, info = rasterize(act["means"], act["quats"], act["scales"], act["opacities"], torch.zeros(1, m.num_gaussians, 1),
                               vm, Kt, 24, 24, render_depth=False, return_contrib=True)
        total += info["contrib"][0]
    assert total.sum() > 10
    assert torch.allclose(v_cpu.sum(-1), total, atol=1e-3, rtol=1e-3)
    # ignored pixels, confidences and view weights scale the votes
    ign = [torch.full((24, 24), 255, dtype=torch.int64), labels[1]]
    v_ign = vote_semantics(m, cams, ign, K)
    v_one = vote_semantics(m, cams[1:], labels[1:], K)
    assert torch.allclose(v_ign, v_one, atol=1e-5)
    conf = [torch.full((24, 24), 0.5), torch.full((24, 24), 0.5)]
    assert torch.allclose(vote_semantics(m, cams, labels, K, confidences=conf), 0.5 * v_cpu, atol=1e-5)
    assert torch.allclose(vote_semantics(m, cams, labels, K, view_weights=[0.0, 1.0]), v_one, atol=1e-5)
    with pytest.raises(ValueError, match="label map"):
        vote_semantics(m, cams, [torch.zeros(8, 8, dtype=torch.int64)] * 2, K)


def test_majority_vote_removes_per_view_errors():
    """10 of 12 views carry the true labels, 2 say 'hair' everywhere: the vote recovers the truth."""
    m, lab = _gt_model(300)
    cams = ring_cameras(12, 40, yaw_span=120.0)
    true_labels = _render_labels(m, cams)
    bad = (2, 7)
    labels = [torch.full_like(t, 17) if i in bad else t for i, t in enumerate(true_labels)]
    with torch.no_grad():
        m.params["sem"].zero_()  # no prior information
    agree = {}
    for name, labs in (("clean", true_labels), ("corrupted", labels)):
        votes = vote_semantics(m, cams, labs, K)
        seen = votes.sum(-1) > 1.0
        assert int(seen.sum()) > 200
        agree[name] = float((votes.argmax(-1)[seen] == torch.from_numpy(lab)[seen]).float().mean())
    assert agree["clean"] > 0.93 and agree["corrupted"] > agree["clean"] - 0.03  # measured 0.951 / 0.944
    with torch.no_grad():
        m.params["sem"].copy_(lifted_logits(votes, None, scale=10.0))
    rendered = _render_labels(m, cams)
    for i in bad:  # the corrupted views themselves are re-labelled correctly
        fg = true_labels[i] > 0
        assert float((rendered[i][fg] == true_labels[i][fg]).float().mean()) > 0.93  # measured 0.96


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


def test_fit_with_vote_lift(scene_dir, tmp_path):
    cfg = make_config("micro", steps=12, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=4,
                      checkpoint_every=12, log_every=4, sh_degree_interval=8, semantic_lift="vote")
    res = fit(scene_dir, tmp_path / "run", cfg, write_outputs=True)
    sem = res.model.params["sem"].detach()
    assert torch.allclose(sem.sum(-1), torch.full((sem.shape[0],), cfg.bg_logit), atol=1e-4)
    assert (sem >= 0).all()
    info = res.summary["semantic_lift"]
    assert info["mode"] == "vote" and info["gaussians_without_votes"] < sem.shape[0]
    run = __import__("json").loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["semantic_lift"] == "vote"
    assert run["summary"]["train_view_label_acc_vs_input"] > 0.5
    # the geometry is the plain fit's: only the semantic head differs
    plain = fit(scene_dir, tmp_path / "plain", dataclasses.replace(cfg, semantic_lift="none"),
                write_outputs=False).model
    assert torch.equal(plain.params["means"], res.model.params["means"])
    assert not torch.equal(plain.params["sem"], res.model.params["sem"])
