"""FitConfig's grammar fields: parsed once into typed values, texts kept as given (run.json, --fit-set)."""

from __future__ import annotations

import json

import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.config import fit_preset as make_config
from labelsplat.config import parse_fit_set as parse_fit_overrides
from labelsplat.splat.config import (GRAMMARS, FitConfig, LabelNoiseSpec, LabelViewWeightSpec, ParsedOptions,
                                     SemanticGradSpec, SemanticLiftSpec, SemanticLossSpec)

CANONICAL = {
    "semantic_grad": ["full", "none", "scaled:0.1", "scaled:0.25"],
    "label_view_weight": ["none", "yaw:45:0.3", "yaw:0:0"],
    "semantic_loss": ["ce", "gce:0.7", "gce:1"],
    "label_noise": ["none", "em:0.25:0.5", "learn:0.1:0.01", "learn:0:0"],
    "semantic_lift": ["none", "vote", "vote:0", "vote:2.5"],
    "strategy": ["default", "mcmc:6000", "mcmc:1", "mcmc:6000:0.5"],
}


@pytest.mark.parametrize("field", list(GRAMMARS))
def test_canonical_texts_round_trip(field):
    spec = GRAMMARS[field]
    for text in CANONICAL[field]:
        v = spec.parse(text)
        assert str(v) == text and spec.parse(str(v)) == v
        assert spec.parse(text.upper()) == v  # words are case-insensitive
    with pytest.raises(LabelsplatError, match=field):
        spec.parse("nonsense:1")


def test_parsed_values_and_unchanged_texts():
    cfg = make_config("micro", semantic_grad="Scaled:0.10", label_view_weight="yaw:30:0.2", semantic_loss="gce:0.5",
                      semantic_lift="vote:3")
    p = cfg.parsed
    assert isinstance(p, ParsedOptions)
    assert p.semantic_grad == SemanticGradSpec(0.1) and cfg.semantic_grad_weight == 0.1
    assert p.label_view_weight == LabelViewWeightSpec(30.0, 0.2)
    assert p.label_view_weight.weight(60.0) == pytest.approx(0.6)
    assert p.semantic_loss == SemanticLossSpec(0.5) and p.semantic_loss.generalized
    assert p.label_noise == LabelNoiseSpec() and not p.label_noise.enabled
    assert p.semantic_lift == SemanticLiftSpec("vote", 3.0)
    assert cfg.parsed is p  # parsed once
    d = cfg.to_dict()  # the texts as given, so run.json and resume comparisons are unchanged
    assert d["semantic_grad"] == "Scaled:0.10" and d["semantic_lift"] == "vote:3"
    assert "_parsed" not in json.dumps(d) and FitConfig.from_dict(json.loads(json.dumps(d))) == cfg
    # a reassigned field is parsed again
    cfg.semantic_lift = "none"
    assert not cfg.parsed.semantic_lift.enabled
    assert parse_fit_overrides(["semantic_grad=none", "label_view_weight=yaw:10:0.5"]) == {
        "semantic_grad": "none", "label_view_weight": "yaw:10:0.5"}


def test_combinations_are_checked():
    with pytest.raises(LabelsplatError, match="semantic_lift vote needs semantic_target=logits"):
        make_config("micro", semantic_lift="vote", semantic_target="palette")
    with pytest.raises(LabelsplatError, match="semantic_loss gce needs"):
        make_config("micro", semantic_loss="gce:0.5", label_smoothing=0.1)
    with pytest.raises(LabelsplatError, match="label_noise='em' needs"):
        make_config("micro", label_noise="em", semantic_loss="gce:0.5")
