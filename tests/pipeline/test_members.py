"""``members``: several fits of a scene whose class probabilities are averaged at every render."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from labelsplat.rundir import MARKER
from labelsplat.scene import load_scene
from labelsplat.splat import load_run, render_cameras


def _softmax(x):
    return torch.softmax(torch.as_tensor(x), dim=-1).numpy()


def test_members_are_fitted_resumed_and_averaged(cli, synth_scene, tmp_path):
    out = tmp_path / "out"
    args = ("refine", synth_scene, "--out", out, "--preset", "micro", "--novel-views", "3", "--members", "2",
            "--quiet", "--seed", "1")
    r = cli(*args)
    assert r.exit_code == 0, r.output
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
