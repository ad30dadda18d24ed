"""EXIF orientation: applied by the one image reader, refused on labels, stored upright by importers,
and warned about in scenes made before it was applied."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scene_fixtures import make_rig, write_nerfstudio

from labelsplat.errors import LabelsplatError
from labelsplat.io import read_label, read_rgb
from labelsplat.scene import import_scene, load_scene, validate_scene
from labelsplat.scene.validate import image_header, image_size


def _smooth(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=2).astype(np.uint8)


def save_tagged(path, stored: np.ndarray, tag: int):
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = tag
    img.save(path, exif=exif, **({"quality": 98} if path.suffix == ".jpg" else {}))
    return path


def test_reader_applies_orientation_and_labels_refuse_it(tmp_path):
    upright = _smooth(40, 48)
    p = save_tagged(tmp_path / "portrait.jpg", np.rot90(upright, k=1).copy(), 6)  # a phone's "rotate 90 CW" photo
    assert image_header(p) == (40, 48, 6) and image_size(p) == (48, 40)
    got = read_rgb(p)
    assert got.shape == (40, 48, 3) and np.abs(got.astype(int) - upright).mean() < 3
    lbl = save_tagged(tmp_path / "lbl.png", np.zeros((40, 48), np.uint8), 3)
    with pytest.raises(LabelsplatError, match="EXIF orientation tag"):
        read_label(lbl)


def test_nerfstudio_exif_rotated_jpegs_imported_upright(tmp_path):
    cams = make_rig(yaws=(-30, 0, 30), pitches=(0,))
    src = write_nerfstudio(tmp_path / "ns", cams, ext=".jpg")
    uprights = []
    for i, c in enumerate(cams):  # portrait-tagged JPEGs whose upright size is the file's w/h
        up = _smooth(c.height, c.width)
        uprights.append(up)
        save_tagged(tmp_path / "ns" / "images" / f"frame_{i:02d}.jpg", np.rot90(up, k=1).copy(), 6)
    import_scene("nerfstudio", src, None, tmp_path / "out")
    scene = load_scene(tmp_path / "out")
    f = scene.frames[1]
    stored = tmp_path / "out" / f.file_path
    assert image_header(stored) == (48, 40, 1) and f.extra["exif_orientation_applied"] == 6
    assert np.abs(read_rgb(stored).astype(int) - uprights[1]).mean() < 3
    assert not any("EXIF" in w for w in validate_scene(scene))
    # a scene labelled before the reader applied the tag: stored size = w/h, tag still set
    save_tagged(stored, _smooth(40, 48), 3)
    save_tagged(tmp_path / "out" / scene.frames[2].file_path, _smooth(40, 48), 8)
    warnings = validate_scene(load_scene(tmp_path / "out"))
    hit = [w for w in warnings if "EXIF orientation" in w]
    assert len(hit) == 1 and f"{f.name} (tag 3)" in hit[0] and f"{scene.frames[2].name} (tag 8)" in hit[0], warnings
    assert scene.frames[0].name not in hit[0]


def test_capture_photo_folder_reads_photos_upright(tmp_path):
    from labelsplat.capture.frames import select_photos

    for i in range(3):
        save_tagged(tmp_path / f"p{i}.jpg", np.rot90(_smooth(64, 80), k=1).copy(), 6)
    sel = select_photos(tmp_path, 3, 80)
    assert [im.shape for im in sel.images] == [(64, 80, 3)] * 3
