"""The MediaPipe landmark parser on a real photograph (scikit-image's astronaut, offline).

Runs only where the ``[mediapipe]`` extra is installed (its own environment: ``.ci/run``'s
second step); skipped in the main suite.
"""

from __future__ import annotations

import numpy as np
import pytest

mp = pytest.importorskip("mediapipe")

from labelsplat.io import read_label, write_png  # noqa: E402
from labelsplat.parsers import landmarks as lmk  # noqa: E402
from labelsplat.schemes import get_scheme  # noqa: E402

ZLL = get_scheme("celebamask19-zll")


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()  # 512x512 RGB, a near-frontal portrait (Eileen Collins), shipped with scikit-image


@pytest.fixture(scope="module")
def models():
    m = lmk._Models()
    yield m
    m.close()


@pytest.fixture(scope="module")
def astro_landmarks(astronaut, models):
    return lmk.detect_face_landmarks(astronaut, models=models)


@pytest.fixture(scope="module")
def astro_labels(astronaut, models):
    return lmk.landmark_labels(astronaut, models=models)


def _edges(poly, closed=True):
    n = len(poly)
    pairs = [(poly[k], poly[k + 1]) for k in range(n - 1)] + ([(poly[-1], poly[0])] if closed else [])
    return {frozenset(p) for p in pairs}


def _fm_edges(conn):
    return {frozenset(p) for p in conn}


def test_polygons_match_the_wheels_connection_sets():
    from mediapipe.python.solutions import face_mesh_connections as fmc

    assert _edges(lmk.FACE_OVAL) == _fm_edges(fmc.FACEMESH_FACE_OVAL)
    assert _edges(lmk.LEFT_EYE) == _fm_edges(fmc.FACEMESH_LEFT_EYE)
    assert _edges(lmk.RIGHT_EYE) == _fm_edges(fmc.FACEMESH_RIGHT_EYE)
    assert _edges(lmk.LEFT_IRIS) == _fm_edges(fmc.FACEMESH_LEFT_IRIS)
    assert _edges(lmk.RIGHT_IRIS) == _fm_edges(fmc.FACEMESH_RIGHT_IRIS)
    for chains, conn in ((lmk.LEFT_EYEBROW_CHAINS, fmc.FACEMESH_LEFT_EYEBROW),
                         (lmk.RIGHT_EYEBROW_CHAINS, fmc.FACEMESH_RIGHT_EYEBROW)):
        assert _edges(chains[0], False) | _edges(chains[1], False) == _fm_edges(conn)
    lips = [lmk.LIPS_UPPER_OUTER, lmk.LIPS_LOWER_OUTER, lmk.LIPS_UPPER_INNER, lmk.LIPS_LOWER_INNER]
    assert set().union(*(_edges(c, False) for c in lips)) == _fm_edges(fmc.FACEMESH_LIPS)
    assert set(lmk.NOSE_POINTS) == {i for e in fmc.FACEMESH_NOSE for i in e}


def test_landmarks_on_the_astronaut(astronaut, astro_landmarks):
    lm = astro_landmarks
    assert lm is not None and lm.shape == (478, 3) and np.isfinite(lm).all()
    assert (lm[:, 0] > 150).all() and (lm[:, 0] < 330).all() and (lm[:, 1] > 40).all() and (lm[:, 1] < 200).all()
    # mesh index 263 (FACEMESH_LEFT_EYE) is the subject's left outer eye corner: the image's right in this photo
    assert lm[263, 0] > lm[33, 0] + 30
    assert lm[473, 0] > lm[468, 0]  # iris centres: left (473) on the image right


def test_pixel_centre_convention(astronaut, astro_landmarks, models):
    """x = x_norm * W puts the image edges at 0 and W (pixel-centre convention): the mesh is
    bilaterally symmetric as a point set, so the mean x of a photo and of its mirror image sum to
    W there (and to W - 1 if pixel centres were at integers)."""
    W = astronaut.shape[1]
    mirrored = lmk.detect_face_landmarks(np.ascontiguousarray(astronaut[:, ::-1]), models=models)
    total = astro_landmarks[:, 0].mean() + mirrored[:, 0].mean()
    assert abs(total - W) < 0.35, total


def test_astronaut_labels_in_plausible_places(astronaut, astro_labels):
    lab = astro_labels
    assert lab.shape == astronaut.shape[:2] and lab.dtype == np.uint8
    idx = ZLL.index
    cls = {c: np.argwhere(lab == idx(c)) for c in ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth",
                                                   "u_lip", "l_lip")}
    for c, px in cls.items():
        assert len(px) >= 20, f"{c}: {len(px)} pixels"
    cy = {c: px[:, 0].mean() for c, px in cls.items()}
    cx = {c: px[:, 1].mean() for c, px in cls.items()}
    assert cx["l_eye"] > cx["r_eye"] + 30 and cx["l_brow"] > cx["r_brow"] + 30  # subject's left: image right
    for side in ("l", "r"):
        assert cy[f"{side}_brow"] < cy[f"{side}_eye"]  # brows above eyes
        assert cy[f"{side}_eye"] < cy["nose"]  # eyes above the nose
    assert cy["nose"] < cy["u_lip"] < cy["mouth"] < cy["l_lip"]  # nose above the mouth, lips around it
    # skin around the eyes, nose and mouth
    s = cls["skin"]
    for c in ("l_eye", "r_eye", "nose", "mouth"):
        y, x = int(cy[c]), int(cx[c])
        assert s[:, 0].min() < y < s[:, 0].max() and s[:, 1].min() < x < s[:, 1].max()
    eye_mid = int((cy["l_eye"] + cy["r_eye"]) / 2)
    row = lab[eye_mid, int(cx["r_eye"]) - 40 : int(cx["l_eye"]) + 40]
    assert (row == idx("skin")).sum() > 10
    # background in the top corners (flag, grey wall); hair (person, not face) unknown
    for y, x in ((5, 5), (5, 506), (40, 470)):
        assert lab[y, x] == 0
    assert lab[40, 230] == 255
    assert (lab[300:450, 100:250] == 255).mean() > 0.9  # the spacesuit: person, not face


def test_person_mask_covers_the_body(astronaut, models):
    m = lmk.selfie_mask(astronaut, models=models)
    assert m.shape == (512, 512) and m.dtype == bool
    assert m[250:450, 100:250].mean() > 0.95  # torso
    assert m[80:160, 200:270].mean() > 0.95  # face
    assert m[:30, :30].mean() < 0.05 and m[:30, -30:].mean() < 0.05


def test_deterministic(astronaut, astro_labels, models):
    assert np.array_equal(lmk.landmark_labels(astronaut, models=models), astro_labels)


def test_no_face(models):
    from skimage import data

    img = np.ascontiguousarray(data.coffee())  # a cup of coffee: no face
    assert lmk.detect_face_landmarks(img, models=models) is None
    lab = lmk.landmark_labels(img, models=models)
    assert set(np.unique(lab).tolist()) <= {0, 255}


def test_cli_folder(cli, tmp_path, astronaut, astro_labels):
    from skimage import data

    src = tmp_path / "photos"
    write_png(src / "astronaut.png", astronaut)
    write_png(src / "astronaut_small.png", astronaut[::2, ::2].copy())
    write_png(src / "coffee.png", np.ascontiguousarray(data.coffee()))
    out = tmp_path / "parsed"
    r = cli("parse", src, "--parser", "mediapipe", "--out", out)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "labelled 3 images" in text and "no face found in 1 (coffee.png" in text
    lab = read_label(out / "astronaut.png", 19)
    assert np.array_equal(lab, astro_labels)
    small = read_label(out / "astronaut_small.png", 19, shape=(256, 256))
    assert (small == ZLL.index("l_eye")).any() and (small == ZLL.index("nose")).any()
    coffee = read_label(out / "coffee.png", 19)
    assert set(np.unique(coffee).tolist()) <= {0, 255}
    assert (out / "overlays" / "astronaut.jpg").is_file()
    # another scheme
    r = cli("parse", src, "--parser", "mediapipe", "--out", tmp_path / "lapa", "--scheme", "lapa11")
    assert r.exit_code == 0, r.output
    lapa = read_label(tmp_path / "lapa" / "astronaut.png", 11)
    assert (lapa == get_scheme("lapa11").concept_index("mouth")).any()


def test_cli_folder_mostly_without_faces_is_refused(cli, tmp_path, astronaut):
    from skimage import data

    src = tmp_path / "photos"
    write_png(src / "astronaut.png", astronaut)
    write_png(src / "coffee.png", np.ascontiguousarray(data.coffee()))
    write_png(src / "grey.png", np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / "parsed"
    r = cli("parse", src, "--parser", "mediapipe", "--out", out)
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert "no face in 2 of 3 images" in text and "--weights" in text and "Traceback" not in text
    assert not out.exists()


def test_cli_scene_and_check_lr(cli, tmp_path, astronaut):
    """A one-view scene around the photo: a frontal camera with the head frame's left (+x) on the
    image's right. The parser's labels then measure as the subject's convention."""
    from labelsplat.scene import Frame, HeadFrame, Scene, load_scene, look_at, save_scene

    root = tmp_path / "scene"
    write_png(root / "images" / "front.png", astronaut)
    cam = look_at([0, 0, 60.0], [0, 0, 0], [0, 1, 0], 500, 500, 512, 512)
    save_scene(Scene(root, [Frame("front", cam, file_path="images/front.png")], head_frame=HeadFrame.identity()))
    r = cli("parse", root, "--parser", "mediapipe", "--no-crop", "--lr-convention", "auto")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "no face found in 0 of 1 frames" in text and "follow the subject's left" in text and "no swap" in text
    scene = load_scene(root)
    assert scene.frames[0].label_path == "labels/front.png"
    assert scene.extra["parse"]["model"] == "mediapipe" and scene.extra["parse"]["lr_convention"] == "subject"
    r = cli("labels", "check-lr", root)
    assert r.exit_code == 0 and "convention: subject" in " ".join(r.output.split())
