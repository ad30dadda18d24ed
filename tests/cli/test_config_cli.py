"""`labelsplat config show` and the output rules every command shares (RunDir) at the command line."""

from __future__ import annotations

import json

from labelsplat.rundir import MARKER


def _text(r) -> str:
    return " ".join(r.output.split())


def test_config_show_lists_every_setting_with_its_default(cli):
    r = cli("config", "show")
    assert r.exit_code == 0, r.output
    out = _text(r)
    for words in ("settings of the preset tiny", "fit.sem_lr", "postprocess.fill_holes", "export.novel_views",
                  "sampler.min_head_inside", "--pp-set", "--fit-set", "--novel-views", "scaled:0.1"):
        assert words in out, words
    r = cli("config", "show", "micro")
    assert r.exit_code == 0 and "settings of the preset micro" in _text(r)


def test_config_show_json(cli):
    r = cli("config", "show", "fast", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    by = {row["name"]: row for row in rows}
    assert by["preset"]["default"] == "fast" and by["export.novel_views"]["default"] == 100
    assert by["fit.label_colour_weight"]["default"] == 0.1 and by["fit.label_colour_weight"]["doc"]
    assert {"name", "key", "set_with", "type", "default", "text", "doc"} <= set(rows[0])


def test_config_show_unknown_preset(cli):
    r = cli("config", "show", "huge")
    assert r.exit_code == 2 and "unknown preset 'huge'" in r.output and "Traceback" not in r.output


def test_demo_never_replaces_a_folder_labelsplat_did_not_create(cli, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    r = cli("demo", "--out", mine, "--quiet")
    assert r.exit_code == 2 and "already exists" in _text(r)
    r = cli("demo", "--out", mine, "--quiet", "--overwrite")
    assert r.exit_code == 2 and "did not create" in _text(r)
    assert (mine / "notes.txt").read_text() == "precious" and not (mine / MARKER).exists()


def test_fit_and_refine_overwrite_only_their_own_outputs(cli, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    r = cli("fit", tmp_path / "no_scene", "--out", mine, "--overwrite")
    assert r.exit_code == 2 and "did not create" in _text(r) and str(mine) in _text(r)
    assert (mine / "notes.txt").read_text() == "precious"


def test_labels_convert_never_overwrites_its_input(cli, tmp_path):
    import numpy as np

    from labelsplat.io import write_png

    src = tmp_path / "zll"
    write_png(src / "a.png", np.zeros((4, 4), np.uint8))
    r = cli("labels", "convert", src, tmp_path / "out", "--from", "celebamask19-zll", "--to", "lapa11")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out" / MARKER).read_text())["kind"] == "labels"
    # the output written above is replaced with --overwrite, but converting in place is refused
    r = cli("labels", "convert", tmp_path / "out", tmp_path / "out", "--from", "lapa11", "--to", "lapa11",
            "--overwrite")
    assert r.exit_code == 2 and "is an input" in _text(r)
    assert (tmp_path / "out" / "a.png").is_file()


def test_finetune_never_writes_over_its_starting_weights(cli, tmp_path):
    w = tmp_path / "w.pth"
    w.write_bytes(b"weights")
    r = cli("finetune", "--init", w, "--data", tmp_path / "ds", "--out", w, "--overwrite")
    assert r.exit_code == 2 and "is an input" in _text(r) and w.read_bytes() == b"weights"
