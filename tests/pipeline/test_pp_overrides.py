"""``--pp-set``: post-processing settings from the command line (refine and render), recorded
with the views; the generic KEY=VALUE reader behind ``--fit-set``-style options."""

from __future__ import annotations

import json

import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.extract import PostprocessConfig
from labelsplat.overrides import parse_overrides
from labelsplat.config import preset, with_overrides


def test_values_are_read_by_the_field_type():
    got = parse_overrides(["fill_holes=false", "min_area=7", "hole_min_alpha=none", "single_instance=neck, nose",
                           "hole_alpha_rule=majority", "lr_min_fraction=0.8"], PostprocessConfig, option="--pp-set")
    assert got == {"fill_holes": False, "min_area": 7, "hole_min_alpha": None, "single_instance": ("neck", "nose"),
                   "hole_alpha_rule": "majority", "lr_min_fraction": 0.8}
    PostprocessConfig(**got)  # a valid configuration


@pytest.mark.parametrize("item, words", [
    ("fill_holes", "KEY=VALUE"),
    ("no_such_step=1", "unknown setting 'no_such_step'"),
    ("min_area=many", "min_area=many"),
    ("fill_holes=maybe", "fill_holes=maybe"),
    ("min_area=none", "cannot be none"),
])
def test_bad_items_name_the_option_and_the_problem(item, words):
    with pytest.raises(LabelsplatError) as e:
        parse_overrides([item], PostprocessConfig, option="--pp-set")
    assert "--pp-set" in str(e.value) and words in str(e.value)


def test_refine_config_checks_overrides_before_any_work():
    with pytest.raises(LabelsplatError, match="unknown post-processing settings"):
        with_overrides(preset("micro"), postprocess={"fill_hole": False})
    with pytest.raises(LabelsplatError, match="hole_min_alpha"):
        with_overrides(preset("micro"), postprocess={"hole_min_alpha": 2.0})


def _pp(out):
    return json.loads((out / "views" / "manifest.json").read_text())["config"]["postprocess"]


def test_render_pp_set_changes_and_records_the_post_processing(cli, refined, tmp_path):
    run = refined / "scenes" / "head_000" / "run"
    r = cli("render", run, "--out", tmp_path / "a", "--novel-views", "3", "--seed", "4")
    assert r.exit_code == 0, r.output
    r = cli("render", run, "--out", tmp_path / "b", "--novel-views", "3", "--seed", "4",
            "--pp-set", "fill_holes=false", "--pp-set", "keep_largest=false", "--pp-set", "min_area=50")
    assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())["config"]["render"]
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())["config"]["render"]
    assert a["postprocess"] == preset("tiny").postprocess.to_dict()  # render's default preset
    changed = {k: v for k, v in b["postprocess"].items() if a["postprocess"][k] != v}
    assert changed == {"fill_holes": False, "keep_largest": False, "min_area": 50}
    # a pixel count on the command line replaces the fraction of the image
    assert a["export"]["min_area_fraction"] == 2e-4 and b["export"]["min_area_fraction"] is None


def test_refine_pp_set_reaches_the_post_processing(cli, synth_scene, tmp_path):
    out = tmp_path / "r"
    r = cli("refine", synth_scene, "--out", out, "--preset", "micro", "--novel-views", "2", "--quiet",
            "--pp-set", "fill_holes=false", "--pp-set", "single_instance=neck,nose", "--pp-set", "min_area=3")
    assert r.exit_code == 0, r.output
    pp = _pp(out / "scenes" / "head_000")
    assert pp["steps"]["fill_holes"] == "off" and pp["steps"]["keep_largest"] == "applied"
    assert pp["config"]["single_instance"] == ["neck", "nose"] and pp["config"]["min_area"] == 3
    r = cli("refine", synth_scene, "--out", tmp_path / "x", "--preset", "micro", "--pp-set", "fill_holes=perhaps")
    assert r.exit_code == 2 and "--pp-set fill_holes=perhaps" in r.output
    assert not (tmp_path / "x").exists()
