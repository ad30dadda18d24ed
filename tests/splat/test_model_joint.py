"""GaussianModel, normalisation, config and losses (fast, no fitting)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.scene import HeadFrame, look_at
from labelsplat.config import PRESETS
from labelsplat.config import fit_preset as make_config
from labelsplat.splat.config import FitConfig, SemanticGradSpec
from labelsplat.splat.losses import alpha_loss, label_accuracy, rgb_loss, semantic_loss, ssim
from labelsplat.splat.model import C0, GaussianModel
from labelsplat.splat.normalize import Normalization, estimate_normalization, look_at_point


def _model(n=50, K=5, deg=2, seed=0):
    rng = np.random.default_rng(seed)
    return GaussianModel.from_points(rng.normal(size=(n, 3)), rng.uniform(size=(n, 3)),
                                     rng.integers(-1, K, size=n) if K else None, sh_degree=deg, num_classes=K)


def test_model_shapes_and_init():
    m = _model()
    p = m.params
    assert p["means"].shape == (50, 3) and p["shN"].shape == (50, 8, 3) and p["sem"].shape == (50, 5)
    assert torch.allclose(torch.sigmoid(p["opacities"]), torch.full((50,), 0.1))
    lab_rows = p["sem"].argmax(1)[p["sem"].abs().sum(1) > 0]
    assert (p["sem"].max(1).values[p["sem"].abs().sum(1) > 0] == 3.0).all() and len(lab_rows) > 0
    # degree-0 colour is the initial colour: 0.5 + C0 * sh0
    col = m.rgb(torch.zeros(2, 3), active_degree=0)
    assert col.shape == (2, 50, 3)
    assert torch.allclose(col[0], (0.5 + C0 * p["sh0"][:, 0]).clamp_min(0), atol=1e-6)
    # higher bands start at zero, so any view direction gives the same colour
    assert torch.allclose(m.rgb(torch.tensor([[5.0, 0, 0], [0, 0, -5.0]]))[1], col[0], atol=1e-5)


def test_model_k0_and_state_roundtrip():
    m = _model(K=0, deg=0)
    assert m.params["sem"].shape == (50, 0) and m.params["shN"].shape == (50, 0, 3)
    m2 = _model()
    m2.n_views_seen = torch.arange(50, dtype=torch.int32)
    st = m2.state_dict()
    buf = __import__("io").BytesIO()
    torch.save(st, buf)
    buf.seek(0)
    back = GaussianModel.from_state_dict(torch.load(buf, weights_only=True))
    for k in st["params"]:
        assert torch.equal(back.params[k], m2.params[k])
    assert torch.equal(back.n_views_seen, m2.n_views_seen)
    with pytest.raises(LabelsplatError, match="shape"):
        GaussianModel(torch.nn.ParameterDict({**m2.params, "sem": torch.nn.Parameter(torch.zeros(50, 4))}), 2, 5)


def test_gsplat_strategy_accepts_the_params():
    from gsplat.strategy import DefaultStrategy

    m = _model()
    opts = {k: torch.optim.Adam([m.params[k]], lr=1e-3) for k in m.params}
    DefaultStrategy().check_sanity(m.params, opts)


def test_normalization_roundtrip_and_estimate():
    n = Normalization((10.0, -5.0, 2.0), 50.0)
    pts = np.random.default_rng(0).normal(size=(20, 3)) * 100
    assert np.allclose(n.to_scene(n.to_norm(pts)), pts)
    assert np.allclose(n.matrix @ np.r_[pts[0], 1.0], np.r_[n.to_norm(pts[:1])[0], 1.0])
    assert Normalization.from_dict(n.to_dict()) == n
    with pytest.raises(LabelsplatError):
        Normalization((0, 0, 0), 0.0)
    # cameras at distance 400 around (10, 20, 30) looking at it; a disc of radius 100 in every mask
    c = np.array([10.0, 20.0, 30.0])
    cams, masks = [], []
    for yaw in np.linspace(-1.2, 1.2, 5):
        cam = look_at(c + 400 * np.array([np.sin(yaw), 0.1, np.cos(yaw)]), c, [0, 1, 0], 100, 100, 64, 64)
        uv, z = cam.project(c[None])
        jj, ii = np.mgrid[0:64, 0:64]
        r_px = 100.0 * 100 / z[0]
        masks.append(np.hypot(ii + 0.5 - uv[0, 0], jj + 0.5 - uv[0, 1]) <= r_px)
        cams.append(cam)
    assert np.allclose(look_at_point(cams), c, atol=1e-6)
    est = estimate_normalization(cams, masks)
    assert np.allclose(est.center, c, atol=1e-6)
    assert 85 < est.scale < 105  # 95th percentile of a disc of radius 100
    est_hf = estimate_normalization(cams, masks, HeadFrame(c + 1, [0, 1, 0], [0, 0, 1]))
    assert np.allclose(est_hf.center, c + 1)
    # normalised cameras keep their orientation and see the centre at the same pixel
    cn = est.camera_to_norm(cams[0])
    assert np.allclose(cn.project(est.to_norm(c[None]))[0], cams[0].project(c[None])[0])


def test_config_presets_and_overrides():
    assert set(PRESETS) == {"micro", "tiny", "fast", "gpu", "paper"}
    c = make_config("micro", steps=40, semantic_grad="scaled:0.1")
    assert c.steps == 40 and c.semantic_grad_weight == pytest.approx(0.1)
    assert FitConfig.from_dict(c.to_dict()) == c
    sched = make_config("tiny").strategy_schedule()
    assert 0 < sched["refine_start_iter"] < sched["refine_stop_iter"] <= 300
    assert PRESETS["paper"].fit.strategy_schedule()["refine_start_iter"] == 500
    assert SemanticGradSpec.parse("none").weight == 0.0 and SemanticGradSpec.parse("FULL").weight == 1.0
    assert c.parsed.semantic_grad == SemanticGradSpec(0.1) and str(c.parsed.semantic_grad) == "scaled:0.1"
    for bad in ("half", "scaled:2", "scaled:x"):
        with pytest.raises(LabelsplatError, match="semantic_grad"):
            SemanticGradSpec.parse(bad)
    with pytest.raises(LabelsplatError, match="unknown preset"):
        make_config("huge")
    with pytest.raises(LabelsplatError, match="steps"):
        make_config("micro", steps=0)
    assert make_config("micro").resolution_scale(0) == 0.5 and make_config("micro").resolution_scale(59) == 1.0


def test_losses():
    torch.manual_seed(0)
    x = torch.rand(2, 16, 16, 3)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert rgb_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert ssim(x, torch.rand(2, 16, 16, 3)).item() < 0.5
    logits = torch.randn(2, 4, 4, 6)
    t = torch.randint(0, 6, (2, 4, 4))
    t[0, 0, 0] = 255
    ref = torch.nn.functional.cross_entropy(logits.permute(0, 3, 1, 2), t, ignore_index=255)
    assert semantic_loss(logits, t).item() == pytest.approx(ref.item(), rel=1e-5)
    w = torch.rand(6) + 0.1
    ref_w = torch.nn.functional.cross_entropy(logits.permute(0, 3, 1, 2), t, ignore_index=255, weight=w)
    assert semantic_loss(logits, t, class_weights=w).item() == pytest.approx(ref_w.item(), rel=1e-5)
    ref_s = torch.nn.functional.cross_entropy(logits.permute(0, 3, 1, 2), t, ignore_index=255, label_smoothing=0.1)
    assert semantic_loss(logits, t, label_smoothing=0.1).item() == pytest.approx(ref_s.item(), rel=1e-5)
    # soft one-hot targets equal hard targets; zero-confidence pixels drop out
    soft = torch.nn.functional.one_hot(torch.where(t == 255, 0, t), 6).float()
    soft[t == 255] = 0
    assert semantic_loss(logits, soft).item() == pytest.approx(ref.item(), rel=1e-5)
    conf = torch.ones(2, 4, 4)
    conf[1] = 0
    ref0 = torch.nn.functional.cross_entropy(logits[:1].permute(0, 3, 1, 2), t[:1], ignore_index=255)
    assert semantic_loss(logits, t, confidence=conf).item() == pytest.approx(ref0.item(), rel=1e-5)
    assert semantic_loss(logits, torch.full((2, 4, 4), 255)).item() == 0.0
    # no weighted pixel: an exact 0 with zero gradients, even if an ignored pixel's loss is not finite
    wild = logits.clone()
    wild[0, 0, 0, 0] = -float("inf")
    wild.requires_grad_(True)
    t_ign = torch.zeros(2, 4, 4, dtype=torch.long)
    t_ign[0, 0, 0] = 255
    z = semantic_loss(wild, t_ign, confidence=torch.zeros(2, 4, 4))
    z.backward()
    assert z.item() == 0.0 and torch.isfinite(wild.grad).all() and float(wild.grad.abs().max()) == 0.0
    assert alpha_loss(torch.ones(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0
    assert label_accuracy(torch.nn.functional.one_hot(t.clamp(max=5), 6).float(), t) == 1.0
    with pytest.raises(ValueError):
        semantic_loss(logits, t[:, :3])


def test_class_weights_by_concept_follow_the_scheme():
    from labelsplat.schemes import get_scheme
    from labelsplat.config import FACE_PART_WEIGHTS
    from labelsplat.splat import concept_class_weights

    zll = concept_class_weights("celebamask19-zll", FACE_PART_WEIGHTS)
    lapa = concept_class_weights("lapa11", FACE_PART_WEIGHTS)
    z, la = get_scheme("celebamask19-zll"), get_scheme("lapa11")
    assert len(zll) == 19 and len(lapa) == 11
    assert zll[z.index("l_eye")] == 10.0 and zll[z.index("skin")] == 1.0 and zll[z.index("cloth")] == 1.5
    assert lapa[la.concept_index("mouth")] == 10.0 and lapa[la.concept_index("background")] == 1.0
    cfg = make_config("tiny")
    assert cfg.class_weights_by_concept == FACE_PART_WEIGHTS and cfg.semantic_grad == "scaled:0.1"
    assert cfg.label_colour_weight is None
    from labelsplat.config import FACE_PART_WEIGHTS_FINE

    fast = make_config("fast")
    assert fast.class_weights_by_concept == FACE_PART_WEIGHTS_FINE and fast.label_colour_weight == 0.1
    fine = concept_class_weights("celebamask19-zll", FACE_PART_WEIGHTS_FINE)
    assert fine[z.index("nose")] == 1.0 and zll[z.index("nose")] == 3.0
    assert [w for i, w in enumerate(fine) if i != z.index("nose")] == [w for i, w in enumerate(zll) if i != z.index("nose")]
