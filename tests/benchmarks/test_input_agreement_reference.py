"""The input-agreement reference: exact labels scored against a noise model's labels at the trusted
input views, and a finished refine's recorded agreement."""

from __future__ import annotations

import json

from benchmarks import input_agreement as ia


def _refine_output(root):
    """The two metrics files of a finished one-scene refine that the script reads."""
    (root / "scenes" / "head_000").mkdir(parents=True)
    agreement = {"miou": 0.76543, "views": 8, "threshold": 0.5, "trusted_yaw": 30.0, "warning": None}
    (root / "metrics.json").write_text(json.dumps({"consistency": {"head_000": {"input_agreement": agreement}}}))
    labellings = {k: {"overall": {"miou": v}} for k, v in (("initial", 0.6), ("refined", 0.8))}
    (root / "scenes" / "head_000" / "metrics.json").write_text(json.dumps({"labellings": labellings}))
    return root


def test_exact_labels_agree_with_noisy_inputs_below_one_and_refines_are_read(tmp_path):
    out = tmp_path / "agreement.json"
    refined = _refine_output(tmp_path / "run")
    assert ia.main(["--out", str(out), "--seeds", "0", "--noises", "none", "simulated:high", "--views", "8",
                    "--resolution", "48", "--work", str(tmp_path / "work"), "--refined", str(refined)]) == 0
    doc = json.loads(out.read_text())
    by_noise = {r["noise"]: r["agreement"] for r in doc["exact_labels"]}
    # without noise the inputs are the exact labels; the parser's noise lowers what even they get
    assert by_noise["none"] == 1.0 and 0.3 < by_noise["simulated:high"] < 1.0
    assert doc["exact_labels_range"]["simulated:high"]["min"] == by_noise["simulated:high"]
    (row,) = doc["refines"]
    assert (row["scene"], row["agreement"], row["initial"], row["refined"]) == ("head_000", 0.7654, 0.6, 0.8)
