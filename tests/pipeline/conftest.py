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


#: how far the demo's refined mIoU may move from the pin: overall, and per |yaw| bin. Float rounding
#: differs between CPUs (numpy's and torch's SIMD kernels with and without AVX-512), which moves the
#: synthetic head and the fits by a few pixels (measured: 0.0001 overall, 0.0013 in one bin)
PIN_TOL_OVERALL = 0.002
PIN_TOL_BIN = 0.005


def _check_demo_pin(refined: dict) -> None:
    """Compare the demo's refined labelling (metrics.json's ``labellings.refined``) with the pin."""
    pin = _demo_pin()
    assert sum(map(sum, refined["confusion"])) == sum(map(sum, pin["confusion"])), "the demo scores other pixels"
    d_all = refined["overall"]["miou"] - pin["overall"]["miou"]
    d_bin = {b: (refined["by_yaw"][b] or {}).get("miou", 0.0) - (m or 0.0) for b, m in pin["by_yaw"].items()}
    if abs(d_all) > PIN_TOL_OVERALL or any(abs(d) > PIN_TOL_BIN for d in d_bin.values()):
        raise AssertionError(f"the demo's refined labels moved: mIoU overall {d_all:+.4f}, by |yaw| "
                             + ", ".join(f"{b} {d:+.4f}" for b, d in d_bin.items()))


@pytest.fixture
def check_demo_pin():
    """The demo's refined labelling must equal the pin (tests/pipeline/pins/demo_refined.json)."""
    return _check_demo_pin
