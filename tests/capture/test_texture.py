"""The synthetic renderer's procedural texture option (used to test structure from motion)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError


@pytest.fixture(scope="module")
def mesh():
    from labelsplat.synth.head import build_head, sample_head

    return build_head(sample_head(11))


def test_procedural_texture_changes_rgb_only(mesh):
    from labelsplat.synth.render import render_head
    from labelsplat.synth.rigs import camera_at

    cam = camera_at(20.0, 5.0, resolution=96)
    a = render_head(mesh, cam)
    b = render_head(mesh, cam, texture="procedural")
    c = render_head(mesh, cam, texture="procedural")
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.depth, b.depth) and np.array_equal(a.mask, b.mask)
    assert np.array_equal(a.rgb[~a.mask], b.rgb[~b.mask])  # background untouched
    assert np.abs(a.rgb[a.mask].astype(int) - b.rgb[b.mask]).mean() > 5  # visible detail on the head
    assert np.array_equal(b.rgb, c.rgb)  # deterministic
    with pytest.raises(LabelsplatError, match="texture"):
        render_head(mesh, cam, texture="marble")


def test_procedural_texture_is_fixed_to_the_surface():
    from labelsplat.synth.render import procedural_texture

    pts = np.random.default_rng(0).uniform(-10, 10, (500, 3))
    v = procedural_texture(pts, 3)
    assert v.shape == (500,) and np.all(np.abs(v) <= 1) and v.std() > 0.1
    assert np.array_equal(procedural_texture(pts[::-1], 3), v[::-1])  # a point's value does not depend on the others
    assert not np.allclose(procedural_texture(pts, 4), v)


def test_synth_cli_texture_flag_and_like(cli, tmp_path):
    r = cli("synth", "--out", tmp_path / "s", "--views", 2, "--resolution", 48, "--texture", "procedural")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s" / "head_000" / "synth.json").read_text())
    assert doc["texture"] == "procedural" and doc["config"]["texture"] == "procedural"
    r = cli("synth", "--like", tmp_path / "s" / "head_000", "--cameras", tmp_path / "s" / "head_000" / "transforms.json",
            "--out", tmp_path / "like")
    assert r.exit_code == 0, r.output
    from labelsplat.io import read_rgb

    a = read_rgb(tmp_path / "s" / "head_000" / "images" / "view_000.png")
    b = read_rgb(tmp_path / "like" / "head_000" / "images" / "view_000.png")
    assert np.array_equal(a, b)  # --like keeps the source's texture
    r = cli("synth", "--out", tmp_path / "t", "--views", 1, "--resolution", 32, "--texture", "marble")
    assert r.exit_code == 2 and "texture" in r.output
