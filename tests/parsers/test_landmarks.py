"""Landmark parser, main suite (no MediaPipe needed): lazy import, missing-extra error, and the
pure landmark -> label step on a hand-made landmark array."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.parsers import landmarks as lmk
from labelsplat.schemes import get_scheme

ZLL = get_scheme("celebamask19-zll")
H, W = 120, 100


def _ring(idx, cx, cy, rx, ry, start=0.0):
    """Place landmark indices ``idx`` (a polygon loop) on an ellipse, in order."""
    t = start + np.linspace(0, 2 * np.pi, len(idx), endpoint=False)
    return {i: (cx + rx * np.cos(a), cy + ry * np.sin(a)) for i, a in zip(idx, t)}


def _chain(idx, x0, x1, y):
    return {i: (x, y) for i, x in zip(idx, np.linspace(x0, x1, len(idx)))}


def hand_face() -> np.ndarray:
    """A frontal face drawn by hand in a 100x120 image: the subject's left is the image's right
    (x > 50), as in a frontal photo. Landmarks not on a polygon sit at the face centre."""
    pts = np.tile([50.0, 60.0, 0.0], (lmk.N_LANDMARKS, 1))
    place = {}
    place.update(_ring(lmk.FACE_OVAL, 50, 60, 35, 45))
    place.update(_ring(lmk.LEFT_EYE, 65, 50, 7, 3))  # subject's left eye: image right
    place.update(_ring(lmk.RIGHT_EYE, 35, 50, 7, 3))
    place.update(_ring(lmk.LEFT_IRIS, 65, 50, 2, 2))
    place.update(_ring(lmk.RIGHT_IRIS, 35, 50, 2, 2))
    lo, up = lmk.LEFT_EYEBROW_CHAINS
    place.update(_chain(lo, 75, 57, 40))  # outer (276) -> inner (285), lower edge
    place.update(_chain(up, 75, 57, 36))
    lo, up = lmk.RIGHT_EYEBROW_CHAINS
    place.update(_chain(lo, 25, 43, 40))
    place.update(_chain(up, 25, 43, 36))
    # nose: a diamond from the nasion (168) to the tip region
    nose = {168: (50, 52), 6: (50, 55), 197: (50, 58), 195: (50, 62), 5: (50, 65), 4: (50, 68), 1: (50, 70),
            19: (50, 71), 94: (50, 72), 2: (50, 73)}
    for k, i in enumerate((98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48, 64)):
        a = np.pi * k / 13
        nose[i] = (50 + 7 * np.cos(a), 70 + 3 * np.sin(a))
    place.update(nose)
    # lips: outer from x 38..62, inner from 42..58; upper outer at y 80, inner at 84, lower outer at 90
    xo, xi = np.linspace(38, 62, 11), np.linspace(42, 58, 11)
    bump = np.sin(np.linspace(0, np.pi, 11))
    for k in range(11):
        place[lmk.LIPS_UPPER_OUTER[k]] = (xo[k], 84 - 4 * bump[k])
        place[lmk.LIPS_LOWER_OUTER[k]] = (xo[k], 84 + 6 * bump[k])
        place[lmk.LIPS_UPPER_INNER[k]] = (xi[k], 84 - 1.5 * bump[k])
        place[lmk.LIPS_LOWER_INNER[k]] = (xi[k], 84 + 2 * bump[k])
    for i, (x, y) in place.items():
        pts[i, :2] = (x, y)
    return pts


def person() -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[10:, 10:90] = True  # head + shoulders block; corners and the top band are background
    return m


def at(lab, x, y):
    """Label of the pixel containing continuous point (x, y)."""
    return int(lab[int(np.floor(y)), int(np.floor(x))])


def test_import_is_lazy_and_cv2_free():
    code = ("import sys, labelsplat.parsers.landmarks as m, labelsplat.parsers as p; "
            "p.labels_from_landmarks; "
            "assert 'mediapipe' not in sys.modules, 'mediapipe imported'; "
            "assert 'cv2' not in sys.modules, 'cv2 imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_missing_mediapipe_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` raises ImportError
    with pytest.raises(LabelsplatError) as e:
        lmk.load_landmark_parser()
    assert "mediapipe" in str(e.value)
    assert "labelsplat[mediapipe]" in (e.value.hint or "") and "numpy<2" in (e.value.hint or "")
    with pytest.raises(LabelsplatError):
        lmk.landmark_labels(np.zeros((8, 8, 3), np.uint8), models=lmk._Models())


def test_registry_entry():
    from labelsplat.parsers.registry import get_model_info, list_models

    assert "mediapipe" in list_models()
    info = get_model_info("mediapipe")
    assert info.license == "Apache-2.0" and info.label_scheme == "celebamask19-zll" and info.input_size == 0
    assert "mediapipe" in info.source


def test_rasterize_polygon_tests_pixel_centres():
    m = lmk.rasterize_polygon(np.array([[2.0, 2.0], [5.0, 2.0], [5.0, 4.0], [2.0, 4.0]]), (8, 8))
    # pixel (i, j) is inside when its centre (i + .5, j + .5) is: columns 2..4, rows 2..3
    expect = np.zeros((8, 8), bool)
    expect[2:4, 2:5] = True
    assert np.array_equal(m, expect)
    # shifting the square by half a pixel moves which centres it covers
    m2 = lmk.rasterize_polygon(np.array([[2.6, 2.0], [5.6, 2.0], [5.6, 4.0], [2.6, 4.0]]), (8, 8))
    assert m2[2, 3:6].all() and not m2[2, 2]
    # clipped at the border, no error
    assert lmk.rasterize_polygon(np.array([[-5.0, -5.0], [3.0, -5.0], [3.0, 3.0]]), (4, 4))[0, 0]
    with pytest.raises(ValueError):
        lmk.rasterize_polygon(np.zeros((2, 2)), (4, 4))


def test_polygons_are_closed_loops_of_distinct_points():
    for poly in (lmk.FACE_OVAL, lmk.LEFT_EYE, lmk.RIGHT_EYE, lmk.LEFT_EYEBROW, lmk.RIGHT_EYEBROW,
                 lmk.UPPER_LIP, lmk.LOWER_LIP, lmk.MOUTH):
        assert len(set(poly)) == len(poly) >= 8
        assert max(poly) < lmk.N_LANDMARKS_NO_IRIS
    assert 263 in lmk.LEFT_EYE and 33 in lmk.RIGHT_EYE  # subject's left / right outer eye corners


def test_labels_from_hand_made_landmarks():
    lab = lmk.labels_from_landmarks(hand_face(), person(), (H, W))
    assert lab.shape == (H, W) and lab.dtype == np.uint8
    idx = ZLL.index
    assert at(lab, 65, 50) == idx("l_eye") and at(lab, 35, 50) == idx("r_eye")  # subject's left = image right
    assert at(lab, 66, 38) == idx("l_brow") and at(lab, 34, 38) == idx("r_brow")
    assert at(lab, 50, 66) == idx("nose")
    assert at(lab, 50, 81.5) == idx("u_lip") and at(lab, 50, 88) == idx("l_lip") and at(lab, 50, 84.5) == idx("mouth")
    assert at(lab, 25, 70) == idx("skin") and at(lab, 50, 25) == idx("skin")
    assert at(lab, 2, 2) == 0 and at(lab, 97, 117) == 0  # outside the person mask: background
    assert at(lab, 12, 115) == 255 and at(lab, 88, 12) == 255  # person, not face: unknown
    present = set(np.unique(lab).tolist())
    assert present == {0, 255} | {idx(c) for c in ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth",
                                                   "u_lip", "l_lip")}
    # 2-D landmarks (no z) and the 468-point mesh give the same labels
    assert np.array_equal(lmk.labels_from_landmarks(hand_face()[:468, :2], person(), (H, W)), lab)


def test_sides_follow_the_mesh_indices_not_the_image_side():
    """Mirror the landmark x coordinates: the l_ classes move with the (anatomical) mesh indices,
    so the result is the plain mirror of the reference, not a mirror with classes swapped."""
    from labelsplat.schemes import flip_labels

    pts = hand_face()
    pts[:, 0] = W - pts[:, 0]
    lab = lmk.labels_from_landmarks(pts, person()[:, ::-1], (H, W))
    ref = lmk.labels_from_landmarks(hand_face(), person(), (H, W))
    assert np.array_equal(lab, ref[:, ::-1])
    assert not np.array_equal(lab, flip_labels(ref, ZLL))
    assert at(lab, W - 65, 50) == ZLL.index("l_eye")


def test_no_face_and_no_mask():
    lab = lmk.labels_from_landmarks(None, person(), (H, W))
    assert set(np.unique(lab).tolist()) == {0, 255}
    assert (lab[person()] == 255).all() and (lab[~person()] == 0).all()
    assert (lmk.labels_from_landmarks(None, None, (H, W)) == 255).all()
    lab2 = lmk.labels_from_landmarks(hand_face(), None, (H, W))
    assert at(lab2, 2, 2) == 255 and at(lab2, 65, 50) == ZLL.index("l_eye")


def test_other_schemes():
    ref = lmk.labels_from_landmarks(hand_face(), person(), (H, W))
    lapa = get_scheme("lapa11")
    lab = lmk.labels_from_landmarks(hand_face(), person(), (H, W), scheme="lapa11")
    assert at(lab, 50, 84.5) == lapa.concept_index("mouth") and at(lab, 50, 66) == lapa.concept_index("nose")
    assert (lab[ref == 255] == 255).all() and (lab[ref == 0] == 0).all()
    camhq = get_scheme("celebamask-hq")
    lab = lmk.labels_from_landmarks(hand_face(), person(), (H, W), scheme="celebamask-hq")
    assert at(lab, 65, 50) == camhq.concept_index("l_eye")


def test_bad_inputs():
    with pytest.raises(ValueError, match="landmarks"):
        lmk.labels_from_landmarks(np.zeros((10, 3)), None, (H, W))
    with pytest.raises(ValueError, match="person_mask"):
        lmk.labels_from_landmarks(hand_face(), np.zeros((5, 5), bool), (H, W))
    bad = hand_face()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        lmk.labels_from_landmarks(bad, None, (H, W))
    with pytest.raises(ValueError, match="uint8 RGB"):
        lmk._check_rgb(np.zeros((4, 4), np.uint8))
    with pytest.raises(LabelsplatError):
        lmk.labels_from_landmarks(hand_face(), None, (H, W), scheme="no-such-scheme")
