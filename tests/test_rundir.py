"""RunDir: the one rule set for output directories (create, resume, overwrite, leftovers, provenance)."""

from __future__ import annotations

import json
import os

import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.rundir import MARKER, NEW, REPLACE, RESUME, RunDir, check_output_file, config_diff, fingerprint


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_missing_or_empty_directory_is_created_with_a_marker(tmp_path):
    rd = RunDir(tmp_path / "a" / "out", "refine")
    assert rd.create() == NEW
    doc = json.loads((tmp_path / "a" / "out" / MARKER).read_text())
    assert doc["kind"] == "refine" and doc["schema_version"] == 1 and doc["labelsplat_version"] and doc["created"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert RunDir(empty, "fit").create() == NEW and (empty / MARKER).is_file()
    # a directory holding only its marker counts as empty: a second start is not refused
    assert RunDir(empty, "fit").check() == NEW


def test_existing_directory_refused_without_resume_or_overwrite(tmp_path):
    out = tmp_path / "out"
    RunDir(out, "refine").create()
    (out / "refine.json").write_text("{}")
    with pytest.raises(LabelsplatError) as e:
        RunDir(out, "refine", resumable=True).check()
    assert "already exists" in str(e.value) and "--resume" in str(e.value) and str(out) in str(e.value)
    with pytest.raises(LabelsplatError) as e:
        RunDir(out, "scene").check()
    assert "--overwrite" in str(e.value) and "--resume" not in str(e.value)
    with pytest.raises(LabelsplatError, match="exclude each other"):
        RunDir(out, "refine").check(resume=True, overwrite=True)


def test_overwrite_removes_a_marked_directory(tmp_path):
    out = tmp_path / "out"
    RunDir(out, "fit").create()
    (out / "old.txt").write_text("x")
    assert RunDir(out, "fit").create(overwrite=True) == REPLACE
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


@pytest.mark.parametrize("sign", ["run.json", "refine.json", "DONE.json", "transforms.json", "ckpt/step_000020.pt",
                                  "scenes/head_000/DONE.json", "refined/refine.json",
                                  "metrics.json+dataset/manifest.json"])
def test_legacy_outputs_are_recognised(tmp_path, sign):
    out = tmp_path / "out"
    for rel in sign.split("+"):
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"schema_version": 1}) if p.suffix == ".json" else "x")
    (out / "other.png").write_text("x")
    rd = RunDir(out, "refine")
    assert rd.origin() == "legacy"
    assert rd.check(overwrite=True) == REPLACE and rd.check(resume=True) == RESUME


def test_a_folder_labelsplat_did_not_create_is_never_replaced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_text("precious")
    (out / "transforms.json").write_text(json.dumps({"frames": []}))  # no schema_version: not labelsplat's
    (out / "metrics.json").write_text(json.dumps({"schema_version": 1}))  # an evaluate result saved here
    rd = RunDir(out, "demo")
    assert rd.origin() is None
    with pytest.raises(LabelsplatError, match="did not create"):
        rd.create(overwrite=True)
    with pytest.raises(LabelsplatError, match="cannot resume"):
        rd.create(resume=True)
    assert (out / "holiday.jpg").read_text() == "precious"


@pytest.mark.parametrize("where", ["is", "contains", "lies inside"])
def test_overwrite_never_touches_an_input(tmp_path, where):
    scene = tmp_path / "data" / "scene"
    scene.mkdir(parents=True)
    (scene / "transforms.json").write_text(json.dumps({"schema_version": 1}))
    out = {"is": scene, "contains": tmp_path / "data", "lies inside": scene / "sub"}[where]
    RunDir(out, "refine").create() if where == "lies inside" else (out / MARKER).write_text(
        json.dumps({"schema_version": 1, "kind": "refine"}))
    (out / "x.txt").write_text("x")
    with pytest.raises(LabelsplatError) as e:
        RunDir(out, "refine", inputs=[scene]).create(overwrite=True)
    assert f"it {where} an input" in str(e.value)
    assert (scene / "transforms.json").is_file() and (out / "x.txt").is_file()


def test_refusals_name_files_in_the_way(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep")
    with pytest.raises(LabelsplatError, match="is a file, not a directory"):
        RunDir(f, "fit").check()
    with pytest.raises(LabelsplatError) as e:
        RunDir(f / "below", "fit").check()
    assert e.value.path == str(f) and "is a file" in e.value.message
    assert f.read_text() == "keep"


def test_resume_cleans_leftovers_and_checks_the_kind(tmp_path):
    out = tmp_path / "out"
    RunDir(out, "refine").create()
    (out / "refine.json").write_text("{}")
    stale = out / f".views.{_dead_pid()}-abc.partial"
    stale.mkdir()
    live = out / f".x.{os.getpid()}-abc.tmp"
    live.write_text("in progress")
    assert RunDir(out, "refine").create(resume=True) == RESUME
    assert not stale.exists() and live.exists()
    with pytest.raises(LabelsplatError, match="holds a labelsplat refine output, not a fit output"):
        RunDir(out, "fit").check(resume=True)


def test_provenance_and_resume_with_another_configuration(tmp_path):
    scene = tmp_path / "scene"
    scene.mkdir()
    (scene / "a.png").write_bytes(b"123")
    out = tmp_path / "out"
    rd = RunDir(out, "refine", inputs=[scene])
    rd.create()
    rd.write_provenance({"seed": 1, "fit": {"steps": 60}, "device": "cpu"}, 1)
    prov = rd.marker()["provenance"]
    assert prov["seed"] == 1 and prov["config"]["fit"]["steps"] == 60
    assert prov["inputs"][0]["files"] == 1 and prov["inputs"][0]["bytes"] == 3 and len(prov["inputs"][0]["sha256"]) == 64
    rd.check_resume_config({"seed": 1, "fit": {"steps": 60}, "device": "cuda"})  # where it runs may change
    with pytest.raises(LabelsplatError, match=r"differs from the run's \(fit.steps\)"):
        rd.check_resume_config({"seed": 1, "fit": {"steps": 80}, "device": "cpu"})
    created = rd.marker()["created"]
    rd.write_marker()
    assert rd.marker()["created"] == created and "provenance" in rd.marker()


def test_fingerprint_and_config_diff(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    a = fingerprint(f)
    f.write_bytes(b"abcd")
    assert fingerprint(f)["sha256"] != a["sha256"] and fingerprint(f)["bytes"] == 4
    assert fingerprint(tmp_path / "missing")["exists"] is False
    assert config_diff({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 3]}, "d": 0}) == ["b.c", "d"]


def test_output_files_follow_the_same_rules(tmp_path):
    w = tmp_path / "w.pth"
    assert check_output_file(w) == w
    w.write_bytes(b"x")
    with pytest.raises(LabelsplatError, match="already exists"):
        check_output_file(w)
    check_output_file(w, overwrite=True)
    check_output_file(w, resume=True)
    with pytest.raises(LabelsplatError, match="is an input"):
        check_output_file(w, overwrite=True, inputs=[w])
    with pytest.raises(LabelsplatError, match="is a directory"):
        check_output_file(tmp_path)
