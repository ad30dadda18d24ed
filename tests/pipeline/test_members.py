"""``members``: several fits of a scene whose class probabilities are averaged at every render."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from labelsplat.rundir import MARKER
from labelsplat.schemes import get_scheme
from labelsplat.scene import load_scene
from labelsplat.splat import load_run, render_cameras


def _softmax(x):
    return torch.softmax(torch.as_tensor(x), dim=-1).numpy()


ARGS = ("--preset", "micro", "--novel-views", "3", "--members", "2", "--quiet", "--seed", "1")


@pytest.fixture(scope="module")
def two_fits(tmp_path_factory, synth_scene):
    from labelsplat.cli import main

    out = tmp_path_factory.mktemp("members") / "out"
    assert main(["refine", str(synth_scene), "--out", str(out), *ARGS]) == 0
    return out


def test_members_are_fitted_resumed_and_averaged(cli, synth_scene, two_fits):
    out = two_fits
    args = ("refine", synth_scene, "--out", out, *ARGS)
    run_dir = out / "scenes" / "head_000" / "run"
    assert (run_dir / "members" / "1" / "checkpoint.pt").is_file()
    assert json.loads((out / MARKER).read_text())["provenance"]["config"]["members"] == 2
    run = load_run(run_dir)
    (member,) = run.members
    assert run.config.seed == 1 and member.config.seed == 2  # the members differ in their seed only
    cam = load_scene(synth_scene).cameras[0]
    both = render_cameras(run, [cam])[0]
    first = render_cameras(dataclasses.replace(run, members=()), [cam])[0]
    second = render_cameras(member, [cam])[0]
    np.testing.assert_allclose(_softmax(both["logits"]), (_softmax(first["logits"]) + _softmax(second["logits"])) / 2,
                               atol=1e-5)
    np.testing.assert_allclose(both["rgb"], (first["rgb"] + second["rgb"]) / 2, atol=1e-6)
    assert not np.allclose(first["logits"], second["logits"])  # two fits, not one twice
    # a resume reuses both fits
    r = cli(*args, "--resume")
    assert r.exit_code == 0 and "skipped" in r.output


def test_bad_member_counts_are_refused(cli, synth_scene, tmp_path):
    for bad in ("0", "9"):
        r = cli("refine", synth_scene, "--out", tmp_path / "bad", "--preset", "micro", "--members", bad, "--quiet")
        assert r.exit_code == 2 and "members must be an integer in 1..8" in " ".join(r.output.split())
        assert not (tmp_path / "bad").exists()


def test_an_edit_applies_to_every_fit_unless_it_names_gaussian_ids(cli, two_fits, tmp_path):
    from labelsplat.splat.edits import gaussian_labels

    run_dir = two_fits / "scenes" / "head_000" / "run"
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"schema_version": 1, "edits": [{"select": {"class": "hair"}, "set_class": "hat"}]}))
    r = cli("edit", run_dir, "--edits", edits, "--out", tmp_path / "edited")
    assert r.exit_code == 0, r.output
    before, after = load_run(run_dir), load_run(tmp_path / "edited")
    assert len(after.members) == 1
    hair, hat = get_scheme("celebamask19-zll").index("hair"), get_scheme("celebamask19-zll").index("hat")
    for old, new in ((before, after), (before.members[0], after.members[0])):
        was_hair = gaussian_labels(old.model) == hair
        assert was_hair.any() and (gaussian_labels(new.model)[was_hair] == hat).all()
    # ids name the first fit's Gaussians: the edited run is that fit alone, and the command says so
    source = json.loads((tmp_path / "edited" / "edits.json").read_text())["source_run"]
    edits.write_text(json.dumps({"schema_version": 1, "source_run": source,
                                 "edits": [{"select": {"ids": [0, 1]}, "set_class": "hat"}]}))
    r = cli("edit", tmp_path / "edited", "--edits", edits, "--out", tmp_path / "by_ids")
    assert r.exit_code == 0, r.output
    assert "applies to the first fit only" in " ".join(r.output.split())
    assert load_run(tmp_path / "by_ids").members == ()
