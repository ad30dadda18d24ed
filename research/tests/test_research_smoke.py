"""Smoke tests of the research studies: every study imports, parses its options, and the pure
helpers that need no fit work on tiny inputs. Not part of the default test run (``testpaths``
is ``tests``); run with ``python -m pytest research/tests`` from the repository root."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

RESEARCH = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in RESEARCH.glob("*.py") if p.stem != "__init__")
#: modules the studies share (no command line of their own)
HELPERS = ("assign_variants", "consensus", "fixed_head")
STUDIES = [m for m in MODULES if m not in HELPERS]


@pytest.mark.parametrize("name", STUDIES)
def test_study_imports_and_parses_help(name, capsys):
    mod = importlib.import_module(f"research.{name}")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_every_study_is_documented():
    readme = (RESEARCH / "README.md").read_text(encoding="utf-8")
    for name in MODULES + ["sweep_tiny"]:
        assert f"research.{name}" in readme or f"research/{name}" in readme, name


def test_collect_sweep_compacts_a_results_file(tmp_path):
    from research import collect_sweep

    cell = {"labellings": {n: {"overall": {"miou": 0.5, "coverage": 1.0}, "by_yaw": {"60-90": {"miou": 0.4}},
                               "per_class": {"nose": {"iou": 0.3}}}
                           for n in ("initial", "refined", "refined_raw")},
            "fits": [{"fit_s": 1.0, "train_label_acc_last": 0.9, "n_gaussians": 1234}]}
    src = tmp_path / "run.json"
    src.write_text(json.dumps({"settings": {"preset": "micro"}, "runs": [{"machine": {"cpu": "x"}}],
                               "cells": {"main/scaled:0.1/seed0": cell}}))
    out = tmp_path / "sweep.json"
    assert collect_sweep.main([str(out), f"base={src}", "--what", "a test sweep"]) == 0
    doc = json.loads(out.read_text())
    assert doc["what"] == "a test sweep"
    cell = doc["runs"]["base"]["cells"]["main/scaled:0.1/seed0"]
    assert cell["labellings"]["refined"]["miou"] == 0.5
    assert cell["n_gaussians"] == [1234]
