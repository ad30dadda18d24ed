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
    # the refined labels are pinned (tests/pipeline/pins/demo_refined.json)
    check_demo_pin(labs["refined"])
