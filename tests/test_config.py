"""The configuration tree and its one preset registry (labelsplat.config)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from labelsplat.config import (
    PRESET_NAMES,
    PRESETS,
    ExportConfig,
    RefineConfig,
    apply_fit_overrides,
    describe,
    field_docs,
    fit_preset,
    parse_fit_set,
    parse_pp_set,
    preset,
    with_overrides,
)
from labelsplat.errors import LabelsplatError
from labelsplat.extract import PostprocessConfig
from labelsplat.splat.config import FitConfig
from labelsplat.views import ViewSamplerConfig


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_is_a_valid_whole_tree(name):
    cfg = preset(name)
    assert cfg.preset == name and cfg.fit.preset == name
    assert isinstance(cfg.fit, FitConfig) and isinstance(cfg.sampler, ViewSamplerConfig)
    assert isinstance(cfg.postprocess, PostprocessConfig) and isinstance(cfg.export, ExportConfig)
    cfg.fit.validate()
    # a JSON round trip (refine.json, Ray tasks) gives the same tree
    again = RefineConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()


def test_the_registry_values_refine_uses():
    assert {n: PRESETS[n].export.novel_views for n in PRESET_NAMES} == {"micro": 6, "tiny": 24, "fast": 100,
                                                                        "gpu": 500, "paper": 500}
    for name in PRESET_NAMES:
        cfg = preset(name)
        # one value for the settings whose defaults used to disagree: what refine used
        assert cfg.postprocess.min_confidence is None and cfg.postprocess.min_view_confidence is None
        assert PostprocessConfig().min_confidence is None and PostprocessConfig().min_view_confidence is None
        assert cfg.sampler.preset == "extreme" and cfg.sampler.min_head_inside == 0.75
        assert cfg.export.min_area_fraction == 2e-4
    assert preset("fast").fit.label_colour_weight == 0.1 and preset("tiny").fit.semantic_grad == "scaled:0.1"
    assert fit_preset("paper").strategy_schedule()["refine_start_iter"] == 500


def test_preset_returns_copies():
    a = preset("tiny")
    a.export.novel_views = 3
    a.fit = dataclasses.replace(a.fit, steps=5)
    assert preset("tiny").export.novel_views == 24 and preset("tiny").fit.steps == 300
    assert PRESETS["tiny"].fit.steps == 300
    with pytest.raises(LabelsplatError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(LabelsplatError, match="unknown preset"):
        RefineConfig(preset="huge")


def test_a_subtree_left_out_comes_from_the_preset():
    cfg = RefineConfig(preset="micro", seed=3)
    assert cfg.fit.steps == 60 and cfg.fit.seed == 3 and cfg.export.novel_views == 6
    pal = RefineConfig(preset="micro", extract="palette")
    assert pal.fit.semantic_target == "palette"  # palette extraction needs a palette fit


def test_with_overrides_by_subtree_and_by_flat_name():
    base = preset("fast")
    cfg = with_overrides(base, seed=2, steps=500, semantic_grad="none", novel_views=10, min_confidence=0.5,
                         label_chunk=8, device="cpu", fit={"label_colour_weight": None}, postprocess={"fill_holes": False})
    assert base.fit.steps == 2000 and base.seed == 0  # not modified
    assert cfg.seed == 2 and cfg.fit.seed == 2 and cfg.fit.steps == 500 and cfg.fit.semantic_grad == "none"
    assert cfg.fit.label_colour_weight is None and cfg.device == "cpu"
    assert cfg.export.novel_views == 10 and cfg.export.label_chunk == 8
    assert cfg.postprocess.min_confidence == 0.5 and cfg.postprocess.fill_holes is False
    # an explicit fit seed wins over the run's (as --fit-set seed=... over --seed)
    assert with_overrides(base, seed=2, fit={"seed": 7}).fit.seed == 7
    # a pixel min_area switches the image fraction off
    px = with_overrides(base, postprocess={"min_area": 50})
    assert px.postprocess.min_area == 50 and px.export.min_area_fraction is None
    assert px.export.min_area(px.postprocess, 100, 100) == 50 and base.export.min_area(base.postprocess, 100, 100) == 2
    # another sampler preset keeps the settings the tree changed
    narrow = with_overrides(base, sampler={"min_head_inside": 0.5})
    uni = with_overrides(narrow, sampler="uniform")
    assert uni.sampler.preset == "uniform" and uni.sampler.extreme_fraction is None and uni.sampler.min_head_inside == 0.5


@pytest.mark.parametrize("kwargs, words", [
    ({"colour": 1}, "unknown setting 'colour'"),
    ({"fit": {"colour": 1}}, "unknown fit options"),
    ({"postprocess": {"fill_hole": False}}, "unknown post-processing settings"),
    ({"export": {"novel": 1}}, "unknown export settings"),
    ({"novel_views": 0}, "--novel-views must be positive"),
    ({"postprocess": {"hole_min_alpha": 2.0}}, "hole_min_alpha"),
    ({"steps": 0}, "steps must be >= 1"),
    ({"extract": "median"}, "unknown extraction"),
    ({"preset": "fast"}, "keeps the preset"),
    ({"sampler": "sideways"}, "unknown view sampler preset"),
])
def test_bad_overrides_are_refused(kwargs, words):
    with pytest.raises(LabelsplatError, match=words):
        with_overrides(preset("tiny"), **kwargs)


def test_flat_command_line_keys_keep_working():
    assert parse_fit_set(["label_colour_weight=none", "class_weights_by_concept=l_eye:10,mouth:5",
                          "coarse_to_fine=0:0.25,0.5:1", "semantic_grad=none"]) == {
        "label_colour_weight": None, "class_weights_by_concept": (("l_eye", 10.0), ("mouth", 5.0)),
        "coarse_to_fine": ((0.0, 0.25), (0.5, 1.0)), "semantic_grad": "none"}
    assert parse_pp_set(["fill_holes=false", "single_instance=neck,nose"]) == {
        "fill_holes": False, "single_instance": ("neck", "nose")}
    with pytest.raises(LabelsplatError, match="--fit-set: unknown fit setting 'preset'"):
        parse_fit_set(["preset=fast"])
    fit = apply_fit_overrides(fit_preset("micro"), parse_fit_set(["max_resolution=none"]))
    assert fit.max_resolution is None


def test_describe_covers_every_field_with_its_doc():
    rows = describe("fast")
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    tree = preset("fast")
    run = [f.name for f in dataclasses.fields(RefineConfig) if f.name not in ("fit", "sampler", "postprocess", "export")]
    want = run + [f"{sub}.{f.name}" for sub in ("fit", "sampler", "postprocess", "export")
                  for f in dataclasses.fields(getattr(tree, sub))]
    assert names == want
    by = {r["name"]: r for r in rows}
    assert by["fit.label_colour_weight"]["default"] == 0.1 and by["fit.label_colour_weight"]["key"] == "label_colour_weight"
    assert by["fit.sem_lr"]["set_with"] == "--fit-set sem_lr=..." and by["fit.sem_lr"]["type"] == "float"
    assert by["postprocess.fill_holes"]["set_with"] == "--pp-set fill_holes=..."
    assert by["export.novel_views"]["set_with"] == "--novel-views" and by["export.novel_views"]["default"] == 100
    assert by["fit.class_weights_by_concept"]["text"].startswith("l_brow:5,r_brow:5,l_eye:10")
    assert by["fit.coarse_to_fine"]["text"] == "0:0.25,0.25:0.5,0.65:1"
    assert by["fit.preset"]["set_with"] == ""  # the preset is chosen with --preset, not --fit-set
    # the docs are the fields' comments
    assert by["fit.bg_logit"]["doc"].startswith("background logit vector")
    assert by["postprocess.min_confidence"]["doc"].startswith("step 5")
    assert by["export.label_chunk"]["doc"].startswith("views rendered, extracted and post-processed together")
    assert by["fit.sem_lr"]["doc"] == "learning rate of the semantic head"  # its own comment
    assert by["fit.coarse_to_fine"]["doc"].startswith("resolution:")  # the comment that names it
    assert sum(1 for r in rows if r["doc"]) >= len(rows) - 5
    json.dumps(rows)


def test_field_docs_prefer_metadata():
    @dataclasses.dataclass
    class C:
        a: int = 1  # from the comment
        b: int = dataclasses.field(default=2, metadata={"doc": "from the metadata"})  # not this
        # a block above
        # on two lines
        c: int = 3

    assert field_docs(C) == {"a": "from the comment", "b": "from the metadata", "c": "a block above on two lines"}
