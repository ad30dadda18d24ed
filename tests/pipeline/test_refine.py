import json
import shutil

import numpy as np
from PIL import Image

from labelsplat.eval import read_metrics


def test_output_tree(refined):
    sdir = refined / "scenes" / "head_000"
    for p in ("run/checkpoint.pt", "run/point_cloud.ply", "run/train_log.jsonl", "views/manifest.json",
              "metrics.json", "DONE.json"):
        assert (sdir / p).is_file(), p
    for p in ("dataset/manifest.json", "dataset/transforms.json", "metrics.json", "report.html"):
        assert (refined / p).is_file(), p
    for sub in ("images", "labels", "overlays", "confidence"):
        assert (refined / "dataset" / sub).is_dir()
    manifest = json.loads((refined / "dataset" / "manifest.json").read_text())
    assert manifest["schema_version"] == 1 and len(manifest["views"]) == 6
    for v in manifest["views"]:
        assert v["source_scene"] == "head_000"
        assert abs(v["yaw"]) >= 60 or abs(v["pitch"]) >= 30  # extreme sampler
        if v["accepted"]:
            lab = np.asarray(Image.open(refined / "dataset" / v["label"]))
            assert lab.dtype == np.uint8 and set(np.unique(lab)) <= set(range(19)) | {255}


def test_metrics_schema(refined):
    doc = read_metrics(refined / "metrics.json")
    assert set(doc["labellings"]) == {"initial", "refined"}
    for lab in doc["labellings"].values():
        assert set(lab["by_yaw"]) == {"0-30", "30-60", "60-90", "90-180"}
        for key in ("miou", "mean_f1", "pixel_acc", "coverage"):
            assert 0.0 <= lab["overall"][key] <= 1.0
    cons = doc["consistency"]["head_000"]
    assert cons["before"]["compared"] > 0 and cons["after"]["compared"] > 0
    assert doc["seed"] == 1 and doc["config"]["refine"]["preset"] == "micro"


def test_report_links_images(refined):
    text = (refined / "report.html").read_text()
    assert "dataset/images/" in text and "mIoU" in text
    # initial, refined and GT columns in one style: overlays on the view's image
    assert "report_files/initial/" in text and "report_files/labels/" in text and "dataset/overlays/" in text
    for sub in ("initial", "labels"):
        shown = list((refined / "report_files" / sub).iterdir())
        assert shown and all(p.suffix == ".jpg" for p in shown), sub


def test_existing_output_refused_then_resumed(cli, refined, synth_scene):
    r = cli("refine", synth_scene, "--out", refined, "--preset", "micro", "--quiet")
    assert r.exit_code == 2 and "--resume" in r.output.replace("\n", " ")
    before = (refined / "scenes" / "head_000" / "DONE.json").stat().st_mtime_ns
    r = cli("refine", synth_scene, "--out", refined, "--preset", "micro", "--novel-views", "6", "--quiet",
            "--seed", "1", "--resume")
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output
    assert (refined / "scenes" / "head_000" / "DONE.json").stat().st_mtime_ns == before


def test_scene_without_ground_truth_reports_consistency(cli, tmp_path, synth_scene, refined):
    # the same scene without synth.json: no GT scoring, consistency only; reuse the finished fit
    scene = tmp_path / "head_000"
    shutil.copytree(synth_scene, scene)
    (scene / "synth.json").unlink()
    out = tmp_path / "out"
    (out / "scenes" / "head_000").mkdir(parents=True)
    shutil.copytree(refined / "scenes" / "head_000" / "run", out / "scenes" / "head_000" / "run")
    r = cli("refine", scene, "--out", out, "--preset", "micro", "--novel-views", "4", "--quiet", "--resume")
    assert r.exit_code == 0, r.output
    doc = read_metrics(out / "metrics.json")
    assert doc["labellings"] == {}
    assert doc["consistency"]["head_000"]["after"]["agreement"] is not None
    assert "consistency" in r.output


def test_scene_without_head_frame_is_refused(cli, tmp_path, synth_scene):
    scene = tmp_path / "s"
    shutil.copytree(synth_scene, scene)
    doc = json.loads((scene / "transforms.json").read_text())
    del doc["head_frame"]
    (scene / "transforms.json").write_text(json.dumps(doc))
    r = cli("refine", scene, "--out", tmp_path / "o", "--preset", "micro", "--quiet")
    assert r.exit_code == 2 and "head_frame" in r.output
    assert not (tmp_path / "o" / "dataset").exists()


def test_palette_extraction_variant(cli, tmp_path, synth_scene):
    # the paper's variant: segmentation fitted as a palette image, labels by nearest palette colour
    out = tmp_path / "pal"
    r = cli("refine", synth_scene, "--out", out, "--preset", "micro", "--novel-views", "3", "--extract", "palette",
            "--quiet", "--celebamask-layout")
    assert r.exit_code == 0, r.output
    run = json.loads((out / "scenes" / "head_000" / "run" / "run.json").read_text())
    assert run["config"]["semantic_target"] == "palette"
    doc = read_metrics(out / "metrics.json")
    assert doc["config"]["refine"]["extract"] == "palette" and set(doc["labellings"]) == {"initial", "refined"}
    assert any((out / "dataset" / "CelebAMask-HQ-mask-anno").rglob("*_skin.png"))
    # rendering the palette run again picks palette extraction by itself
    r = cli("render", out / "scenes" / "head_000" / "run", "--out", tmp_path / "again", "--novel-views", "2")
    assert r.exit_code == 0, r.output
    assert read_metrics(tmp_path / "again" / "metrics.json")["config"]["render"]["extract"] == "palette"


def test_resume_with_other_settings_is_refused(cli, refined, synth_scene):
    from labelsplat.rundir import MARKER

    marker = json.loads((refined / MARKER).read_text())
    assert marker["kind"] == "refine" and marker["provenance"]["config"]["export"]["novel_views"] == 6
    assert marker["provenance"]["inputs"][0]["path"] == str(synth_scene.resolve())
    r = cli("refine", synth_scene, "--out", refined, "--preset", "micro", "--novel-views", "5", "--quiet",
            "--seed", "1", "--resume")
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "differs from the run's (export.novel_views)" in out and "--overwrite" in out


def test_overwrite_never_removes_an_input(cli, synth_scene):
    before = sorted(p.name for p in synth_scene.iterdir())
    r = cli("refine", synth_scene, "--out", synth_scene, "--preset", "micro", "--quiet", "--overwrite")
    assert r.exit_code == 2 and "is an input" in " ".join(r.output.split())
    assert sorted(p.name for p in synth_scene.iterdir()) == before


def test_a_previous_demo_output_is_recognised(tmp_path):
    from labelsplat.pipeline import _is_demo_output
    from labelsplat.rundir import RunDir

    old = tmp_path / "old_demo"  # written before the marker existed
    (old / "input" / "head_000").mkdir(parents=True)
    (old / "refined").mkdir()
    (old / "refined" / "refine.json").write_text(json.dumps({"schema_version": 1}))
    assert _is_demo_output(RunDir(old, "demo"))
    new = tmp_path / "new_demo"
    RunDir(new, "demo").create()
    (new / "input").mkdir()
    assert _is_demo_output(RunDir(new, "demo"))
    other = tmp_path / "refined"
    RunDir(other, "refine").create()
    (other / "refine.json").write_text(json.dumps({"schema_version": 1}))
    assert not _is_demo_output(RunDir(other, "demo"))


def test_resume_of_an_output_recorded_before_settings_were_added(cli, refined, synth_scene, tmp_path):
    from labelsplat.rundir import MARKER

    out = tmp_path / "older"
    shutil.copytree(refined, out)
    marker = json.loads((out / MARKER).read_text())
    cfg = marker["provenance"]["config"]
    del cfg["members"], cfg["fit"]["rasterize_mode"]  # settings this version added, at their defaults
    (out / MARKER).write_text(json.dumps(marker))
    r = cli("refine", synth_scene, "--out", out, "--preset", "micro", "--novel-views", "6", "--quiet",
            "--seed", "1", "--resume")
    assert r.exit_code == 0, r.output
