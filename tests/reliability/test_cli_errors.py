"""The error catalogue (docs/errors.md), one test per case, driving the CLI in-process.

Every refused command must exit 2 (LabelsplatError), print ONE readable ``error:`` message that
names the offending file and gives a fix, print no traceback, and write nothing partial (the
output is absent or unchanged). Accepted-with-conversion inputs are checked to work.
Each test's name is the one docs/errors.md cites.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_clean_error, snapshot

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ----------------------------------------------------------------------------- helpers
def _edit(scene: Path, fn) -> Path:
    p = scene / "transforms.json"
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))
    return p


def _set_frame(i: int, key: str, value):
    return lambda d: d["frames"][i].__setitem__(key, value)


def _dead_pid() -> int:
    """The id of a process that has ended (for fake leftovers of a killed run)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------- transforms.json
def _text(text):
    return lambda p: p.write_text(text)


TRANSFORMS_CASES = {
    # id: (breaker(scene) , needles)
    "empty_file": (lambda s: (s / "transforms.json").write_text(""), ["transforms.json", "the file is empty"]),
    "truncated_json": (lambda s: (s / "transforms.json").write_text((s / "transforms.json").read_text()[:200]),
                       ["transforms.json", "invalid JSON"]),
    "not_an_object": (lambda s: (s / "transforms.json").write_text("[1, 2, 3]"), ["transforms.json", "JSON object"]),
    "missing_frames": (lambda s: _edit(s, lambda d: d.pop("frames")), ["transforms.json", "missing key 'frames'"]),
    "zero_frames": (lambda s: _edit(s, lambda d: d.__setitem__("frames", [])), ["transforms.json", "zero frames"]),
    "missing_matrix": (lambda s: _edit(s, lambda d: d["frames"][2].pop("transform_matrix")),
                       ["transforms.json", "frame 2: missing key 'transform_matrix'"]),
    "matrix_wrong_type": (lambda s: _edit(s, _set_frame(1, "transform_matrix", "identity")),
                          ["transforms.json", "frame 1: transform_matrix"]),
    "matrix_wrong_shape": (lambda s: _edit(s, _set_frame(1, "transform_matrix", [[1, 0, 0], [0, 1, 0]])),
                           ["transforms.json", "expected 4x4"]),
    "nan_literal": (lambda s: (s / "transforms.json").write_text(
        (s / "transforms.json").read_text().replace('"fl_x": ', '"fl_x": NaN, "_x": ', 1)),
        ["transforms.json", "non-finite number NaN"]),
    # Python writes 1e999 as the non-standard literal Infinity, refused like NaN
    "inf_matrix": (lambda s: _edit(s, lambda d: d["frames"][0]["transform_matrix"][0].__setitem__(3, 1e999)),
                   ["transforms.json", "non-finite number Infinity"]),
    "singular_matrix": (lambda s: _edit(s, _set_frame(0, "transform_matrix", [[1, 0, 0, 0], [2, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])),
                        ["transforms.json", "singular"]),
    "intrinsic_wrong_type": (lambda s: _edit(s, _set_frame(3, "fl_x", "72")), ["transforms.json", "'fl_x' must be a number"]),
    "intrinsic_missing": (lambda s: _edit(s, lambda d: [f.pop("cx") for f in d["frames"]]),
                          ["transforms.json", "missing intrinsic 'cx'"]),
    "size_not_positive": (lambda s: _edit(s, _set_frame(0, "w", -48)), ["transforms.json", "'w' must be positive"]),
    "duplicate_frames": (lambda s: _edit(s, _set_frame(1, "name", "view_000")),
                         ["transforms.json", "duplicate frame name 'view_000'"]),
    "duplicate_files": (lambda s: _edit(s, lambda d: (d["frames"][1].__setitem__("file_path", d["frames"][0]["file_path"]),
                                                      d["frames"][1].__setitem__("name", "other"))),
                        ["transforms.json", "duplicate frames: file_path"]),
    "path_wrong_type": (lambda s: _edit(s, _set_frame(0, "label_path", 7)), ["transforms.json", "'label_path' must be a string"]),
    "unknown_scheme": (lambda s: _edit(s, lambda d: d.__setitem__("label_scheme", "celebamask-99")),
                       ["transforms.json", "unknown label scheme 'celebamask-99'"]),
    "bad_head_frame": (lambda s: _edit(s, lambda d: d.__setitem__("head_frame", {"center": [0, 0]})),
                       ["transforms.json", "head_frame"]),
    "absolute_path": (lambda s: _edit(s, _set_frame(0, "file_path", str(s / "images" / "view_000.png"))),
                      ["transforms.json", "points outside the scene directory", "--allow-outside"]),
    "dotdot_path": (lambda s: _edit(s, _set_frame(2, "label_path", "../labels/view_002.png")),
                    ["transforms.json", "points outside the scene directory"]),
}


@pytest.mark.parametrize("case", sorted(TRANSFORMS_CASES))
def test_transforms(cli, scene, case):
    """`scene info` on a broken transforms.json: refused, naming transforms.json; the scene is untouched."""
    breaker, needles = TRANSFORMS_CASES[case]
    breaker(scene)
    before = snapshot(scene)
    r = cli("scene", "info", scene)
    assert_clean_error(r, *needles)
    assert snapshot(scene) == before


def test_scene_not_found(cli, tmp_path):
    assert_clean_error(cli("scene", "info", tmp_path / "nope"), "nope", "scene not found")


# ----------------------------------------------------------------------------- image and label files
def _png_bytes(arr) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


FILE_CASES = {
    "image_missing": (lambda s: (s / "images" / "view_001.png").unlink(), "view_001.png", "not found"),
    "image_empty": (lambda s: (s / "images" / "view_001.png").write_bytes(b""), "view_001.png", "empty"),
    "image_not_an_image": (lambda s: (s / "images" / "view_001.png").write_text("hello, not a PNG"), "view_001.png",
                           "not an image file"),
    "image_wrong_size": (lambda s: (s / "images" / "view_001.png").write_bytes(_png_bytes(np.zeros((40, 48, 3), np.uint8))),
                         "view_001.png", "the image is 48x40 but its intrinsics say w=48 h=48"),
    "label_ids_outside_scheme": (lambda s: (s / "labels" / "view_004.png").write_bytes(
        _png_bytes(np.full((48, 48), 42, np.uint8))), "view_004.png", "label ids [42] are outside the scheme's 19 classes"),
    "label_wrong_size": (lambda s: (s / "labels" / "view_004.png").write_bytes(_png_bytes(np.zeros((24, 48), np.uint8))),
                         "view_004.png", "label size 48x24 differs from its image 48x48"),
    "label_colour_png": (lambda s: (s / "labels" / "view_004.png").write_bytes(
        _png_bytes(np.full((48, 48, 3), (1, 2, 3), np.uint8))), "view_004.png", "colour (1, 2, 3) (2304 pixels) is not in"),
    "label_16bit_ids_above_255": (lambda s: Image.fromarray(np.full((48, 48), 300, np.uint16)).save(s / "labels" / "view_004.png"),
                                  "view_004.png", "label ids above 255"),
    "label_truncated": (lambda s: (s / "labels" / "view_004.png").write_bytes((s / "labels" / "view_004.png").read_bytes()[:60]),
                        "view_004.png", "cannot decode the image"),
    "gt_label_wrong_size": (lambda s: (s / "gt_labels" / "view_003.png").write_bytes(
        _png_bytes(np.zeros((48, 40), np.uint8))), "view_003.png", "differs from its image"),
    "mask_wrong_size": (lambda s: (s / "masks" / "view_005.png").write_bytes(_png_bytes(np.zeros((10, 10), np.uint8))),
                        "view_005.png", "mask size 10x10 differs from its image 48x48"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_scene_files(cli, scene, case):
    """`scene info` (decodes labels) on a scene with one bad file: refused naming that file."""
    breaker, name, needle = FILE_CASES[case]
    breaker(scene)
    r = cli("scene", "info", scene)
    assert_clean_error(r, name, needle, fix=False)


def test_image_truncated_refused_by_fit(cli, scene, tmp_path):
    """A truncated image passes header checks; `fit` decodes it and refuses it before writing the run."""
    p = scene / "images" / "view_002.png"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    out = tmp_path / "run"
    r = cli("fit", scene, "--out", out, "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet")
    assert_clean_error(r, "view_002.png", "truncated", fix=False)
    assert not out.exists()


def test_image_modes_converted(cli, scene, tmp_path):
    """RGBA, greyscale, 16-bit greyscale and 16-bit RGB images are accepted (converted to 8-bit RGB)
    and a 16-bit label PNG with ids <= 255 is accepted; `fit` runs on the mixed scene."""
    from labelsplat.io import read_label, read_rgb

    imgs = scene / "images"
    rgb = [np.asarray(Image.open(imgs / f"view_{i:03d}.png").convert("RGB")) for i in range(4)]
    Image.fromarray(np.dstack([rgb[0], np.full(rgb[0].shape[:2], 128, np.uint8)])).save(imgs / "view_000.png")  # RGBA
    Image.fromarray(rgb[1].mean(axis=2).astype(np.uint8)).save(imgs / "view_001.png")  # L
    grey16 = rgb[2].mean(axis=2).astype(np.uint16) * 257  # full 16-bit range
    Image.fromarray(grey16).save(imgs / "view_002.png")  # I;16
    _write_png16_rgb(imgs / "view_003.png", rgb[3].astype(np.uint16) * 257)
    lbl = read_label(scene / "labels" / "view_004.png")
    Image.fromarray(lbl.astype(np.uint16)).save(scene / "labels" / "view_004.png")  # 16-bit label

    assert np.array_equal(read_rgb(imgs / "view_000.png"), rgb[0])  # alpha dropped
    assert np.array_equal(read_rgb(imgs / "view_001.png"), np.repeat(rgb[1].mean(axis=2).astype(np.uint8)[..., None], 3, 2))
    assert np.abs(read_rgb(imgs / "view_002.png")[..., 0].astype(int) - rgb[2].mean(axis=2).astype(np.uint8)).max() <= 1
    assert np.array_equal(read_rgb(imgs / "view_003.png"), rgb[3])  # 16-bit RGB scaled, not garbled
    assert np.array_equal(read_label(scene / "labels" / "view_004.png", 19), lbl)

    assert cli("scene", "info", scene).exit_code == 0
    r = cli("fit", scene, "--out", tmp_path / "run", "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "point_cloud.ply").is_file()


def _write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A 48-bit RGB PNG (Pillow cannot write one): minimal PNG encoder."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_cameras_look_away(cli, scene, tmp_path):
    """Every camera turned around (looking away from the head): `fit` refuses before writing anything."""
    def turn(d):
        for f in d["frames"]:
            m = np.asarray(f["transform_matrix"])
            m[:3, :3] = m[:3, :3] @ np.diag([-1.0, 1.0, -1.0])  # rotate 180 deg about the camera's y axis
            f["transform_matrix"] = m.tolist()

    _edit(scene, turn)
    out = tmp_path / "run"
    r = cli("fit", scene, "--out", out, "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet")
    assert_clean_error(r, "transforms.json", "behind the camera")
    assert not out.exists()


# ----------------------------------------------------------------------------- escaping paths
def test_outside_paths_refused_by_fit_allowed_on_request(cli, scene, tmp_path):
    """A label_path leaving the scene: `fit` refuses it; with --allow-outside the scene is read."""
    shutil.copy(scene / "labels" / "view_000.png", tmp_path / "outside.png")
    _edit(scene, _set_frame(0, "label_path", "../outside.png"))
    out = tmp_path / "run"
    r = cli("fit", scene, "--out", out, "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet")
    assert_clean_error(r, "transforms.json", "'../outside.png' points outside the scene directory", "--allow-outside")
    assert not out.exists()
    assert cli("scene", "info", scene, "--allow-outside").exit_code == 0


def test_outside_paths_refused_by_refine(cli, scene, tmp_path):
    """An absolute mask_path: `refine` refuses the scene before creating its output."""
    _edit(scene, _set_frame(1, "mask_path", str(scene / "masks" / "view_001.png")))
    out = tmp_path / "refined"
    r = cli("refine", scene, "--out", out, "--preset", "micro", "--device", "cpu", "--quiet")
    assert_clean_error(r, "transforms.json", "points outside the scene directory", "--allow-outside")
    assert not out.exists()


# ----------------------------------------------------------------------------- importers
def _facescape(tiny_scene: Path, dst: Path) -> Path:
    """A FaceScape-style params.json + {i}.png built from the tiny scene's cameras (OpenCV K: cx - 0.5)."""
    from labelsplat.scene import load_scene

    sc = load_scene(tiny_scene)
    dst.mkdir(parents=True)
    params = {}
    for i, f in enumerate(sc.frames):
        c = f.camera
        params[f"{i}_K"] = [[c.fx, 0, c.cx - 0.5], [0, c.fy, c.cy - 0.5], [0, 0, 1]]
        params[f"{i}_Rt"] = c.w2c_opencv[:3].tolist()
        params[f"{i}_distortion"] = [0.0] * 5
        params[f"{i}_width"], params[f"{i}_height"] = c.width, c.height
        params[f"{i}_valid"] = True
        shutil.copy(sc.path(f.file_path), dst / f"{i}.png")
    (dst / "params.json").write_text(json.dumps(params))
    return dst / "params.json"


def _jedit(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


FACESCAPE_CASES = {
    "missing_key": (lambda p: _jedit(p, lambda d: d.pop("2_Rt")), "missing key '2_Rt'"),
    "wrong_type": (lambda p: _jedit(p, lambda d: d.__setitem__("1_K", "fx fy cx cy")), "'1_K'"),
    "infinite": (lambda p: _jedit(p, lambda d: d["0_Rt"][0].__setitem__(3, 1e999)), "non-finite number Infinity"),
    "singular": (lambda p: _jedit(p, lambda d: d.__setitem__("0_Rt", [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]])), "'0_Rt'"),
    "zero_frames": (lambda p: _jedit(p, lambda d: [d.__setitem__(k, False) for k in list(d) if k.endswith("_valid")]),
                    "no usable cameras"),
    "no_cameras": (lambda p: p.write_text("{}"), "no camera keys"),
    "not_json": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage"), "cannot read the file"),
    "missing_image": (lambda p: (p.parent / "3.png").unlink(), "no image for 1 valid view(s) ['3']"),
}


@pytest.mark.parametrize("case", sorted(FACESCAPE_CASES))
def test_import_facescape(cli, tiny_scene, tmp_path, case):
    """`scene import --format facescape` on a broken params.json: refused naming the file; no OUT."""
    params = _facescape(tiny_scene, tmp_path / "fs")
    breaker, needle = FACESCAPE_CASES[case]
    breaker(params)
    out = tmp_path / "out"
    r = cli("scene", "import", "--format", "facescape", params, "--out", out)
    name = "fs" if case == "missing_image" else "params.json"
    assert_clean_error(r, name, needle, fix=False)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_import_facescape_ok(cli, tiny_scene, tmp_path):
    """The reference for the cases above: the unbroken params.json imports."""
    params = _facescape(tiny_scene, tmp_path / "fs")
    r = cli("scene", "import", "--format", "facescape", params, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output


def _colmap(tiny_scene: Path, dst: Path) -> Path:
    from labelsplat.scene import load_scene
    from labelsplat.scene.importers.colmap import rotation_to_qvec

    sc = load_scene(tiny_scene)
    (dst / "sparse").mkdir(parents=True)
    (dst / "images").mkdir()
    cams, imgs = [], []
    for i, f in enumerate(sc.frames, 1):
        c = f.camera
        cams.append(f"{i} PINHOLE {c.width} {c.height} {c.fx!r} {c.fy!r} {c.cx!r} {c.cy!r}")
        w2c = c.w2c_opencv
        q = rotation_to_qvec(w2c[:3, :3])
        imgs.append(" ".join(map(str, [i, *q.tolist(), *w2c[:3, 3].tolist(), i, f"{f.name}.png"])))
        imgs.append("")
        shutil.copy(sc.path(f.file_path), dst / "images" / f"{f.name}.png")
    (dst / "sparse" / "cameras.txt").write_text("\n".join(cams) + "\n")
    (dst / "sparse" / "images.txt").write_text("\n".join(imgs) + "\n")
    return dst / "sparse"


COLMAP_CASES = {
    "missing_cameras": (lambda m: (m / "cameras.txt").unlink(), "sparse", "no cameras"),
    "malformed_line": (lambda m: (m / "images.txt").write_text("1 0.5 0.5\n\n"), "images.txt", "line 1"),
    "wrong_type": (lambda m: (m / "cameras.txt").write_text("1 PINHOLE 48 48 a b c d\n"), "cameras.txt", "must be numbers"),
    "zero_quaternion": (lambda m: (m / "images.txt").write_text(
        "\n".join(["1 0 0 0 0 0 0 5 1 view_000.png", ""]) + "\n"), "images.txt", "zero quaternion"),
    "nan_pose": (lambda m: (m / "images.txt").write_text("1 nan 0 0 0 0 0 5 1 view_000.png\n\n"), "images.txt", "NaN"),
    "duplicate_camera": (lambda m: (m / "cameras.txt").write_text(((m / "cameras.txt").read_text().splitlines()[0] + "\n") * 2),
                         "cameras.txt", "duplicate CAMERA_ID 1"),
    "zero_images": (lambda m: (m / "images.txt").write_text("# nothing\n"), "images.txt", "no images"),
    "unknown_model": (lambda m: (m / "cameras.txt").write_text("1 FISHEYE_X 48 48 1 2 3\n"), "cameras.txt", "FISHEYE_X"),
}


@pytest.mark.parametrize("case", sorted(COLMAP_CASES))
def test_import_colmap(cli, tiny_scene, tmp_path, case):
    """`scene import --format colmap` on a broken text model: refused naming the file; no OUT."""
    model = _colmap(tiny_scene, tmp_path / "cap")
    breaker, name, needle = COLMAP_CASES[case]
    breaker(model)
    out = tmp_path / "out"
    r = cli("scene", "import", "--format", "colmap", model, "--images", tmp_path / "cap" / "images", "--out", out)
    assert_clean_error(r, name, needle, fix=False)
    assert not out.exists()


def test_import_colmap_ok(cli, tiny_scene, tmp_path):
    model = _colmap(tiny_scene, tmp_path / "cap")
    r = cli("scene", "import", "--format", "colmap", model, "--images", tmp_path / "cap" / "images", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("case", ["missing_key", "wrong_type"])
def test_import_nersemble(cli, tmp_path, case):
    """NeRSemble camera_params.json without world_2_cam / with a string for it: refused naming the file."""
    p = tmp_path / "camera_params.json"
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / "cam_1.png")
    doc = {"intrinsics": [[10, 0, 4], [0, 10, 4], [0, 0, 1]]}
    if case == "wrong_type":
        doc["world_2_cam"] = "identity"
    p.write_text(json.dumps(doc))
    out = tmp_path / "out"
    r = cli("scene", "import", "--format", "nersemble", p, "--images", tmp_path / "imgs", "--out", out)
    assert_clean_error(r, "camera_params.json", "world_2_cam", fix=False)
    assert not out.exists()


# ----------------------------------------------------------------------------- outputs
def test_fit_out_is_a_file(cli, scene, tmp_path):
    out = tmp_path / "run"
    out.write_text("precious")
    r = cli("fit", scene, "--out", out, "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet")
    assert_clean_error(r, str(out), "not a directory", fix=False)
    assert out.read_text() == "precious"


def test_out_under_a_file(cli, scene, tmp_path):
    """An output path below a file (as unwritable as it gets when running as root): refused, nothing written."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    r = cli("fit", scene, "--out", blocker / "run", "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet")
    assert_clean_error(r, "blocker", "is a file")
    assert blocker.read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: file permissions do not stop root (test_out_under_a_file covers it)")
def test_out_read_only(cli, scene, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = cli("synth", "--out", ro / "data", "--identities", "1", "--views", "2", "--resolution", "32")
        assert_clean_error(r, "ro", fix=False)
    finally:
        ro.chmod(0o755)


def test_refine_out_holds_a_dataset(cli, scene, tmp_path):
    """refine into an existing output (a dataset) without --resume/--overwrite: refused, untouched."""
    out = tmp_path / "refined"
    (out / "dataset" / "labels").mkdir(parents=True)
    (out / "dataset" / "manifest.json").write_text('{"views": []}')
    before = snapshot(out)
    r = cli("refine", scene, "--out", out, "--preset", "micro", "--device", "cpu", "--quiet")
    assert_clean_error(r, "refined", "already exists", "--overwrite")
    assert snapshot(out) == before


def test_synth_out_exists(cli, tiny_scene, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(tiny_scene, out / "head_000")
    before = snapshot(out)
    r = cli("synth", "--out", out, "--identities", "1", "--views", "2", "--resolution", "32")
    assert_clean_error(r, "head_000", "already exists", "--overwrite")
    assert snapshot(out) == before


def test_import_out_is_a_file(cli, tiny_scene, tmp_path):
    params = _facescape(tiny_scene, tmp_path / "fs")
    out = tmp_path / "out"
    out.write_text("keep")
    r = cli("scene", "import", "--format", "facescape", params, "--out", out)
    assert_clean_error(r, "out", fix=False)
    assert out.read_text() == "keep"


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def fitted(tiny_scene, tmp_path_factory):
    """A finished micro fit of the tiny scene (read-only: copy it)."""
    from labelsplat.config import fit_preset
    from labelsplat.splat import fit

    out = tmp_path_factory.mktemp("rel_fit") / "run"
    fit(tiny_scene, out, fit_preset("micro", steps=30), device="cpu")  # ckpt/step_000020.pt + checkpoint.pt
    return out


def _resume(cli, scene, run):
    return cli("fit", scene, "--out", run, "--resume", "--device", "cpu", "--quiet")


def test_checkpoint_other_version(cli, tiny_scene, fitted, tmp_path):
    import torch

    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    for p in [run / "checkpoint.pt", *sorted((run / "ckpt").glob("*.pt"))]:
        ck = torch.load(p, weights_only=True)
        ck["version"] = 999
        torch.save(ck, p)
    before = snapshot(run)
    r = _resume(cli, tiny_scene, run)
    assert_clean_error(r, "checkpoint.pt", "checkpoint version 999 is not supported")
    assert snapshot(run) == before


def test_checkpoint_other_class_count(cli, tiny_scene, fitted, tmp_path):
    """A run fitted with 19 classes resumed on the scene relabelled in an 11-class scheme: refused."""
    import torch

    from labelsplat.io import read_label, write_png

    scene = tmp_path / "scene"
    shutil.copytree(tiny_scene, scene)
    _edit(scene, lambda d: d.__setitem__("label_scheme", "lapa11"))
    for sub in ("labels", "gt_labels"):
        for p in (scene / sub).glob("*.png"):
            lbl = read_label(p)
            write_png(p, np.where(lbl == 255, 255, lbl % 11).astype(np.uint8))
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    (run / "checkpoint.pt").unlink()  # resume from the step checkpoint
    before = snapshot(run)
    r = _resume(cli, scene, run)
    out = assert_clean_error(r, "run", "19 classes", fix=False)
    assert "11" in out
    assert snapshot(run) == before
    assert torch.load(sorted((run / "ckpt").glob("*.pt"))[0], weights_only=True)["version"]


def test_checkpoint_corrupt(cli, tiny_scene, fitted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    p = run / "checkpoint.pt"
    p.write_bytes(p.read_bytes()[:1000])
    r = _resume(cli, tiny_scene, run)
    assert_clean_error(r, "checkpoint.pt", "cannot read the checkpoint")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('LABELSPLAT_EVIL_MARKER', '/nonexistent/x')}",))


def _evil_file(path: Path, marker: Path) -> Path:
    """A pickle that would run a shell command when unpickled without weights_only."""
    import torch

    os.environ["LABELSPLAT_EVIL_MARKER"] = str(marker)
    try:
        torch.save({"state": _Evil()}, path)
    finally:
        del os.environ["LABELSPLAT_EVIL_MARKER"]
    return path


def test_checkpoint_pickle_payload_not_executed(cli, tiny_scene, fitted, tmp_path):
    """A checkpoint carrying code: refused by weights_only=True, the code never runs."""
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    marker = tmp_path / "pwned"
    _evil_file(run / "checkpoint.pt", marker)
    r = _resume(cli, tiny_scene, run)
    out = assert_clean_error(r, "checkpoint.pt", "cannot read the checkpoint", "refused")
    assert "weights_only" not in out  # torch's own advice (load with weights_only=False) is not passed on
    assert not marker.exists()


def test_parse_weights_pickle_payload_not_executed(cli, scene, tmp_path):
    marker = tmp_path / "pwned"
    w = _evil_file(tmp_path / "model.pth", marker)
    before = snapshot(scene)
    r = cli("parse", scene, "--weights", w, "--device", "cpu")
    out = assert_clean_error(r, "model.pth", "cannot load the weights", "refused")
    assert "weights_only" not in out
    assert not marker.exists()
    assert snapshot(scene) == before


def test_parse_weights_not_a_checkpoint(cli, scene, tmp_path):
    w = tmp_path / "model.pth"
    w.write_text("this is not a state dict")
    before = snapshot(scene)
    r = cli("parse", scene, "--weights", w, "--device", "cpu")
    assert_clean_error(r, "model.pth", "cannot load the weights")
    assert snapshot(scene) == before


def test_parse_weights_other_class_count(cli, scene, tmp_path):
    """An 11-class state dict used as the default 19-class scheme: refused, scene untouched."""
    import torch

    w = tmp_path / "model.pth"
    torch.save({"conv_out.conv_out.weight": torch.zeros(11, 64, 1, 1)}, w)
    before = snapshot(scene)
    r = cli("parse", scene, "--weights", w, "--device", "cpu")
    out = assert_clean_error(r, "model.pth", "11", fix=False)
    assert "19" in out
    assert snapshot(scene) == before


@pytest.fixture(scope="module")
def dataset_dir(tiny_scene, tmp_path_factory):
    from labelsplat.cli import main

    out = tmp_path_factory.mktemp("rel_ds") / "ds"
    assert main(["dataset", "from-scenes", str(tiny_scene), "--out", str(out)]) == 0
    return out


def test_finetune_init_not_weights(cli, dataset_dir, tmp_path):
    init = tmp_path / "init.pth"
    init.write_bytes(b"PK\x03\x04 truncated zip")
    out = tmp_path / "ft.pth"
    r = cli("finetune", "--init", init, "--data", dataset_dir, "--out", out, "--iters", "2", "--batch-size", "2",
            "--input-size", "64", "--device", "cpu")
    assert_clean_error(r, "init.pth", fix=False)
    assert not out.exists() and not list(tmp_path.glob("ft.pth*"))


def test_finetune_init_other_class_count(cli, dataset_dir, tmp_path):
    import torch

    init = tmp_path / "init.pth"
    torch.save({"conv_out.conv_out.weight": torch.zeros(11, 64, 1, 1)}, init)
    out = tmp_path / "ft.pth"
    r = cli("finetune", "--init", init, "--data", dataset_dir, "--out", out, "--iters", "2", "--batch-size", "2",
            "--input-size", "64", "--device", "cpu", "--scheme", "celebamask19-zll")
    assert_clean_error(r, "init.pth", "11", fix=False)
    assert not out.exists() and not list(tmp_path.glob("ft.pth*"))


# ----------------------------------------------------------------------------- interrupted runs' leftovers
def test_leftover_partial_dir_removed(cli, tmp_path):
    """A `.head_000.<pid>-xxx.partial` folder from a killed synth: the next run removes it and says so."""
    out = tmp_path / "data"
    out.mkdir()
    stale = out / f".head_000.{_dead_pid()}-abc123.partial"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "view_000.png").write_bytes(b"half")
    r = cli("synth", "--out", out, "--identities", "1", "--views", "2", "--resolution", "32")
    assert r.exit_code == 0, r.output
    assert "removed 1 temporary file(s) left by an interrupted run" in r.output
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == ["head_000"]


def test_leftover_tmp_file_removed_on_resume(cli, tiny_scene, fitted, tmp_path):
    """A half-written checkpoint temp file and a cut log line in a run: `fit --resume` removes them (and says so)."""
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    (run / "checkpoint.pt").unlink()
    (run / "run.json").unlink()
    stale = run / "ckpt" / f".step_000030.pt.{_dead_pid()}-x1y2z3.tmp"
    stale.write_bytes(b"half a checkpoint")
    with open(run / "train_log.jsonl", "a") as fh:
        fh.write('{"step": 25, "loss": 0.')  # a log line cut by the kill
    r = _resume(cli, tiny_scene, run)
    assert r.exit_code == 0, r.output
    assert "left by an interrupted run" in r.output
    assert not stale.exists()
    steps = [json.loads(x)["step"] for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] >= 25


def test_live_temp_files_are_kept(tmp_path):
    """Temporaries of a process that still runs are never touched (concurrent writers, Ray)."""
    from labelsplat.io import find_leftovers

    live = tmp_path / f".x.{os.getppid()}-abc.tmp"
    live.write_text("in progress")
    dead = tmp_path / f".x.{_dead_pid()}-abc.tmp"
    dead.write_text("left over")
    assert find_leftovers(tmp_path) == [dead]


# ----------------------------------------------------------------------------- --debug
def test_debug_shows_traceback(cli, scene):
    _edit(scene, lambda d: d.__setitem__("frames", []))
    r = cli("scene", "info", scene, "--debug")
    assert r.exit_code == 2
    assert "Traceback" in r.output and "zero frames" in r.output
    r = cli("scene", "info", scene)
    assert "Traceback" not in r.output
