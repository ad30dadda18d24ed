"""Nothing lost, nothing written outside the output: overwrite guards, path-safe frame names,
resume that checks its scene, failures after the fit, hostile files, silently-wrong inputs and
one writer per output. Every case drives the console entry point in-process and checks the exit
code, the one message naming the file, and what is (not) written or deleted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import assert_clean_error, snapshot

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FIT = ("--preset", "micro", "--device", "cpu", "--quiet")


def _user_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "NOTES.txt").write_text("the user's own file")
    return path


def _edit(scene: Path, fn) -> None:
    p = scene / "transforms.json"
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))


# ----------------------------------------------------------------------------- overwrite guards
@pytest.mark.parametrize("argv", [
    ("refine", "{scene}", "--out", "{out}", "--overwrite", *FIT),
    ("demo", "--out", "{out}"),
    ("demo", "--out", "{out}", "--overwrite"),
    ("synth", "--out", "{out}", "--identities", "1", "--views", "2", "--resolution", "32", "--overwrite"),
    ("labels", "convert", "{scene}/labels", "{out}", "--from", "celebamask19-zll", "--to", "lapa11", "--overwrite"),
], ids=["refine", "demo", "demo-overwrite", "synth", "labels-convert"])
def test_overwrite_refuses_a_folder_labelsplat_did_not_create(cli, scene, tmp_path, argv):
    """--overwrite (or none) on a folder holding the user's own files: refused, the folder untouched."""
    out = _user_dir(tmp_path / "mine")
    if argv[0] == "synth":
        shutil.move(out / "NOTES.txt", out / "head_000.txt")
        _user_dir(out / "head_000")  # synth writes OUT/head_000: that one is the user's
    before = snapshot(out)
    r = cli(*(a.format(scene=scene, out=out) for a in argv))
    assert_clean_error(r, "mine")
    assert snapshot(out) == before


def test_overwrite_never_removes_the_input(cli, scene):
    """refine S --out S --overwrite: refused before anything is removed."""
    before = snapshot(scene)
    r = cli("refine", scene, "--out", scene, "--overwrite", *FIT)
    assert_clean_error(r, str(scene), "input of this command")
    assert snapshot(scene) == before


@pytest.fixture
def weights(bisenet_weights):
    return bisenet_weights


@pytest.mark.usefixtures("one_torch_thread")
def test_parse_scene_refuses_to_replace_labels(cli, scene, weights):
    """parse SCENE on a scene that has labels: refused without --overwrite (scene untouched); with
    it, only labels/<stem>.png and the label_path keys change."""
    before = snapshot(scene)
    r = cli("parse", scene, "--weights", weights, "--input-size", "32", "--device", "cpu")
    assert_clean_error(r, "transforms.json", "already has labels for 6 of 6 frames", "--overwrite")
    assert snapshot(scene) == before
    r = cli("parse", scene, "--weights", weights, "--input-size", "32", "--device", "cpu", "--overwrite")
    assert r.exit_code == 0, r.output
    after = snapshot(scene)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed and all(k.startswith("labels/") or k == "transforms.json" for k in changed), changed
    assert set(after) - set(before) <= set()


# ----------------------------------------------------------------------------- frame names
@pytest.mark.parametrize("name, needle", [
    ("../../../X", "contains '/'"),
    ("/tmp/abs", "contains '/'"),
    ("..", "is not a file name"),
    ("a\\b", "contains '\\\\'"),
    ("tab\there", "contains '\\t'"),
    (".hidden", "starts with '.'"),
    ("x" * 201, "at most 200"),
], ids=["dotdot", "absolute", "parent", "backslash", "control", "hidden", "too-long"])
def test_frame_name_that_is_not_a_file_name_refused_at_load(cli, scene, tmp_path, name, needle):
    """A frame name becomes renders/*/<name>.png: a name that is not one file name is refused by
    `fit` when the scene is read, before any work; nothing is written anywhere."""
    _edit(scene, lambda d: d["frames"][1].__setitem__("name", name))
    out = tmp_path / "run"
    before = snapshot(tmp_path)
    r = cli("fit", scene, "--out", out, "--steps", "4", *FIT)
    assert_clean_error(r, "transforms.json", "frame 1: 'name'", needle)
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def refined(tiny_scene, tmp_path_factory):
    """A scene folder `scène 1` with a frame named `vue 1 é`, refined (micro): (scene, output). Read-only."""
    from labelsplat.cli import main

    root = tmp_path_factory.mktemp("rel_refined")
    scene = root / "scène 1"
    shutil.copytree(tiny_scene, scene)
    _edit(scene, lambda d: d["frames"][0].__setitem__("name", "vue 1 é"))
    out = root / "refined"
    assert main([str(a) for a in ("refine", scene, "--out", out, *FIT)]) == 0
    return scene, out


def test_non_ascii_scene_and_frame_names_work_end_to_end(refined):
    """`scène 1` / `vue 1 é`: refine writes the run's renders and a readable dataset."""
    from labelsplat.dataset.read import read_dataset

    _, out = refined
    assert (out / "scenes" / "scène 1" / "run" / "renders" / "rgb" / "vue 1 é.png").is_file()
    ds = read_dataset(out / "dataset")
    assert len(ds) > 0 and all(v.name.startswith("scène 1_") for v in ds.views)


# ----------------------------------------------------------------------------- resume checks its scene
def test_refine_resume_refuses_another_scene_of_the_same_name(cli, refined, tmp_path):
    """refine --resume with another scene of the same folder name (one label file changed): refused
    naming DONE.json and the file that differs; the output is untouched. The same scene is skipped."""
    scene0, out0 = refined
    scene, out = tmp_path / "scène 1", tmp_path / "refined"
    shutil.copytree(scene0, scene)
    shutil.copytree(out0, out)
    before = snapshot(out)
    lab = scene / "labels" / "view_002.png"
    from PIL import Image

    arr = np.asarray(Image.open(lab)).copy()
    arr[20:24, 20:24] = np.where(arr[20:24, 20:24] == 1, 2, 1)  # other label ids
    Image.fromarray(arr).save(lab)
    r = cli("refine", scene, "--out", out, "--resume", *FIT)
    assert_clean_error(r, "DONE.json", "another scene", "labels/view_002.png")
    assert snapshot(out) == before
    shutil.copy(scene0 / "labels" / "view_002.png", lab)
    r = cli("refine", scene, "--out", out, "--resume", *FIT)
    assert r.exit_code == 0 and "already done, skipped" in r.output, r.output


def test_fit_resume_refuses_another_scene_with_the_same_frame_names(cli, refined, tmp_path):
    """fit --resume on a scene with the same frame names but other cameras and label scheme: refused
    before any step, saying what differs; the run is untouched."""
    scene0, out0 = refined
    run = tmp_path / "run"
    shutil.copytree(out0 / "scenes" / "scène 1" / "run", run)
    (run / "checkpoint.pt").unlink()  # an interrupted fit: periodic checkpoints only
    scene = tmp_path / "other"
    shutil.copytree(scene0, scene)
    _edit(scene, lambda d: d["frames"][3]["transform_matrix"][0].__setitem__(3, 0.5))
    before = snapshot(run)
    r = cli("fit", scene, "--out", run, "--resume", "--device", "cpu", "--quiet")
    assert_clean_error(r, "the scene differs", "the cameras")
    assert snapshot(run) == before


# ----------------------------------------------------------------------------- failures after the fit
def _all_ignore(scene: Path) -> None:
    from PIL import Image

    for p in (scene / "labels").glob("*.png"):
        Image.fromarray(np.full((48, 48), 255, np.uint8)).save(p)


@pytest.mark.parametrize("command", ["fit", "refine"])
def test_labels_without_a_usable_pixel_refused_before_the_fit(cli, scene, tmp_path, command):
    """Every label pixel 255: refused when the views are read (no NaN after the fit), and nothing is
    left behind, so the rerun after fixing the labels is not blocked."""
    _all_ignore(scene)
    out = tmp_path / "out"
    r = cli(command, scene, "--out", out, "--steps", "4", *FIT)
    assert_clean_error(r, "transforms.json", "no label map has a usable pixel", "view_000.png")
    assert not out.exists()


@pytest.mark.parametrize("setting", ["lr_scale=nan", "sem_lr=inf", "lr_scale=0", "init_opacity=1.5"])
def test_non_finite_or_out_of_range_settings_refused_before_any_work(cli, scene, tmp_path, setting):
    out = tmp_path / "run"
    r = cli("fit", scene, "--out", out, "--steps", "4", "--fit-set", setting, *FIT)
    assert_clean_error(r, "invalid fit configuration", setting.split("=")[0], fix=False)
    assert not out.exists()


def test_refine_setting_nan_refused(cli, scene, tmp_path):
    r = cli("refine", scene, "--out", tmp_path / "out", "--trusted-yaw", "nan", *FIT)
    assert_clean_error(r, "trusted_yaw", fix=False)
    assert not (tmp_path / "out").exists()


class _Poison:
    """A fit callback that makes one parameter NaN after step ``at`` (as a diverging optimiser would)."""

    def __init__(self, at: int):
        self.at = at

    def on_setup(self, loop):
        self.loop = loop

    def on_step(self, stats):
        if stats.step == self.at:
            import torch

            with torch.no_grad():
                self.loop.state.model.params["means"][0, 0] = float("nan")

    def on_finish(self, loop):
        pass


def test_non_finite_parameters_stop_the_fit_with_a_resumable_checkpoint(cli, scene, tmp_path, monkeypatch):
    """A parameter turns NaN after step 7: the fit stops at the next check (step 10) naming the last
    good checkpoint (step 5), writes no run.json or PLY; `fit --resume` then completes the run."""
    import importlib

    import torch

    fit_mod = importlib.import_module("labelsplat.splat.fit")  # the module (labelsplat.splat.fit is also a function)
    real = fit_mod.default_callbacks
    monkeypatch.setattr(fit_mod, "default_callbacks", lambda progress: [*real(progress), _Poison(7)])
    run = tmp_path / "run"
    args = ("--steps", "12", "--fit-set", "checkpoint_every=5", "--fit-set", "log_every=5", *FIT)
    r = cli("fit", scene, "--out", run, *args)
    assert_clean_error(r, "parameters became NaN/infinite by step 10 (means", "step_000005.pt", "--resume")
    assert not (run / "run.json").exists() and not (run / "point_cloud.ply").exists()
    ck = torch.load(run / "ckpt" / "step_000005.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ck["model"]["params"].values())
    monkeypatch.setattr(fit_mod, "default_callbacks", real)
    r = cli("fit", scene, "--out", run, "--resume", "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["resumed_from_step"] == 5


def test_json_writer_refuses_nan(tmp_path):
    from labelsplat.errors import LabelsplatError
    from labelsplat.io import atomic_write_json

    with pytest.raises(LabelsplatError, match=r"x\.json: refusing to write a NaN or infinite value \(summary\.acc\[1\]\)"):
        atomic_write_json(tmp_path / "x.json", {"summary": {"acc": [1.0, np.float32("nan")]}})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- hostile files
def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` (signature, IHDR, empty IDAT, IEND): no pixels allocated."""
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_image_bomb_refused_from_its_header(cli, scene):
    """A PNG whose header claims 40000 x 40000: refused naming the file before decoding; with the
    limit raised (--max-image-pixels) the size check passes and the next check speaks."""
    (scene / "images" / "view_001.png").write_bytes(_png_header(40000, 40000))
    r = cli("scene", "info", scene)
    assert_clean_error(r, "view_001.png", "40000x40000 = 1600 megapixels, above the limit of 100 megapixels",
                       "--max-image-pixels")
    r = cli("scene", "info", scene, "--max-image-pixels", "2000000000")
    assert_clean_error(r, "view_001.png", "the image is 40000x40000 but its intrinsics say", fix=False)


def test_image_limit_from_the_environment(cli, scene, monkeypatch):
    monkeypatch.setenv("LABELSPLAT_MAX_IMAGE_PIXELS", "1000")
    r = cli("scene", "info", scene)
    assert_clean_error(r, "view_000.png", "above the limit of 0.001 megapixels")


@pytest.mark.timeout(60)
def test_fifo_and_device_refused(cli, scene):
    """transforms.json as a FIFO (reading would hang) and an image linked to /dev/zero (would read
    forever): refused naming the file, without reading it."""
    import os

    (scene / "images" / "view_002.png").unlink()
    (scene / "images" / "view_002.png").symlink_to("/dev/zero")
    assert_clean_error(cli("scene", "info", scene), "view_002.png", "refusing to read a device")
    tj = scene / "transforms.json"
    tj.unlink()
    os.mkfifo(tj)
    assert_clean_error(cli("scene", "info", scene), "transforms.json", "refusing to read a FIFO")


def test_json_too_deep_or_too_large_refused(cli, scene, monkeypatch):
    tj = scene / "transforms.json"
    good = tj.read_text()
    tj.write_text("[" * 200_000 + "]" * 200_000)  # Python's parser would hit its recursion limit
    assert_clean_error(cli("scene", "info", scene), "transforms.json", "nested more than 100 levels deep")
    tj.write_text('{"frames": [], "x": ' + "[" * 150 + "]" * 150 + "}")
    assert_clean_error(cli("scene", "info", scene), "transforms.json", "nested more than 100 levels deep")
    tj.write_text(good)
    monkeypatch.setattr("labelsplat.io.MAX_JSON_BYTES", 1024)
    assert_clean_error(cli("scene", "info", scene), "transforms.json", "above the limit of")


def test_checkpoint_without_meta_refused(cli, scene, tmp_path):
    import torch

    from labelsplat.splat.checkpoint import CKPT_FORMAT, CKPT_VERSION

    run = tmp_path / "run"
    (run / "ckpt").mkdir(parents=True)
    torch.save({"format": CKPT_FORMAT, "version": CKPT_VERSION, "model": {}}, run / "ckpt" / "step_000010.pt")
    before = snapshot(run)
    r = cli("fit", scene, "--out", run, "--resume", "--device", "cpu", "--quiet")
    assert_clean_error(r, "step_000010.pt", "the checkpoint lacks 'meta'")
    assert snapshot(run) == before


# ----------------------------------------------------------------------------- silently wrong
def _palette_png(path: Path, idx: np.ndarray, pal: np.ndarray) -> None:
    from PIL import Image

    img = Image.fromarray(idx.astype(np.uint8), mode="P")
    full = np.zeros((256, 3), np.uint8)
    full[: len(pal)] = pal
    img.putpalette(full.reshape(-1).tolist())
    img.save(path)


def test_colour_coded_labels_are_decoded_by_colour(cli, scene):
    """An RGB label map and a palette-mode one whose indices are not the class ids (shuffled palette)
    both read as the scheme's class ids; `scene info` accepts the scene."""
    from PIL import Image

    from labelsplat.io import read_label
    from labelsplat.schemes import colorize, get_scheme

    s = get_scheme("celebamask19-zll")
    ids1 = read_label(scene / "labels" / "view_001.png")
    Image.fromarray(colorize(ids1, s)).save(scene / "labels" / "view_001.png")
    ids2 = read_label(scene / "labels" / "view_002.png")
    perm = np.random.default_rng(0).permutation(19)
    pal = np.zeros((19, 3), np.uint8)
    pal[perm] = s.palette_array()  # index perm[c] has class c's colour
    _palette_png(scene / "labels" / "view_002.png", np.where(ids2 == 255, 0, perm[np.minimum(ids2, 18)]), pal)
    assert np.array_equal(read_label(scene / "labels" / "view_001.png", 19, palette=s.palette_array()), ids1)
    got = read_label(scene / "labels" / "view_002.png", 19, palette=s.palette_array())
    assert np.array_equal(got[ids2 != 255], ids2[ids2 != 255])
    r = cli("scene", "info", scene)
    assert r.exit_code == 0, r.output


def test_colour_outside_the_palette_refused(cli, scene):
    from PIL import Image

    from labelsplat.io import read_label
    from labelsplat.schemes import colorize

    rgb = colorize(read_label(scene / "labels" / "view_004.png"), "celebamask19-zll")
    rgb[5, 5] = (1, 2, 3)
    Image.fromarray(rgb).save(scene / "labels" / "view_004.png")
    r = cli("scene", "info", scene)
    assert_clean_error(r, "view_004.png", "colour (1, 2, 3) (1 pixels) is not in the label scheme's palette")


@pytest.mark.parametrize("top, ok", [(18, True), (42, False)])
def test_palette_png_of_other_colours_read_as_indices_only_if_valid(cli, scene, top, ok):
    """A palette-mode label whose palette holds no scheme colour: its indices are the ids when every
    one is a class, else refused."""
    idx = np.zeros((48, 48), np.uint8)
    idx[10:20, 10:20] = top
    pal = np.stack([np.arange(256) // 2 + 1, np.full(256, 77), np.full(256, 3)], 1).astype(np.uint8)  # no scheme colour
    _palette_png(scene / "labels" / "view_003.png", idx, pal)
    r = cli("scene", "info", scene)
    if ok:
        assert r.exit_code == 0, r.output
    else:
        assert_clean_error(r, "view_003.png", "label ids [42] are outside the scheme's 19 classes")


@pytest.mark.parametrize("case, needle", [
    ("sheared", "frame 2: the rotation part of transform_matrix is not orthonormal"),
    ("scaled", "frame 2: the rotation part of transform_matrix is not orthonormal"),
    ("reflection", "frame 2: the rotation part of transform_matrix is a reflection"),
    ("tiny_focal", "frame 2: fl_x=1e-06 with w=48 gives a field of view of 180 degrees"),
    ("long_focal", "frame 2: fl_y=1e+06 with h=48 gives a field of view of 0.00275 degrees"),
])
def test_implausible_cameras_refused(cli, scene, case, needle):
    def edit(d):
        fr = d["frames"][2]
        m = np.array(fr["transform_matrix"], float)
        if case == "sheared":
            m[:3, :3] = m[:3, :3] @ np.array([[1, 0.2, 0], [0, 1, 0], [0, 0, 1]])
        elif case == "scaled":
            m[:3, :3] *= 1.01
        elif case == "reflection":
            m[:3, 0] *= -1
        fr["transform_matrix"] = m.tolist()
        if case == "tiny_focal":
            fr.update({k: d.get(k, fr.get(k)) for k in ("fl_y", "cx", "cy", "w", "h")}, fl_x=1e-6)
        if case == "long_focal":
            fr.update({k: d.get(k, fr.get(k)) for k in ("fl_x", "cx", "cy", "w", "h")}, fl_y=1e6)

    _edit(scene, edit)
    assert_clean_error(cli("scene", "info", scene), "transforms.json", needle)


def _ply(scene: Path, pts: np.ndarray) -> None:
    from plyfile import PlyData, PlyElement

    v = np.zeros(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    v["x"], v["y"], v["z"] = pts.T
    PlyData([PlyElement.describe(v, "vertex")]).write(str(scene / "points.ply"))
    _edit(scene, lambda d: d.__setitem__("ply_file_path", "points.ply"))


def _head_cloud(scene: Path, n: int = 300) -> np.ndarray:
    d = json.loads((scene / "transforms.json").read_text())
    centre = np.asarray(d["head_frame"]["center"], float)
    dist = np.median([np.linalg.norm(np.array(f["transform_matrix"])[:3, 3] - centre) for f in d["frames"]])
    return centre + np.random.default_rng(0).normal(scale=0.05 * dist, size=(n, 3))


def test_point_cloud_outliers_and_non_finite_points_dropped_and_counted(cli, scene, tmp_path):
    pts = _head_cloud(scene)
    pts[0] = 1e30
    pts[1] = np.nan
    _ply(scene, pts)
    r = cli("fit", scene, "--out", tmp_path / "run", "--steps", "2", *FIT)
    assert r.exit_code == 0, r.output
    assert "dropped 1 point(s) with NaN/infinite coordinates and 1 far outlier(s)" in " ".join(r.output.split())
    notes = json.loads((tmp_path / "run" / "run.json").read_text())["notes"]
    assert any("far outlier" in n for n in notes)


def test_point_cloud_mostly_non_finite_refused(cli, scene, tmp_path):
    pts = _head_cloud(scene, 100)
    pts[:11] = np.inf
    _ply(scene, pts)
    r = cli("fit", scene, "--out", tmp_path / "run", "--steps", "2", *FIT)
    assert_clean_error(r, "points.ply", "11 of 100 points of the point cloud have NaN/infinite coordinates")
    assert not (tmp_path / "run").exists()


def test_one_view_refused_few_views_warned(cli, scene, tmp_path):
    _edit(scene, lambda d: d.__setitem__("frames", d["frames"][:3]))
    r = cli("fit", scene, "--out", tmp_path / "run3", "--steps", "2", *FIT)
    assert r.exit_code == 0, r.output
    assert "warning: only 3 views" in " ".join(r.output.split())
    _edit(scene, lambda d: d.__setitem__("frames", d["frames"][:1]))
    r = cli("fit", scene, "--out", tmp_path / "run1", "--steps", "2", *FIT)
    assert_clean_error(r, "transforms.json", "the scene has 1 view; a fit needs at least 2")
    assert not (tmp_path / "run1").exists()


# ----------------------------------------------------------------------------- one writer per output
def _lock(out: Path, pid: int, host: str | None = None) -> None:
    import socket

    out.mkdir(parents=True, exist_ok=True)
    (out / ".labelsplat-lock.json").write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00Z"}))


def test_second_writer_refused_naming_the_holder(cli, scene, tmp_path):
    """An output locked by a live process (here a sleeping child; or one on another host): refused
    with its pid and host, nothing removed or written."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for host, needle in ((None, f"pid {holder.pid} on host "), ("elsewhere", "on host elsewhere")):
            out = tmp_path / f"run_{host}"
            _lock(out, holder.pid, host)
            before = snapshot(out)
            r = cli("fit", scene, "--out", out, "--steps", "2", *FIT)
            assert_clean_error(r, "another labelsplat command is writing this output", needle)
            assert snapshot(out) == before
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_reclaimed_with_a_note(cli, scene, tmp_path):
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = tmp_path / "run"
    _lock(out, gone.pid)
    r = cli("fit", scene, "--out", out, "--steps", "2", *FIT)
    assert r.exit_code == 0, r.output
    assert f"reclaimed the lock of {out} left by a process that is gone (pid {gone.pid}" in " ".join(r.output.split())
    assert not (out / ".labelsplat-lock.json").exists()


# every command that writes an output directory holds its lock: built in a temporary sibling
# (synth, labels convert, dataset from-scenes: the final path is locked) or written in place (demo)
_LOCKED = {
    "synth": (("synth", "--out", "{out}", "--identities", "1", "--views", "2", "--resolution", "32"), "head_000"),
    "labels-convert": (("labels", "convert", "{scene}/labels", "{out}", "--from", "celebamask19-zll",
                        "--to", "lapa11"), ""),
    "dataset": (("dataset", "from-scenes", "{scene}", "--out", "{out}", "--labels", "noisy", "--no-crop"), ""),
    "demo": (("demo", "--out", "{out}"), ""),
}


@pytest.fixture
def live_pid():
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield holder.pid
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("name", sorted(_LOCKED))
def test_every_writer_refuses_a_locked_output(cli, scene, tmp_path, live_pid, name):
    """A lock held by a live process on the path a command writes: refused naming pid and host,
    before any work, nothing written."""
    argv, sub = _LOCKED[name]
    out = tmp_path / "out"
    _lock(out / sub if sub else out, live_pid)
    before = snapshot(tmp_path / "out")
    r = cli(*(a.format(scene=scene, out=out) for a in argv))
    assert_clean_error(r, "another labelsplat command is writing this output", f"pid {live_pid} on host ")
    assert snapshot(tmp_path / "out") == before
    assert not list(tmp_path.glob(".*partial")) and not list(out.glob(".*partial"))


@pytest.mark.parametrize("name", ["synth", "labels-convert"])
def test_atomic_build_reclaims_a_stale_lock_of_its_final_path(cli, scene, tmp_path, name):
    """A lock left in the final path by a killed build (its process gone): reclaimed with a note, the
    output built, no lock left."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    argv, sub = _LOCKED[name]
    out = tmp_path / "out"
    final = out / sub if sub else out
    _lock(final, gone.pid)
    r = cli(*(a.format(scene=scene, out=out) for a in argv))
    assert r.exit_code == 0, r.output
    assert f"reclaimed the lock of {final} left by a process that is gone (pid {gone.pid}" in " ".join(r.output.split())
    assert not (final / ".labelsplat-lock.json").exists()
    assert (final / ".labelsplat-run.json").is_file()


def test_atomic_dir_holds_the_final_paths_lock(tmp_path):
    """While a directory is built in its temporary sibling, the final path is locked: a second build
    (or any writer) is refused naming this process; a failed build leaves nothing behind."""
    import os

    from labelsplat.errors import LabelsplatError
    from labelsplat.io import atomic_dir, check_dir_lock, lock_holder

    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("a")
        assert lock_holder(final)["pid"] == os.getpid()
        check_dir_lock(final)  # this process's own lock does not refuse it
    assert (final / "a.txt").is_file() and lock_holder(final) is None
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "failed"):
        raise RuntimeError("boom")
    assert not (tmp_path / "failed").exists()
    _lock(tmp_path / "busy", os.getpid(), "elsewhere")
    with pytest.raises(LabelsplatError, match="on host elsewhere"), atomic_dir(tmp_path / "busy"):
        pass
    assert lock_holder(tmp_path / "busy")["host"] == "elsewhere"


def test_scene_fingerprint_hashes_each_file_once(scene, monkeypatch):
    """The refine check and the fit both fingerprint the scene: within one process each file is read
    once while it keeps its size and modification time; a changed file is hashed again."""
    import builtins

    import labelsplat.scene.fingerprint as fp
    from labelsplat.scene import load_scene

    opened: list[str] = []

    def counting_open(path, *a, **k):
        opened.append(str(path))
        return builtins.open(path, *a, **k)

    monkeypatch.setattr(fp, "_HASHES", {})
    monkeypatch.setattr(fp, "open", counting_open, raising=False)
    s = load_scene(scene)
    first = fp.scene_fingerprint(s)
    assert len(opened) == len(set(opened)) == len(first["files"]) > 0
    assert fp.scene_fingerprint(load_scene(scene)) == first and len(opened) == len(first["files"])
    rel = sorted(first["files"])[0]
    (scene / rel).write_bytes((scene / rel).read_bytes() + b"\0")
    changed = fp.scene_fingerprint(load_scene(scene))
    assert opened[-1].endswith(rel) and len(opened) == len(first["files"]) + 1
    assert changed["files"][rel] != first["files"][rel]


def test_own_small_files_read_safely(tmp_path):
    """The files labelsplat reads for itself (run marker, lock, DONE.json, training log) go through the
    safe readers: a FIFO is not opened (no hang), a huge or deeply nested one is not decoded."""
    import os

    from labelsplat.errors import LabelsplatError
    from labelsplat.io import lock_holder, read_jsonl
    from labelsplat.pipeline import _valid_done
    from labelsplat.rundir import MARKER, RunDir

    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / MARKER)
    os.mkfifo(out / "DONE.json")
    os.mkfifo(out / ".labelsplat-lock.json")
    rd = RunDir(out, "fit")
    assert rd.marker() is None and rd.origin() is None
    assert not _valid_done(out / "DONE.json")
    assert lock_holder(out) is None  # not a regular file: no lock
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1}\n' + "[" * 100_000 + "\n" + '{"step": 2')
    assert [rec for _, rec in read_jsonl(log)] == [{"step": 1}, None, None]
    os.mkfifo(tmp_path / "fifo.jsonl")
    with pytest.raises(LabelsplatError, match="FIFO"):
        read_jsonl(tmp_path / "fifo.jsonl")
