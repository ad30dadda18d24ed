"""The gpu preset's capped CPU run: one row per (steps, semantic_grad, labels, --fit-set), kept unless --overwrite."""

from __future__ import annotations

import json

from benchmarks import gpu_preset_cpu as gp


def test_rows_are_keyed_and_kept(tmp_path, capsys):
    out = tmp_path / "gpu_cpu.json"
    argv = ["--out", str(out), "--steps", "4", "--views", "6", "--resolution", "48", "--novel-views", "2",
            "--work", str(tmp_path / "work")]
    assert gp.main(argv + ["--semantic-grad", "none"]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["steps"], row["semantic_grad"], row["labels"], row["preset"]) == (4, "none", "noisy", "gpu")
    assert 0.0 <= row["refined"]["overall"] <= 1.0 and row["n_gaussians"] > 0
    # the same key again is kept, not rerun
    assert gp.main(argv + ["--semantic-grad", "none"]) == 0
    assert "already in" in capsys.readouterr().out and len(json.loads(out.read_text())["rows"]) == 1
    # a --fit-set setting is part of the key: a new row, with the setting in the run's config
    assert gp.main(argv + ["--semantic-grad", "none", "--fit-set", "mask_dilate=0"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2 and rows[1]["fit_set"] == {"mask_dilate": 0} and rows[0].get("fit_set", {}) == {}
    run = tmp_path / "work" / "s0_noisy_none_4_mask_dilate0"
    (cfg,) = [json.loads(p.read_text())["config"] for p in run.rglob("run.json") if "scenes" in p.parts]
    assert cfg["mask_dilate"] == 0.0
