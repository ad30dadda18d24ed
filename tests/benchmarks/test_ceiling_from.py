"""refine_quality --ceiling-from: a --no-ceiling run takes its ceiling from the --noise none run of
the same configuration (the same heads with their exact labels as input)."""

from __future__ import annotations

import json

from benchmarks import refine_quality as rq


def _labelling(miou: float) -> dict:
    bins = {b: {"miou": miou, "mean_f1": miou, "coverage": 1.0} for b in ("0-30", "30-60", "60-90", "90-180")}
    part = {"overall": {"miou": miou, "mean_f1": miou, "coverage": 1.0}, "by_yaw": bins}
    return {**part, "boundary_excluded": part, "per_class": {}}


def _run(path, noise: str, refined: float, ceiling=False):
    settings = {"preset": "fast", "seeds": [0], "variants": [], "semantic_grad": "none", "noise": noise,
                "ceiling": ceiling, "fit_overrides": {"semantic_loss": "gce:0.7"}}
    cell = {"seed": 0, "semantic_grad": "none", "fits": [{"labelling": "refined", "fit_s": 1.0}],
            "labellings": {"initial": _labelling(0.5), "refined": _labelling(refined),
                           "refined_raw": _labelling(refined - 0.01)}}
    path.write_text(json.dumps({"settings": settings, "cells": {"main/none/seed0": cell}, "runs": []}))
    return path


def test_the_exact_run_becomes_the_ceiling(tmp_path, capsys):
    out = _run(tmp_path / "noisy.json", "simulated:medium", 0.8)
    exact = _run(tmp_path / "exact.json", "none", 0.9)
    assert rq.main(["--out", str(out), "--ceiling-from", str(exact)]) == 0
    doc = json.loads(out.read_text())
    L = doc["cells"]["main/none/seed0"]["labellings"]
    assert L["ceiling"]["overall"]["miou"] == 0.9 and L["ceiling_raw"]["overall"]["miou"] == 0.89
    assert L["refined"]["overall"]["miou"] == 0.8 and doc["settings"]["ceiling"].startswith("from exact.json")
    assert [f["labelling"] for f in doc["cells"]["main/none/seed0"]["fits"]] == ["refined", "ceiling"]
    assert doc["summary"]["main"]["ceiling"]["overall_miou"]["mean"] == 0.9


def test_another_configuration_is_refused(tmp_path, capsys):
    out = _run(tmp_path / "noisy.json", "simulated:medium", 0.8)
    noisy_again = _run(tmp_path / "other.json", "simulated:high", 0.9)
    assert rq.main(["--out", str(out), "--ceiling-from", str(noisy_again)]) == 2
    assert "not the --noise none run" in capsys.readouterr().err
    assert "ceiling" not in json.loads(out.read_text())["cells"]["main/none/seed0"]["labellings"]
