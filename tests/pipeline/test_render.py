import json

from labelsplat.eval import read_metrics
from labelsplat.scene import load_scene


def test_render_from_run_with_given_cameras(cli, tmp_path, refined, synth_scene):
    run = refined / "scenes" / "head_000" / "run"
    # the refined dataset's cameras, rendered again in their order
    cams = refined / "dataset"
    r = cli("render", run, "--out", tmp_path / "o", "--cameras", cams, "--seed", "2")
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "o" / "dataset" / "manifest.json").read_text())
    want = load_scene(cams).cameras
    assert len(manifest["views"]) == len(want)
    doc = read_metrics(tmp_path / "o" / "metrics.json")
    assert set(doc["labellings"]) == {"initial", "refined"}


def test_render_samples_views_and_refuses_existing_output(cli, tmp_path, refined):
    run = refined / "scenes" / "head_000" / "run"
    r = cli("render", run, "--out", tmp_path / "o", "--novel-views", "3")
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "o" / "dataset" / "manifest.json").read_text())["views"]) == 3
    r = cli("render", run, "--out", tmp_path / "o", "--novel-views", "3")
    assert r.exit_code == 2 and "--overwrite" in r.output.replace("\n", " ")


def test_render_refuses_scheme_mismatch(cli, tmp_path, refined, synth_scene):
    import shutil

    scene = tmp_path / "s"
    shutil.copytree(synth_scene, scene)
    doc = json.loads((scene / "transforms.json").read_text())
    doc["label_scheme"] = "lapa11"
    (scene / "transforms.json").write_text(json.dumps(doc))
    r = cli("render", refined / "scenes" / "head_000" / "run", "--out", tmp_path / "o", "--scene", scene)
    assert r.exit_code == 2 and "label scheme" in r.output
