"""Label-noise transition model in the semantic loss (FitConfig.label_noise, losses.NoiseTransition)."""

from __future__ import annotations

import json

import pytest
import torch

from fit_scene import cached_scene
from labelsplat.errors import LabelsplatError
from labelsplat.config import fit_preset as make_config
from labelsplat.config import parse_fit_set as parse_fit_overrides
from labelsplat.splat import fit, load_checkpoint
from labelsplat.splat.config import FitConfig, LabelNoiseSpec
from labelsplat.splat.losses import NoiseTransition, confusion_counts, floor_diagonal, semantic_loss


def small_cfg(**kw):
    base = dict(steps=12, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=4,
                checkpoint_every=6, log_every=4, sh_degree_interval=8)
    base.update(kw)
    return make_config("micro", **base)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


def test_identity_transition_is_exactly_the_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 6, 19) * 4
    target = torch.randint(0, 19, (2, 5, 6))
    target[0, 0, :3] = 255
    cw = torch.rand(19) * 5 + 0.5
    conf = torch.rand(2, 5, 6)
    eye = torch.eye(19)
    for kw in ({}, {"class_weights": cw}, {"class_weights": cw, "confidence": conf}):
        assert torch.equal(semantic_loss(logits, target, transition=eye, **kw), semantic_loss(logits, target, **kw))
    # and the gradient too
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    semantic_loss(a, target, transition=eye, class_weights=cw).backward()
    semantic_loss(b, target, class_weights=cw).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7, rtol=0)
    # a general T: -log (p @ T)[target]
    T = floor_diagonal(torch.rand(19, 19), 0.6)
    q = torch.softmax(logits, -1) @ T
    valid = target != 255
    expect = -torch.log(q.gather(-1, target.clamp_max(18)[..., None])[..., 0])[valid].mean()
    assert torch.allclose(semantic_loss(logits, target, transition=T), expect, atol=1e-5)
    with pytest.raises(ValueError, match="transition"):
        semantic_loss(logits, target, transition=torch.eye(5))
    with pytest.raises(ValueError, match="transition"):
        semantic_loss(logits, target, transition=eye, label_smoothing=0.1)


def test_transitions_stay_row_stochastic():
    torch.manual_seed(1)
    raw = torch.rand(7, 7) ** 4
    raw[3] = 0  # a class never seen -> identity row
    for floor in (0.05, 0.5, 0.9, 1.0):
        T = floor_diagonal(raw, floor)
        assert torch.allclose(T.sum(1), torch.ones(7), atol=1e-6)
        assert (T >= 0).all() and (T.diagonal() >= floor - 1e-6).all()
        assert torch.equal(T[3], torch.eye(7)[3])
    for spec in (LabelNoiseSpec("em", 0.0, floor=0.3), LabelNoiseSpec("learn", 0.0, trace=0.1)):
        nt = NoiseTransition(spec, 7, "cpu")
        logits = torch.randn(1, 4, 4, 7, requires_grad=spec.mode == "learn")
        for step in range(5):
            target = torch.randint(0, 7, (1, 4, 4))
            nt.observe(logits, target)
            T = nt.for_loss(step, 10)
            loss = semantic_loss(logits, target, transition=T)
            pen = nt.penalty(T, step, 10)
            if pen is not None:
                loss = loss + pen
            if spec.mode == "learn":
                loss.backward()
                nt.step(step, 10)
            T = nt.matrix()
            assert torch.allclose(T.sum(1), torch.ones(7), atol=1e-5) and (T >= 0).all()
            assert (T.diagonal() >= (0.3 - 1e-6 if spec.mode == "em" else 0)).all()
    # warm-up: em uses the identity, learn its frozen start
    em = NoiseTransition(LabelNoiseSpec("em", 0.5), 4, "cpu")
    em.counts.copy_(torch.rand(4, 4))
    em.hits.fill_(10.0)  # every class predicted
    assert torch.equal(em.for_loss(4, 10), torch.eye(4)) and not torch.equal(em.for_loss(5, 10), torch.eye(4))
    ln = NoiseTransition(LabelNoiseSpec("learn", 0.5, trace=0.1), 4, "cpu")
    assert torch.allclose(ln.for_loss(0, 10).diagonal(), torch.full((4,), 0.95))
    assert not ln.for_loss(0, 10).requires_grad and ln.for_loss(5, 10).requires_grad
    assert ln.penalty(ln.for_loss(0, 10), 0, 10) is None


def test_em_estimate_recovers_an_asymmetric_confusion():
    # true classes known to the renderer (confident logits), the parser reports class 1 as 2 in 40 %
    # of the pixels and never 2 as 1: T[1, 2] ~ 0.4, T[2, 1] ~ 0
    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 3, (1, 64, 64), generator=g)
    logits = torch.nn.functional.one_hot(true, 3).float() * 20
    nt = NoiseTransition(LabelNoiseSpec("em", 0.0, floor=0.05), 3, "cpu")
    for _ in range(400):
        flip = (true == 1) & (torch.rand(true.shape, generator=g) < 0.4)
        nt.observe(logits, torch.where(flip, torch.full_like(true, 2), true))
    T = nt.matrix()
    assert T[1, 2] == pytest.approx(0.4, abs=0.03) and T[1, 1] == pytest.approx(0.6, abs=0.03)
    assert T[2, 1] < 1e-3 and T[0, 0] > 0.999
    # a class the renderer never predicts (softmax leakage only) keeps an identity row
    nt4 = NoiseTransition(LabelNoiseSpec("em", 0.0, floor=0.05), 4, "cpu")
    logits4 = torch.cat([logits, torch.full((1, 64, 64, 1), -3.0)], dim=-1)  # leaks ~1e-10, never the argmax
    for _ in range(50):
        nt4.observe(logits4, true)
    assert nt4.matrix()[3, 3] > 0.999
    c = confusion_counts(logits, torch.full_like(true, 255))
    assert c.sum() == 0  # ignored pixels count for nothing


def _optimum(labels: torch.Tensor, K: int, transition=None, class_weights=None) -> torch.Tensor:
    """The class distribution of ONE surface point seen by len(labels) views that minimises the loss."""
    theta = torch.zeros(K, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.1)
    for _ in range(250):
        logits = theta.expand(len(labels), 1, 1, K)
        loss = semantic_loss(logits, labels.view(-1, 1, 1), transition=transition, class_weights=class_weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.softmax(theta.detach(), 0)


def test_corrected_optimum_recovers_an_eroded_part():
    # an ear point (class 1) that the parser calls skin (class 2) in 60 % of 10 views; skin is
    # almost never called ear. Plain cross-entropy's optimum is skin (the majority); with the
    # transition T[ear, skin] = 0.6 the optimum is the ear.
    labels = torch.tensor([1] * 4 + [2] * 6)
    plain = _optimum(labels, 3)
    assert int(plain.argmax()) == 2 and plain[1] == pytest.approx(0.4, abs=0.02)
    T = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.4, 0.6], [0.0, 0.01, 0.99]])
    corrected = _optimum(labels, 3, transition=T)
    assert int(corrected.argmax()) == 1 and corrected[1] > 0.9
    # a point labelled skin in every view stays skin under the same T
    assert int(_optimum(torch.full((10,), 2), 3, transition=T).argmax()) == 2


def test_config_validation_and_round_trip():
    parse = LabelNoiseSpec.parse
    assert not parse("none").enabled and str(parse("none")) == "none"
    assert parse("em") == LabelNoiseSpec("em", 0.25, floor=0.5)
    assert parse("em:0.3:0.7") == LabelNoiseSpec("em", 0.3, floor=0.7)
    assert parse("learn:0.1") == LabelNoiseSpec("learn", 0.1, trace=0.01)
    assert parse("LEARN:0.2:0") == LabelNoiseSpec("learn", 0.2, trace=0.0)
    assert str(parse("em")) == "em:0.25:0.5" and str(parse("LEARN:0.2:0")) == "learn:0.2:0"
    for text in ("em:0.3:0.7", "learn:0.1:0.05", "none"):
        assert parse(str(parse(text))) == parse(text)  # the canonical text reads back
    for bad in ("em:1.0", "em:0.2:0", "em:0.2:1.5", "learn:0.2:-1", "em:a", "transition", "em:0.1:0.5:3", "learn:nan"):
        with pytest.raises(LabelsplatError, match="label_noise"):
            make_config("micro", label_noise=bad)
    for other in ({"semantic_loss": "gce:0.7"}, {"label_smoothing": 0.1}, {"semantic_target": "palette"}):
        with pytest.raises(LabelsplatError, match="label_noise"):
            make_config("micro", label_noise="em", **other)
    # the fast preset fits with gce, which the noise model excludes: the error says how to combine them
    with pytest.raises(LabelsplatError, match="add --fit-set semantic_loss=ce"):
        make_config("fast", label_noise="learn:0.3:0.05")
    cfg = make_config("fast", label_noise="learn:0.3:0.05", semantic_loss="ce")
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["label_noise"] == "learn:0.3:0.05" and FitConfig.from_dict(d) == cfg
    assert cfg.parsed.label_noise == LabelNoiseSpec("learn", 0.3, trace=0.05)
    old = dict(d)
    del old["label_noise"]  # runs written before the field load as "none"
    assert FitConfig.from_dict(old).label_noise == "none"
    assert parse_fit_overrides(["label_noise=em:0.2:0.6"]) == {"label_noise": "em:0.2:0.6"}
    assert parse_fit_overrides(["label_noise=none"]) == {"label_noise": "none"}


def test_micro_learn_fit_resumes_bitwise(scene_dir, tmp_path):
    # learn mode: stop at step 6 (a checkpoint) and resume -> the same T and Gaussians as one go
    cfg = small_cfg(label_noise="learn:0.25:0.05")
    one = fit(scene_dir, tmp_path / "one", cfg, progress=False, write_outputs=False)
    fit(scene_dir, tmp_path / "two", cfg, progress=False, write_outputs=False, stop_after=6)
    two = fit(scene_dir, tmp_path / "two", cfg, progress=False, write_outputs=False, resume=True)
    t1 = torch.tensor(one.summary["label_noise"]["matrix"])
    assert torch.equal(t1, torch.tensor(two.summary["label_noise"]["matrix"]))
    assert not torch.allclose(t1.diagonal(), torch.full((19,), 0.95), atol=1e-3)  # learned away from its start
    s1, s2 = one.model.state_dict()["params"], two.model.state_dict()["params"]
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    ck = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    assert set(ck["label_noise"]) == {"counts", "hits", "logits", "opt"}


def test_cli_fit_set_label_noise_writes_the_transition(cli, scene_dir, tmp_path):
    out = tmp_path / "run"
    r = cli("fit", scene_dir, "--out", out, "--preset", "micro", "--steps", "12", "--device", "cpu", "--quiet",
            "--fit-set", "label_noise=em:0.25:0.5")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "noise_transition.json").read_text())
    T = torch.tensor(doc["matrix"])
    assert T.shape == (19, 19) and torch.allclose(T.sum(1), torch.ones(19), atol=1e-3)
    assert doc["mode"] == "em" and doc["warmup"] == 0.25 and doc["floor"] == 0.5 and doc["classes"][1] == "skin"
    assert min(doc["diagonal"].values()) >= 0.5 - 1e-4
    assert not torch.allclose(T, torch.eye(19))  # something was estimated
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["label_noise"] == "em:0.25:0.5" and run["summary"]["label_noise"]["mode"] == "em"
    r = cli("fit", scene_dir, "--out", tmp_path / "bad", "--preset", "micro", "--steps", "4", "--device", "cpu",
            "--quiet", "--fit-set", "label_noise=transition")
    assert r.exit_code == 2 and "label_noise" in r.output and "Traceback" not in r.output
