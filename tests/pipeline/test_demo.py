import json

from labelsplat.eval import read_metrics


def test_demo_runs_end_to_end(cli, tmp_path, check_demo_pin):
    out = tmp_path / "demo"
    r = cli("demo", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert "initial" in r.output and "refined" in r.output
    doc = read_metrics(out / "refined" / "metrics.json")
    labs = doc["labellings"]
    assert set(labs) == {"initial", "refined"}
    assert (out / "refined" / "report.html").is_file()
    manifest = json.loads((out / "refined" / "dataset" / "manifest.json").read_text())
    assert sum(v["accepted"] for v in manifest["views"]) >= 12
    # the point of the project: fused labels beat the simulated parser at the novel views
    assert labs["refined"]["overall"]["miou"] > labs["initial"]["overall"]["miou"], (
        labs["refined"]["overall"], labs["initial"]["overall"])
    # per |yaw| bin: above the initial labels wherever the geometry allows it. The views from above
    # (|yaw| 0-30, pitch ~37 degrees, beyond the inputs' pitch range) stay below the initial labels
    # even when the fit gets the exact labels (ceiling 0.694 vs initial 0.793, docs/quality.md): a
    # guard against getting worse there, not the target
    ini, ref = labs["initial"]["by_yaw"], labs["refined"]["by_yaw"]
    for b in ("30-60", "60-90", "90-180"):
        assert ref[b]["miou"] > ini[b]["miou"] + 0.05, (b, ref[b], ini[b])
    assert ref["0-30"]["miou"] > ini["0-30"]["miou"] - 0.15, (ref["0-30"], ini["0-30"])
    # the views agree on the Gaussians' classes and the refine reproduces its trusted inputs: no warning
    pooled = json.loads((out / "refined" / "metrics.json").read_text())
    assert pooled["warnings"] == [], pooled["warnings"]
    assert pooled["consistency"]["head_000"]["label_agreement"]["top_share"] > 0.5
    # the refined labels are pinned (tests/pipeline/pins/demo_refined.json)
    check_demo_pin(labs["refined"])
