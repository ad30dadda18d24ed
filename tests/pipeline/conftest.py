"""One tiny synthetic scene and one refine run, shared by the pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PINS = Path(__file__).parent / "pins"


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


def _demo_pin() -> dict:
    return json.loads((PINS / "demo_refined.json").read_text())


def _check_demo_pin(refined: dict) -> None:
    """Compare the demo's refined labelling (metrics.json's ``labellings.refined``) with the pin."""
    pin = _demo_pin()
    got = refined["confusion"]
    if got != pin["confusion"]:
        diffs = {k: round(refined["overall"][k] - pin["overall"][k], 6) for k in pin["overall"]}
        by_yaw = {b: round((refined["by_yaw"][b] or {}).get("miou", 0.0) - (m or 0.0), 6)
                  for b, m in pin["by_yaw"].items()}
        raise AssertionError(f"the demo's refined confusion matrix moved: overall {diffs}, mIoU by |yaw| {by_yaw}")


@pytest.fixture
def check_demo_pin():
    """The demo's refined labelling must equal the pin (tests/pipeline/pins/demo_refined.json)."""
    return _check_demo_pin
