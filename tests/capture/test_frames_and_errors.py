"""Frame selection (sharpness, temporal bins) and the capture command's bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest

from labelsplat.capture import CaptureConfig, select_sharp, sharpness
from labelsplat.capture.pipeline import _check_registered
from labelsplat.errors import LabelsplatError
from labelsplat.io import write_png


def _texture(seed=0, size=96):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, (size, size, 3))).astype(np.uint8)


def test_sharpness_prefers_sharp_images():
    from scipy.ndimage import gaussian_filter

    img = _texture()
    blurred = gaussian_filter(img.astype(float), sigma=(2, 2, 0)).round().astype(np.uint8)
    assert sharpness(img) > 5 * sharpness(blurred)
    assert sharpness(np.full((8, 8, 3), 7, np.uint8)) == 0.0
    with pytest.raises(LabelsplatError):
        sharpness(np.zeros((2, 2, 2, 2)))


def test_select_sharp_takes_the_best_of_each_bin():
    scores = np.array([1, 5, 2, 9, 1, 1, 3, 2, 8, 0], float)
    assert select_sharp(scores, 5).tolist() == [1, 3, 4, 6, 8]  # bins [0,2) [2,4) [4,6) [6,8) [8,10)
    assert select_sharp(scores, 20).tolist() == list(range(10))
    with pytest.raises(LabelsplatError):
        select_sharp(scores, 0)


def test_undecodable_video(cli, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    r = cli("capture", bad, "--out", tmp_path / "scene", "--head-frame", '{"center":[0,0,0],"up":[0,1,0],"forward":[0,0,1]}')
    assert r.exit_code == 2
    assert "broken.mp4" in r.output and ("cannot open the video" in r.output or "cannot be decoded" in r.output)
    assert "fix:" in r.output and not (tmp_path / "scene").exists()


def test_too_few_frames(cli, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _capture_orbit import encode_video

    video = encode_video(tmp_path / "short.mp4", [_texture(k, 64) for k in range(2)])
    r = cli("capture", video, "--out", tmp_path / "scene")
    assert r.exit_code == 2 and "only 2 frame(s)" in r.output and "slow orbit" in r.output
    photos = tmp_path / "photos"
    write_png(photos / "a.png", _texture(0))
    r = cli("capture", photos, "--out", tmp_path / "scene")
    assert r.exit_code == 2 and "found 1 image(s)" in r.output


def test_input_not_a_video_or_folder(cli, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    r = cli("capture", f, "--out", tmp_path / "scene")
    assert r.exit_code == 2 and "not a video" in r.output
    r = cli("capture", tmp_path / "missing.mp4", "--out", tmp_path / "scene")
    assert r.exit_code == 2 and "input not found" in r.output


def test_photos_of_different_sizes(cli, tmp_path):
    photos = tmp_path / "photos"
    for k, s in enumerate((64, 64, 80)):
        write_png(photos / f"p{k}.png", _texture(k, s))
    r = cli("capture", photos, "--out", tmp_path / "scene")
    assert r.exit_code == 2 and "different sizes" in r.output


def test_sfm_registering_too_few_frames(tmp_path):
    cfg = CaptureConfig(frames=24)
    doc = {"sfm": {"registered": 7, "total": 24}}
    with pytest.raises(LabelsplatError, match="registered only 7 of 24 frames") as e:
        _check_registered(doc, cfg, tmp_path)
    assert "overlap" in e.value.hint
    _check_registered({"sfm": {"registered": 12, "total": 24}}, cfg, tmp_path)


def test_sfm_on_unrelated_photos_fails_clearly(cli, tmp_path):
    """Random-noise photos share no geometry: SfM builds no model (or a tiny one) -> one clear error."""
    pytest.importorskip("pycolmap")
    photos = tmp_path / "photos"
    for k in range(4):
        write_png(photos / f"p{k}.png", _texture(100 + k, 96))
    r = cli("capture", photos, "--out", tmp_path / "scene", "--head-frame", '{"center":[0,0,0],"up":[0,1,0],"forward":[0,0,1]}')
    assert r.exit_code == 2, r.output
    assert "registered" in r.output and "of 4" in r.output and "overlap" in r.output


def test_bad_head_frame_scale(tmp_path):
    from labelsplat.capture.pipeline import _given_head_frame

    hf, scale = _given_head_frame('{"center":[0,0,0],"up":[0,1,0],"forward":[0,0,1],"scale":2.5}')
    assert scale == 2.5
    with pytest.raises(LabelsplatError, match="scale"):
        _given_head_frame('{"center":[0,0,0],"up":[0,1,0],"forward":[0,0,1],"scale":-1}')
    with pytest.raises(LabelsplatError, match="parallel"):
        _given_head_frame('{"center":[0,0,0],"up":[0,0,1],"forward":[0,0,1]}')


def test_config_validation():
    with pytest.raises(LabelsplatError, match="--frames"):
        CaptureConfig(frames=2)
    with pytest.raises(LabelsplatError, match="--matcher"):
        from labelsplat.capture import SfmConfig

        SfmConfig(matcher="vocab")


def test_select_photos_bins_and_resizes(tmp_path):
    from scipy.ndimage import gaussian_filter

    from labelsplat.capture.frames import select_photos

    photos = tmp_path / "photos"
    for k in range(6):
        img = _texture(k, 128)
        if k in (0, 3, 5):  # blurred: the other photo of its bin wins
            img = gaussian_filter(img.astype(float), sigma=(2, 2, 0)).round().astype(np.uint8)
        write_png(photos / f"p{k}.png", img)
    sel = select_photos(photos, 3, 64)
    assert sel.source_name == ["p1.png", "p2.png", "p4.png"] and sel.source_index == [1, 2, 4]
    assert sel.total == 6 and all(im.shape == (64, 64, 3) for im in sel.images)


def test_video_frames_are_decoded_and_selected(tmp_path):
    import sys
    from pathlib import Path

    from scipy.ndimage import gaussian_filter

    from labelsplat.capture.frames import select_video_frames

    sys.path.insert(0, str(Path(__file__).parent))
    from _capture_orbit import encode_video

    frames = [_texture(k, 64) for k in range(8)]
    frames[0] = gaussian_filter(frames[0].astype(float), sigma=(3, 3, 0)).round().astype(np.uint8)
    video = encode_video(tmp_path / "v.mp4", frames)
    sel = select_video_frames(video, 4, 32)
    assert sel.total == 8 and sel.source_index[0] == 1 and len(sel.source_index) == 4
    assert sel.images[0].shape == (32, 32, 3)


def test_display_rotation():
    from labelsplat.capture.frames import apply_display_rotation

    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0] = 255  # top-left marker
    assert apply_display_rotation(img, 0) is img
    cw = apply_display_rotation(img, -90)  # portrait phone video: turn clockwise
    assert cw.shape == (3, 2, 3) and cw[0, 1, 0] == 255
    ccw = apply_display_rotation(img, 90)
    assert ccw.shape == (3, 2, 3) and ccw[2, 0, 0] == 255
    assert apply_display_rotation(img, 180)[1, 2, 0] == 255
