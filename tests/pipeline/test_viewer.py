"""labelsplat view: the render callback without a browser, the server over HTTP, the port check,
saved views, the edit session, a bare PLY."""

from __future__ import annotations

import socket
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.schemes import overlay
from labelsplat.splat.edits import Edit, gaussian_labels


@pytest.fixture(scope="module")
def run_dir(refined):
    return refined / "scenes" / "head_000" / "run"


@pytest.fixture(scope="module")
def src(run_dir):
    from labelsplat.viewer import open_source

    return open_source(run_dir, "cpu")


def _uint8(x):
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def test_render_callback_equals_render(src):
    from labelsplat.splat import render_cameras
    from labelsplat.viewer import ViewSettings, render_view

    cam = src.cameras[3]
    want = render_cameras(src.run, [cam])[0]
    np.testing.assert_array_equal(render_view(src.run, cam, ViewSettings("rgb")), _uint8(want["rgb"]))
    np.testing.assert_array_equal(render_view(src.run, cam, ViewSettings("overlay")),
                                  overlay(_uint8(want["rgb"]), want["labels"], src.run.label_scheme))
    hidden = render_view(src.run, cam, ViewSettings("labels", hidden=frozenset({"hair"})))
    assert hidden.shape == (cam.height, cam.width, 3)
    hair = np.array(src.scheme.palette[src.scheme.index("hair")], dtype=np.uint8)
    assert not np.all(hidden == hair, axis=-1).any()  # a hidden class is not drawn


def test_server_serves_the_page_and_the_port_check(src, tmp_path, cli, run_dir):
    pytest.importorskip("viser")
    from labelsplat.viewer.server import check_port, free_port, start_viewer

    port = free_port()
    viewer = start_viewer(src, host="127.0.0.1", port=port, save_dir=tmp_path / "views", log=lambda m: None)
    try:
        assert viewer.port == port
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20).read().decode("utf-8", "replace")
        assert "<html" in page.lower()
        with pytest.raises(LabelsplatError, match=f"port {port} .* already in use"):
            check_port("127.0.0.1", port)
    finally:
        viewer.stop()
    with socket.socket() as s:  # a port someone else holds: refused with a free one suggested
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = cli("view", run_dir, "--port", s.getsockname()[1])
        assert r.exit_code == 2 and "already in use" in r.output and "--port" in r.output


def test_cameras_save_view_and_presets(src, tmp_path):
    from labelsplat.viewer import camera_from_pose, default_save_dir, pose_of, save_view, yaw_camera
    from labelsplat.viewer.server import client_camera, set_client_camera

    cam = src.cameras[0]
    c2w, fov = pose_of(cam)
    back = camera_from_pose(c2w, fov, cam.width, cam.height)
    np.testing.assert_allclose(back.c2w, cam.c2w, atol=1e-9)
    np.testing.assert_allclose(back.K, cam.K, atol=1e-9)
    # a viser camera handle (duck-typed) set to a preset and read back
    handle = SimpleNamespace(image_width=cam.width, image_height=cam.height)
    front = yaw_camera(src, 0.0)
    set_client_camera(handle, front)
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(front.c2w_opencv[:3, :3]).as_quat()
    handle.wxyz, handle.position = (w, x, y, z), handle.position
    got = client_camera(handle, 4096)
    np.testing.assert_allclose(got.c2w_opencv[:3, 3], front.center, atol=1e-9)
    np.testing.assert_allclose(got.c2w_opencv[:3, :3], front.c2w_opencv[:3, :3], atol=1e-9)
    files = save_view(src.run, cam, tmp_path / "v")
    assert sorted(p.name for p in files) == ["view_001_labels.png", "view_001_labels_colour.png",
                                             "view_001_overlay.png", "view_001_rgb.png"]
    assert save_view(src.run, cam, tmp_path / "v")[0].name.startswith("view_002")
    d = default_save_dir(src.path)
    assert d.parent == src.path.resolve().parent and not d.exists()


def test_edit_session_undo_redo_and_save(src, tmp_path, run_dir):
    import json

    from labelsplat.viewer import EditSession

    session = EditSession(src)
    before = gaussian_labels(src.run.model).copy()
    hat = src.scheme.index("hat")
    try:
        n = session.assign(Edit("hat", "hair"))
        assert n == int((before == src.scheme.index("hair")).sum()) > 0
        assert (gaussian_labels(src.run.model) == hat).sum() >= n
        assert session.undo() and np.array_equal(gaussian_labels(src.run.model), before)
        assert session.redo() and (gaussian_labels(src.run.model) == hat).sum() >= n
        cam = src.cameras[0]
        mask = np.zeros((cam.height, cam.width), dtype=bool)
        mask[20:26, 28:36] = True
        ids = session.brush(cam, mask)
        assert ids
        session.assign(Edit("cloth", ids=ids))
        path = session.save(tmp_path / "edits.json")
        doc = json.loads(path.read_text())
        assert doc["source_run"] == session.fingerprint and len(doc["edits"]) == 2
    finally:
        while session.undo():
            pass
    assert np.array_equal(gaussian_labels(src.run.model), before)


def test_bare_ply_has_a_free_camera_only(run_dir):
    from labelsplat.viewer import ViewSettings, open_source, render_view, yaw_camera

    ply = open_source(run_dir / "point_cloud.ply", "cpu")
    assert ply.has_labels and ply.head is None and not ply.cameras
    with pytest.raises(LabelsplatError, match="bare PLY"):
        yaw_camera(ply, 45.0)
    from labelsplat.viewer import open_source as again

    run = again(run_dir, "cpu")
    img = render_view(ply.run, run.cameras[0], ViewSettings("labels"))
    np.testing.assert_array_equal(img, render_view(run.run, run.cameras[0], ViewSettings("labels")))


@pytest.mark.cuda
def test_render_callback_on_cuda(run_dir):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from labelsplat.viewer import ViewSettings, open_source, render_view

    cpu, gpu = open_source(run_dir, "cpu"), open_source(run_dir, "cuda")
    cam = cpu.cameras[0]
    a = render_view(cpu.run, cam, ViewSettings("rgb")).astype(int)
    b = render_view(gpu.run, cam, ViewSettings("rgb")).astype(int)
    assert np.abs(a - b).mean() < 2.0


def test_loopback_hosts():
    from labelsplat.viewer.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
