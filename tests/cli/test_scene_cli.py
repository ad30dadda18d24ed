"""`labelsplat scene import` / `scene info` in-process, including bad input -> exit 2 naming the file."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scene"))
from scene_fixtures import HEAD, make_rig, save, write_colmap, write_facescape, write_labels  # noqa: E402


@pytest.fixture(scope="module")
def fs_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs_cli")
    cams = make_rig(yaws=(-70, -30, 0, 30, 70), pitches=(0, 20))
    params = write_facescape(root / "fs", cams, ext=".png", dist=[-0.1, 0.01, 0.0, 0.0, 0.0])
    write_labels(root / "labels", [str(i) for i in range(len(cams))], cams)
    return params, root / "labels", cams


def test_help_has_examples(cli):
    r = cli("scene", "--help")
    assert r.exit_code == 0 and _has(r.output, "import") and _has(r.output, "info")
    r = cli("scene", "import", "--help")
    assert r.exit_code == 0 and _has(r.output, "labelsplat scene import --format facescape")
    r = cli("scene", "info", "--help")
    assert r.exit_code == 0 and _has(r.output, "labelsplat scene info")


def test_import_then_info(cli, fs_source, tmp_path):
    params, labels, cams = fs_source
    out = tmp_path / "scene"
    r = cli("scene", "import", "--format", "facescape", params, "--labels", labels, "--out", out)
    assert r.exit_code == 0, r.output
    assert _has(r.output, "imported 10 views") and _has(r.output, "10 of 10 views undistorted")
    r = cli("scene", "info", out)
    assert r.exit_code == 0, r.output
    for text in ("frames", "10", "48x40", "celebamask19-zll", "60-90", "labels", "10/10", "validation", "ok"):
        assert text in r.output, text
    r = cli("scene", "info", out, "--json")
    s = json.loads(r.stdout)
    assert s["frames"] == 10 and s["optional"]["distortion_removed"] == 10 and s["yaw_bins"]["60-90"] == 4
    # existing OUT refused without --overwrite, accepted with it
    r = cli("scene", "import", "--format", "facescape", params, "--out", out)
    assert r.exit_code == 2 and _has(r.output, "already exists") and _has(r.output, "--overwrite")
    r = cli("scene", "import", "--format", "facescape", params, "--out", out, "--overwrite",
            "--head-frame", json.dumps(HEAD.to_dict()))
    assert r.exit_code == 0, r.output
    assert _has(r.output, "head frame given")


def test_colmap_via_cli_with_head_frame_file(cli, tmp_path):
    cams = make_rig(yaws=tuple(range(-180, 180, 45)), pitches=(0,))  # a 360 orbit
    write_colmap(tmp_path / "m", cams, tmp_path / "images")
    r = cli("scene", "import", "--format", "colmap", tmp_path / "m", "--images", tmp_path / "images", "--out", tmp_path / "o")
    assert r.exit_code == 2 and _has(r.output, "360-degree orbit") and _has(r.output, "--head-frame")
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()
    (tmp_path / "hf.json").write_text(json.dumps(HEAD.to_dict()))
    r = cli("scene", "import", "--format", "colmap", tmp_path / "m", "--images", tmp_path / "images",
            "--head-frame", tmp_path / "hf.json", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    s = json.loads(cli("scene", "info", tmp_path / "o", "--json").stdout)
    assert s["yaw_bins"]["90-180"] == 5  # |yaw| 90, 90, 135, 135, 180


def _has(output: str, needle: str) -> bool:
    """``needle`` in ``output`` ignoring whitespace (rich wraps long error lines and paths)."""
    return re.sub(r"\s", "", needle) in re.sub(r"\s", "", output)


def _scene_copy(cli, fs_source, tmp_path):
    params, labels, _ = fs_source
    out = tmp_path / "scene"
    assert cli("scene", "import", "--format", "facescape", params, "--labels", labels, "--out", out).exit_code == 0
    return out


def _edit(out, fn):
    p = out / "transforms.json"
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))


@pytest.mark.parametrize(
    "case, needle, names",
    [
        ("missing_key", "missing key 'transform_matrix'", "transforms.json"),
        ("nan", "invalid JSON", "transforms.json"),
        ("singular", "singular", "transforms.json"),
        ("size", "the image is 50x40 but its intrinsics say w=48 h=40", "3.png"),
        ("duplicate", "duplicate frame name '1'", "transforms.json"),
        ("label_ids", "outside the scheme", "4.png"),
        ("escape", "points outside the scene directory", "transforms.json"),
        ("scheme", "unknown label scheme 'celebamask-99'", "transforms.json"),
    ],
)
def test_info_bad_scenes_exit_2(cli, fs_source, tmp_path, case, needle, names):
    out = _scene_copy(cli, fs_source, tmp_path)
    if case == "missing_key":
        _edit(out, lambda d: d["frames"][2].pop("transform_matrix"))
    elif case == "nan":
        p = out / "transforms.json"
        p.write_text(p.read_text().replace('"fl_x": ', '"fl_x": NaN, "_": ', 1))
    elif case == "singular":
        _edit(out, lambda d: d["frames"][0].__setitem__("transform_matrix", [[1, 0, 0, 0], [2, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    elif case == "size":
        save(out / "images" / "3.png", np.zeros((40, 50, 3), np.uint8))
    elif case == "duplicate":
        _edit(out, lambda d: d["frames"][0].__setitem__("name", "1"))
    elif case == "label_ids":
        lbl = np.zeros((40, 48), np.uint8)
        lbl[0, 0] = 77
        save(out / "labels" / "4.png", lbl)
    elif case == "escape":
        _edit(out, lambda d: d["frames"][0].__setitem__("label_path", "../labels/0.png"))
    elif case == "scheme":
        _edit(out, lambda d: d.__setitem__("label_scheme", "celebamask-99"))
    r = cli("scene", "info", out)
    assert r.exit_code == 2, r.output
    assert _has(r.output, needle) and _has(r.output, names) and "Traceback" not in r.output
    if case == "escape":  # the file exists one level up only in this layout: accepted on request
        (out.parent / "labels").mkdir()
        shutil.copy(out / "labels" / "0.png", out.parent / "labels" / "0.png")
        assert cli("scene", "info", out, "--allow-outside").exit_code == 0


def test_import_bad_inputs_exit_2(cli, tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0,))
    params = write_facescape(tmp_path / "fs", cams, ext=".png")
    d = json.loads(params.read_text())
    del d["2_K"]
    params.write_text(json.dumps(d))
    r = cli("scene", "import", "--format", "facescape", params, "--out", tmp_path / "o")
    assert r.exit_code == 2 and _has(r.output, "missing key '2_K'") and _has(r.output, "params.json")
    r = cli("scene", "import", "--format", "nope", params, "--out", tmp_path / "o")
    assert r.exit_code == 2 and _has(r.output, "unknown import format")
    params = write_facescape(tmp_path / "fs2", cams, ext=".png")
    write_labels(tmp_path / "labels", ["0", "1", "2"], cams)
    r = cli("scene", "import", "--format", "facescape", params, "--labels", tmp_path / "labels", "--scheme", "lapa11",
            "--out", tmp_path / "o")
    assert r.exit_code == 2 and _has(r.output, "outside the scheme's 11 classes") and _has(r.output, ".png")
    r = cli("scene", "import", "--format", "facescape", params, "--head-frame", '{"center": [0, 0]}', "--out", tmp_path / "o")
    assert r.exit_code == 2 and _has(r.output, "missing key")
    assert not (tmp_path / "o").exists()


def test_console_entry_point_exit_code(tmp_path):
    import subprocess

    (tmp_path / "transforms.json").write_text('{"frames": []}')
    r = subprocess.run([sys.executable, "-m", "labelsplat", "scene", "info", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and _has(r.stderr, "zero frames") and "Traceback" not in r.stderr
