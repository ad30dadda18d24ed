"""One tiny synthetic scene and one refine run, shared by the pipeline tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_scene(tmp_path_factory):
    from labelsplat.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("pipeline_scenes")
    synthesize(root, SynthConfig(identities=1, views=10, rig="facescape", resolution=64, noise="simulated:high", seed=3))
    return root / "head_000"


@pytest.fixture(scope="session")
def refined(tmp_path_factory, synth_scene):
    from labelsplat.cli import main

    out = tmp_path_factory.mktemp("pipeline_refine") / "out"
    code = main(["refine", str(synth_scene), "--out", str(out), "--preset", "micro", "--novel-views", "6",
                 "--quiet", "--seed", "1"])
    assert code == 0
    return out
