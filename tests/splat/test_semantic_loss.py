"""The semantic losses through their one protocol, and the factory that picks them from the config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.schemes import get_scheme
from labelsplat.splat import CrossEntropy, GeneralizedCE, NoiseCorrected, make_semantic_loss
from labelsplat.config import fit_preset as make_config
from labelsplat.splat.config import LabelNoiseSpec
from labelsplat.splat.losses import NoiseTransition, palette_loss, semantic_loss
from labelsplat.splat.semantic_loss import NoSemanticLoss, PaletteL1

K = 7


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 5, K, generator=g) * 2
    labels = torch.randint(0, K, (2, 4, 5), generator=g)
    labels[0, 0, :2] = 255
    cw = torch.rand(K, generator=g) + 0.5
    conf = torch.rand(2, 4, 5, generator=g)
    return logits, labels, cw, conf


def _call(loss, logits, labels, cw, conf, step=3, steps=10):
    return loss(logits, labels, step=step, steps=steps, class_weights=cw, confidence=conf)


def test_factory_picks_the_loss_from_the_config():
    assert isinstance(make_semantic_loss(make_config("micro"), K, "cpu"), CrossEntropy)
    ls = make_semantic_loss(make_config("micro", label_smoothing=0.1), K, "cpu")
    assert isinstance(ls, CrossEntropy) and ls.label_smoothing == 0.1
    g = make_semantic_loss(make_config("micro", semantic_loss="gce:0.4"), K, "cpu")
    assert isinstance(g, GeneralizedCE) and g.q == 0.4
    n = make_semantic_loss(make_config("micro", label_noise="learn:0.2:0.05"), K, "cpu")
    assert isinstance(n, NoiseCorrected) and n.spec == LabelNoiseSpec("learn", 0.2, trace=0.05)
    with pytest.raises(ValueError):
        GeneralizedCE(0.0)


def test_stateless_losses_are_the_functional_losses():
    logits, labels, cw, conf = _batch()
    for loss, kw in ((CrossEntropy(), {}), (CrossEntropy(0.1), {"label_smoothing": 0.1}),
                     (GeneralizedCE(0.7), {"gce_q": 0.7})):
        assert torch.equal(_call(loss, logits, labels, cw, conf),
                           semantic_loss(logits, labels, class_weights=cw, confidence=conf, **kw))
        assert loss.state_dict() == {} and loss.finish(None, []) == {}
        loss.after_backward(0, 10)
        loss.load_state_dict({})
    pal = torch.rand(K, 3)
    seg = torch.rand(2, 4, 5, 3)
    assert torch.equal(_call(PaletteL1(pal), seg, labels, cw, conf),
                       palette_loss(seg, labels, pal, class_weights=cw, confidence=conf))
    assert float(_call(NoSemanticLoss(), logits, labels, cw, conf)) == 0.0


def test_noise_corrected_is_the_transition_path_and_round_trips(tmp_path):
    logits, labels, cw, conf = _batch()
    spec = LabelNoiseSpec("learn", 0.2, trace=0.1)
    loss = NoiseCorrected(spec, K, "cpu")
    ref = NoiseTransition(spec, K, "cpu")
    lg = logits.clone().requires_grad_(True)
    got = _call(loss, lg, labels, cw, conf, step=5)
    ref.observe(logits, labels)
    t = ref.for_loss(5, 10)
    expect = semantic_loss(logits, labels, class_weights=cw, confidence=conf, transition=t) + ref.penalty(t, 5, 10)
    assert torch.allclose(got, expect)
    got.backward()
    loss.after_backward(5, 10)  # learn: T's own Adam step
    assert not torch.equal(loss.transition.logits.detach(), ref.logits.detach())
    state = loss.state_dict()
    assert set(state) == {"label_noise"} and set(state["label_noise"]) == {"counts", "hits", "logits", "opt"}
    back = NoiseCorrected(spec, K, "cpu")
    back.load_state_dict(state)
    assert torch.equal(back.transition.matrix(), loss.transition.matrix())
    with pytest.raises(LabelsplatError, match="no label-noise transition state"):
        NoiseCorrected(spec, K, "cpu").load_state_dict({}, tmp_path)
    names = list(get_scheme("lapa11").classes)[:K]
    summary = loss.finish(tmp_path, names)
    assert set(summary) == {"label_noise"} and summary["label_noise"]["mode"] == "learn"
    doc = json.loads((tmp_path / "noise_transition.json").read_text())
    assert doc["classes"] == names and np.allclose(np.asarray(doc["matrix"]).sum(1), 1, atol=1e-3)
