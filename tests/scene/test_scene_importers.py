"""Importers on small fixtures written here: round trips, pixel conventions, undistortion, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from scene_fixtures import (
    HEAD,
    make_rig,
    random_image,
    save,
    write_colmap,
    write_colmap_bin,
    write_facescape,
    write_labels,
    write_nersemble,
)

from labelsplat.errors import LabelsplatError
from labelsplat.io import read_label, read_rgb
from labelsplat.scene import import_scene, load_scene, validate_scene, yaw_pitch
from labelsplat.scene.distortion import Distortion, undistort_image, undistort_label

IDENTITY_HEAD = {"center": [0, 0, 0], "up": [0, 1, 0], "forward": [0, 0, 1]}


def _same_cameras(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(y.c2w, x.c2w, atol=1e-9)
        np.testing.assert_allclose(y.K, x.K, atol=1e-9)
        assert (y.width, y.height) == (x.width, x.height)


# ----------------------------------------------------------------------------- round trips
def test_facescape_round_trip(tmp_path):
    cams = make_rig()
    params = write_facescape(tmp_path / "fs", cams, ext=".png", invalid={3})
    names = [str(i) for i in range(len(cams))]
    write_labels(tmp_path / "labels", names, cams)
    scene = import_scene("facescape", params, None, tmp_path / "out", labels_dir=tmp_path / "labels")
    keep = [i for i in range(len(cams)) if i != 3]
    back = load_scene(tmp_path / "out")
    assert [f.name for f in back.frames] == [names[i] for i in keep]
    _same_cameras([cams[i] for i in keep], back.cameras)
    assert back.extra["import"]["skipped"] == ["3 (marked invalid)"]
    assert any("skipped 1 view" in n for n in back.extra["import"]["notes"])
    f0 = back.frames[0]
    assert f0.file_path == "images/0.png" and f0.label_path == "labels/0.png"
    assert (tmp_path / "out" / f0.file_path).read_bytes() == (tmp_path / "fs" / "0.png").read_bytes()
    np.testing.assert_array_equal(read_label(back.path(f0.label_path)), read_label(tmp_path / "labels" / "0.png"))
    assert "distortion_removed" not in f0.extra  # zero distortion: copied unchanged
    # the head frame was estimated from this symmetric rig (view 3 dropped keeps it close)
    assert np.degrees(np.arccos(back.head_frame.forward @ HEAD.forward)) < 5
    assert validate_scene(back) == []
    assert scene.root == tmp_path / "out"


def test_facescape_flat_k_jpg_and_link(tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(-10, 10))
    params = write_facescape(tmp_path / "fs", cams, flat_k=True, ext=".jpg")
    import_scene("facescape", params, tmp_path / "fs", tmp_path / "out", head_frame=HEAD.to_dict(), link=True)
    back = load_scene(tmp_path / "out")
    _same_cameras(cams, back.cameras)
    src, dst = tmp_path / "fs" / "2.jpg", tmp_path / "out" / "images" / "2.jpg"
    assert os.stat(src).st_ino == os.stat(dst).st_ino  # hard link
    np.testing.assert_allclose(back.head_frame.center, HEAD.center)


def test_facescape_4x4_k(tmp_path):
    """FaceScape's documentation calls K a 4x4 matrix: its top-left 3x3 block is used."""
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0,))
    params = write_facescape(tmp_path / "fs", cams, ext=".png")
    data = json.loads(params.read_text())
    for i in range(len(cams)):
        k4 = np.eye(4)
        k4[:3, :3] = data[f"{i}_K"]
        data[f"{i}_K"] = k4.tolist()
    params.write_text(json.dumps(data))
    import_scene("facescape", params, None, tmp_path / "out")
    _same_cameras(cams, load_scene(tmp_path / "out").cameras)


def test_colmap_round_trip_points_and_rigs(tmp_path):
    cams = make_rig(yaws=(-50, 0, 50), pitches=(-15, 15))
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(20, 3)) * 50 + HEAD.center
    rgb = rng.integers(0, 256, (20, 3))
    model = write_colmap(tmp_path / "sparse" / "0", cams, tmp_path / "images", points=(xyz, rgb))
    names = [f"img_{i:02d}" for i in range(1, len(cams) + 1)]
    write_labels(tmp_path / "labels", names, cams)
    import_scene("colmap", tmp_path, tmp_path / "images", tmp_path / "out", labels_dir=tmp_path / "labels")  # finds sparse/0
    back = load_scene(tmp_path / "out")
    assert [f.name for f in back.frames] == names
    _same_cameras(cams, back.cameras)
    assert any("rigs.txt" in n for n in back.extra["import"]["notes"])
    from plyfile import PlyData

    ply = PlyData.read(str(back.path(back.ply_file_path)))["vertex"]
    np.testing.assert_allclose(np.stack([ply["x"], ply["y"], ply["z"]], 1), xyz, rtol=1e-6)
    np.testing.assert_array_equal(np.stack([ply["red"], ply["green"], ply["blue"]], 1), rgb)
    assert model.is_dir()


def test_nersemble_round_trip_and_skips(tmp_path):
    cams = make_rig(yaws=(-60, -20, 20, 60), pitches=(0, 20))
    params = write_nersemble(tmp_path / "cal", cams, tmp_path / "images")
    serials = sorted(json.loads(params.read_text())["world_2_cam"])
    (tmp_path / "images" / f"cam_{serials[0]}.png").unlink()  # one camera has no image
    save(tmp_path / "images" / "notes_9.png", np.zeros((4, 4, 3), np.uint8))  # an unrelated image
    import_scene("nersemble", params.parent, tmp_path / "images", tmp_path / "out")
    back = load_scene(tmp_path / "out")
    assert [f.name for f in back.frames] == [f"cam_{s}" for s in serials[1:]]
    _same_cameras(cams[1:], back.cameras)
    assert back.extra["import"]["skipped"] == [f"{serials[0]} (no image)"]
    assert any("match no camera" in n for n in back.extra["import"]["notes"])


# ----------------------------------------------------------------------------- pixel conventions
D = 500.0  # camera distance; the camera sits on the head's +z (forward) axis looking back at it
FX, FY, CX_CV, CY_CV, W, H = 100.0, 100.0, 23.0, 19.0, 48, 40
RT_FRONTAL = [[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, D]]  # world -> OpenCV camera


def _frontal_source(tmp_path, fmt):
    """A hand-written frontal camera (no library code) in each format; image with a marker pixel."""
    img = np.full((H, W, 3), 40, np.uint8)
    img[19, 30] = (255, 0, 0)  # where OpenCV's projection of (35, 0, 0) lands: u=30, v=19
    src = tmp_path / "src"
    src.mkdir()
    if fmt == "facescape":
        save(src / "0.png", img)
        (src / "params.json").write_text(json.dumps({
            "0_K": [[FX, 0, CX_CV], [0, FY, CY_CV], [0, 0, 1]], "0_Rt": RT_FRONTAL,
            "0_distortion": [0, 0, 0, 0, 0], "0_width": W, "0_height": H, "0_valid": True,
        }))
        return src / "params.json", src
    if fmt == "nersemble":
        save(src / "cam_220700191.png", img)
        (src / "camera_params.json").write_text(json.dumps({
            "world_2_cam": {"220700191": RT_FRONTAL + [[0, 0, 0, 1]]},
            "intrinsics": [[FX, 0, CX_CV], [0, FY, CY_CV], [0, 0, 1]],
        }))
        return src / "camera_params.json", src
    # COLMAP: same camera; its principal point is already pixel-centre based (+0.5 written here)
    save(src / "a.png", img)
    (src / "cameras.txt").write_text(f"1 PINHOLE {W} {H} {FX} {FY} {CX_CV + 0.5} {CY_CV + 0.5}\n")
    (src / "images.txt").write_text(f"1 0 1 0 0 0 0 {D} 1 a.png\n\n")  # q = 180 deg about x
    return src, src


@pytest.mark.parametrize("fmt", ["facescape", "nersemble", "colmap"])
def test_frontal_camera_conventions(tmp_path, fmt):
    src, images = _frontal_source(tmp_path, fmt)
    # a second, identical-pose-free camera is not needed: the head frame is given
    import_scene(fmt, src, images, tmp_path / "out", head_frame=IDENTITY_HEAD)
    scene = load_scene(tmp_path / "out")
    cam = scene.frames[0].camera
    assert (cam.cx, cam.cy) == (CX_CV + 0.5, CY_CV + 0.5)
    yaw, pitch = yaw_pitch(cam.center, scene.head_frame)
    assert abs(yaw) < 1e-9 and abs(pitch) < 1e-9
    center, left, up = np.zeros(3), np.array([35.0, 0, 0]), np.array([0, 20.0, 0])
    uv, z = cam.project(np.stack([center, left, up, [0, 0, 60.0]]))
    assert np.all(z > 0)  # points in front of the face are in front of the camera
    assert uv[1, 0] > uv[0, 0]  # the subject's left lands on the image's right
    assert uv[2, 1] < uv[0, 1]  # up lands higher in the image
    # OpenCV puts (35, 0, 0) at u = FX*35/D + CX_CV = 30 exactly, i.e. the centre of pixel 30
    np.testing.assert_allclose(uv[1], [30.5, 19.5], atol=1e-9)
    imported = read_rgb(scene.path(scene.frames[0].file_path))
    assert tuple(imported[int(np.floor(uv[1, 1])), int(np.floor(uv[1, 0]))]) == (255, 0, 0)


# ----------------------------------------------------------------------------- undistortion in the importer
def test_facescape_distortion_removed(tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0, 15))
    dist = [-0.2, 0.03, 0.001, -0.002, 0.0]
    params = write_facescape(tmp_path / "fs", cams, dist=dist, ext=".png")
    write_labels(tmp_path / "labels", [str(i) for i in range(len(cams))], cams)
    (tmp_path / "masks").mkdir()
    for i, c in enumerate(cams):
        save(tmp_path / "masks" / f"{i}.png", np.full((c.height, c.width), 255, np.uint8))
    import_scene("facescape", params, None, tmp_path / "out", labels_dir=tmp_path / "labels",
                 masks_dir=tmp_path / "masks", link=True)
    back = load_scene(tmp_path / "out")
    _same_cameras(cams, back.cameras)  # same K after undistortion
    f = back.frames[1]
    assert f.extra["distortion_removed"] == {"model": "OPENCV", "params": dist}
    d = Distortion("OPENCV", tuple(dist))
    src_img = read_rgb(tmp_path / "fs" / "1.png")
    np.testing.assert_array_equal(read_rgb(back.path(f.file_path)), undistort_image(src_img, cams[1].K, d))
    src_lbl = read_label(tmp_path / "labels" / "1.png")
    out_lbl = read_label(back.path(f.label_path), 19)
    np.testing.assert_array_equal(out_lbl, undistort_label(src_lbl, cams[1].K, d))
    assert set(np.unique(out_lbl).tolist()) <= set(np.unique(src_lbl).tolist()) | {255}
    assert os.stat(back.path(f.file_path)).st_ino != os.stat(tmp_path / "fs" / "1.png").st_ino  # rewritten, not linked
    mask = np.asarray(Image.open(back.path(f.mask_path)))
    assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) <= {0, 255}


def test_colmap_simple_radial_recorded(tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0,))
    write_colmap(tmp_path / "m", cams, tmp_path / "images", model="SIMPLE_RADIAL", extra=(0.05,), rigs=False)
    for c in cams:  # SIMPLE_RADIAL has one focal length
        c.fy = c.fx
    import_scene("colmap", tmp_path / "m", tmp_path / "images", tmp_path / "out")
    back = load_scene(tmp_path / "out")
    _same_cameras(cams, back.cameras)
    assert all(f.extra["distortion_removed"] == {"model": "SIMPLE_RADIAL", "params": [0.05]} for f in back.frames)
    assert any("no points3D.txt" in n for n in back.extra["import"]["notes"]) and back.ply_file_path is None


# ----------------------------------------------------------------------------- bad input
def _fs(tmp_path, **kw):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0,))
    return write_facescape(tmp_path / "fs", cams, ext=".png", **kw), cams


@pytest.mark.parametrize(
    "edit, needle, where",
    [
        (lambda p: p.pop("1_Rt"), "missing key '1_Rt'", "params.json"),
        (lambda p: p.__setitem__("0_Rt", [[0.0] * 4] * 3), "singular", "params.json"),
        (lambda p: p.__setitem__("0_Rt", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 5.0]]), "reflection", "params.json"),
        (lambda p: p.__setitem__("2_K", [[50, 0, 20], [0, 50, 20]]), "shape", "params.json"),
        (lambda p: p.__setitem__("1_width", 100), "the image is 48x40 but params.json says 100x40", "1.png"),
        (lambda p: p.__setitem__("1_K", [[50, 0, 400], [0, 50, 20], [0, 0, 1]]), "principal point (400.5, 20.5) is outside", "params.json"),
        (lambda p: p.__setitem__("0_distortion", [0.1, 0.2]), "_distortion", "params.json"),
    ],
)
def test_facescape_bad_params(tmp_path, edit, needle, where):
    path, _ = _fs(tmp_path)
    params = json.loads(path.read_text())
    edit(params)
    path.write_text(json.dumps(params))
    with pytest.raises(LabelsplatError) as exc:
        import_scene("facescape", path, None, tmp_path / "out")
    assert needle in str(exc.value) and where in str(exc.value)
    assert not (tmp_path / "out").exists()  # nothing partial


def test_nan_in_params_rejected(tmp_path):
    path, _ = _fs(tmp_path)
    params = json.loads(path.read_text())
    params["0_Rt"][0][0] = "__nan__"
    path.write_text(json.dumps(params).replace('"__nan__"', "NaN"))
    with pytest.raises(LabelsplatError, match=r"params\.json.*non-finite number NaN"):
        import_scene("facescape", path, None, tmp_path / "out")
    # a NaN written as a string number slips past JSON and is caught by the matrix check
    params["0_Rt"][0][0] = "nan"
    path.write_text(json.dumps(params))
    with pytest.raises(LabelsplatError, match=r"params\.json.*'0_Rt' has NaN"):
        import_scene("facescape", path, None, tmp_path / "out")


def test_bad_labels_and_existing_output(tmp_path):
    path, cams = _fs(tmp_path)
    write_labels(tmp_path / "labels", ["0", "1", "2"], cams)
    lbl = read_label(tmp_path / "labels" / "1.png")
    lbl[5, 5] = 40
    save(tmp_path / "labels" / "1.png", lbl)
    with pytest.raises(LabelsplatError, match=r"1\.png.*outside the scheme"):
        import_scene("facescape", path, None, tmp_path / "out", labels_dir=tmp_path / "labels")
    (tmp_path / "labels" / "1.png").unlink()
    with pytest.raises(LabelsplatError, match="no label PNG for 1 of 3"):
        import_scene("facescape", path, None, tmp_path / "out", labels_dir=tmp_path / "labels")
    with pytest.raises(LabelsplatError, match="unknown label scheme"):
        import_scene("facescape", path, None, tmp_path / "out", label_scheme="nope")
    (tmp_path / "out").mkdir()
    import_scene("facescape", path, None, tmp_path / "out")  # an empty folder is fine
    with pytest.raises(LabelsplatError, match="already exists"):
        import_scene("facescape", path, None, tmp_path / "out")
    import_scene("facescape", path, None, tmp_path / "out", overwrite=True)


def test_colmap_bad_inputs(tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0,))
    m = write_colmap(tmp_path / "m", cams, tmp_path / "images")
    text = (m / "images.txt").read_text()
    (m / "images.txt").write_text(text.replace("img_02.png", "img_01.png"))
    with pytest.raises(LabelsplatError, match="duplicate frame names"):
        import_scene("colmap", m, tmp_path / "images", tmp_path / "out")
    (m / "images.txt").write_text(text)
    cams_txt = (m / "cameras.txt").read_text()
    (m / "cameras.txt").write_text(cams_txt.replace("PINHOLE", "OPENCV_FISHEYE", 1))
    with pytest.raises(LabelsplatError, match="OPENCV_FISHEYE is not supported") as exc:
        import_scene("colmap", m, tmp_path / "images", tmp_path / "out")
    assert "cameras.txt" in str(exc.value)
    (m / "cameras.txt").write_text(cams_txt)
    (tmp_path / "images" / "img_03.png").unlink()
    with pytest.raises(LabelsplatError, match="not in the images folder"):
        import_scene("colmap", m, tmp_path / "images", tmp_path / "out")
    b = tmp_path / "half"
    b.mkdir()
    (b / "cameras.bin").write_bytes(b"\0")
    with pytest.raises(LabelsplatError, match="not a COLMAP model folder"):
        import_scene("colmap", b, tmp_path / "images", tmp_path / "out")


def test_colmap_binary_matches_text(tmp_path):
    cams = make_rig(yaws=(-50, 0, 50), pitches=(-15, 15))
    for c in cams:
        c.fy = c.fx
    rng = np.random.default_rng(4)
    pts = (rng.normal(size=(9, 3)) * 40 + HEAD.center, rng.integers(0, 256, (9, 3)))
    write_colmap(tmp_path / "txt", cams, tmp_path / "images", model="RADIAL", extra=(0.03, -0.01), points=pts)
    write_colmap_bin(tmp_path / "bin", cams, tmp_path / "images", model="RADIAL", extra=(0.03, -0.01), points=pts)
    import_scene("colmap", tmp_path / "txt", tmp_path / "images", tmp_path / "out_txt", head_frame=HEAD.to_dict())
    import_scene("colmap", tmp_path / "bin", tmp_path / "images", tmp_path / "out_bin", head_frame=HEAD.to_dict())
    a, b = load_scene(tmp_path / "out_txt"), load_scene(tmp_path / "out_bin")
    _same_cameras(cams, b.cameras)
    _same_cameras(a.cameras, b.cameras)
    assert [f.extra["distortion_removed"] for f in a.frames] == [f.extra["distortion_removed"] for f in b.frames]
    assert (tmp_path / "out_txt" / "points3D.ply").read_bytes() == (tmp_path / "out_bin" / "points3D.ply").read_bytes()
    assert "binary COLMAP model" in b.extra["import"]["notes"]
    # truncated images.bin and an unsupported model name the file
    data = (tmp_path / "bin" / "images.bin").read_bytes()
    (tmp_path / "bin" / "images.bin").write_bytes(data[:-7])
    with pytest.raises(LabelsplatError, match=r"images\.bin: truncated"):
        import_scene("colmap", tmp_path / "bin", tmp_path / "images", tmp_path / "o2")
    write_colmap_bin(tmp_path / "fish", cams, tmp_path / "images", model="OPENCV_FISHEYE", extra=(0.1, 0, 0, 0))
    with pytest.raises(LabelsplatError, match=r"cameras\.bin: record 0: camera model OPENCV_FISHEYE is not supported"):
        import_scene("colmap", tmp_path / "fish", tmp_path / "images", tmp_path / "o3")


def test_nersemble_bad_inputs(tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0,))
    params = write_nersemble(tmp_path / "cal", cams, tmp_path / "images")
    data = json.loads(params.read_text())
    del data["intrinsics"]
    params.write_text(json.dumps(data))
    with pytest.raises(LabelsplatError, match="missing key 'intrinsics'"):
        import_scene("nersemble", params, tmp_path / "images", tmp_path / "out")
    other = tmp_path / "other"
    other.mkdir()
    save(other / "x.png", random_image(np.random.default_rng(0), cams[0]))
    params2 = write_nersemble(tmp_path / "cal2", cams, tmp_path / "images2")
    with pytest.raises(LabelsplatError, match="no image file name contains"):
        import_scene("nersemble", params2, other, tmp_path / "out")
    # images at half the calibrated resolution: the shared intrinsics no longer fit them
    small = tmp_path / "small"
    small.mkdir()
    for p in sorted((tmp_path / "images2").iterdir()):
        Image.open(p).resize((24, 20)).save(small / p.name)
    with pytest.raises(LabelsplatError, match="far from the centre of the 24x20 image") as exc:
        import_scene("nersemble", params2, small, tmp_path / "out")
    assert "camera_params.json" in str(exc.value)
    with pytest.raises(LabelsplatError, match="unknown import format"):
        import_scene("blender", params2, other, tmp_path / "out")


def test_colmap_text_without_point_lines_and_unregistered_images(tmp_path, cli):
    cams = make_rig(yaws=(-60, -30, 0, 30, 60, 75), pitches=(0, 15))  # 12 views
    m = write_colmap(tmp_path / "m", cams, tmp_path / "images", rigs=False)
    lines = (m / "images.txt").read_text().splitlines()
    kept = [ln for ln in lines if ln.startswith("#") or "img_" in ln]  # every POINTS2D line removed
    (m / "images.txt").write_text("\n".join(["# Number of images: 12, mean observations per image: 0", *kept]) + "\n")
    save(tmp_path / "images" / "extra.png", np.zeros((40, 48, 3), np.uint8))  # in the folder, not registered
    r = cli("scene", "import", "--format", "colmap", m, "--images", tmp_path / "images", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    back = load_scene(tmp_path / "out")
    assert len(back.frames) == 12
    _same_cameras(cams, back.cameras)
    assert back.extra["import"]["skipped"] == ["extra.png (in the images folder but not in the COLMAP model: not registered)"]
    assert "skipped: extra.png" in r.output
    # a header that disagrees with the lines read: a truncated file
    (m / "images.txt").write_text("\n".join(["# Number of images: 13", *kept]) + "\n")
    with pytest.raises(LabelsplatError, match="header says 13 images but 12"):
        import_scene("colmap", m, tmp_path / "images", tmp_path / "out2")


def test_colour_coded_labels_decoded_by_the_scheme_palette(tmp_path, cli):
    """scene import with colour-coded label maps (RGB, and a palette-mode PNG with the scheme's colours):
    decoded by colour into class-id PNGs; a colour outside the palette is refused naming file and colour."""
    from labelsplat.schemes import colorize, get_scheme

    path, cams = _fs(tmp_path)
    write_labels(tmp_path / "ids", ["0", "1", "2"], cams)
    ids = {n: read_label(tmp_path / "ids" / f"{n}.png") for n in ("0", "1", "2")}
    rgb = {n: colorize(a, "celebamask19-zll") for n, a in ids.items()}
    save(tmp_path / "labels" / "0.png", rgb["0"])  # RGB
    pal = Image.fromarray(ids["1"], mode="L").convert("P")  # palette mode, the scheme's colours
    colours = np.zeros((256, 3), np.uint8)
    colours[: 19] = get_scheme("celebamask19-zll").palette_array()
    colours[255] = 255
    pal.putpalette(colours.reshape(-1).tolist())
    pal.save(tmp_path / "labels" / "1.png")
    save(tmp_path / "labels" / "2.png", ids["2"])  # class ids, copied as they are
    r = cli("scene", "import", "--format", "facescape", path, "--labels", tmp_path / "labels", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "2 colour-coded label map(s) decoded by the celebamask19-zll palette" in r.output
    for n in ("0", "1", "2"):
        with Image.open(tmp_path / "out" / "labels" / f"{n}.png") as img:
            assert img.mode == "L"
        np.testing.assert_array_equal(read_label(tmp_path / "out" / "labels" / f"{n}.png"), ids[n])
    bad = rgb["0"].copy()
    bad[3, 4] = (1, 2, 3)
    save(tmp_path / "labels" / "0.png", bad)
    r = cli("scene", "import", "--format", "facescape", path, "--labels", tmp_path / "labels", "--out", tmp_path / "o2")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "colour (1, 2, 3)" in r.output and "0.png" in r.output, r.output
    assert not (tmp_path / "o2").exists()


def test_import_into_a_folder_left_locked_by_a_killed_import(tmp_path, cli):
    """A killed import leaves its output holding only a stale lock: the rerun takes it over with a note."""
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path, _ = _fs(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".labelsplat-lock.json").write_text(json.dumps(
        {"pid": gone.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z"}))
    r = cli("scene", "import", "--format", "facescape", path, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert f"reclaimed the lock of {tmp_path / 'out'}" in " ".join(r.output.split())
    assert not (tmp_path / "out" / ".labelsplat-lock.json").exists() and (tmp_path / "out" / "transforms.json").is_file()
