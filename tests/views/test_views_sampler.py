"""Novel-view sampler: presets' distributions, coverage, head checks, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.scene import HeadFrame, is_extreme, yaw_pitch
from labelsplat.views import (
    Dist,
    ViewSamplerConfig,
    camera_from_pose,
    head_coverage_points,
    head_coverage_sphere,
    input_coverage,
    sample_views,
    sampler_config,
)

# a tilted head frame (not the identity) so frame handling is exercised: up = world z, face to -y
HEAD = HeadFrame(np.array([0.3, -0.2, 1.5]), np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0]))


def rig(yaws, pitches, dist=3.0, focal=150.0, size=128):
    return [camera_from_pose(HEAD, y, p, 0.0, dist, focal, size, size) for y in yaws for p in pitches]


FACESCAPE_LIKE = rig(np.linspace(-90, 90, 7), (-20.0, 0.0, 20.0))


def test_extreme_preset_is_extreme_and_angles_round_trip():
    views = sample_views(FACESCAPE_LIKE, HEAD, 120, "extreme", seed=1, head_radius=1.0)
    assert len(views) == 120
    frac = np.mean([is_extreme(v.yaw, v.pitch) for v in views])
    assert frac >= 0.9
    for v in views:
        y, p = yaw_pitch(v.camera.center, HEAD)
        assert y == pytest.approx(v.yaw, abs=1e-6) and p == pytest.approx(v.pitch, abs=1e-6)
        assert np.linalg.norm(v.camera.center - HEAD.center) == pytest.approx(v.distance)
        uv, z = v.camera.project(HEAD.center[None])  # looks at the head centre
        assert z[0] > 0 and uv[0] == pytest.approx([64.0, 64.0], abs=1e-6)
        assert not v.beyond_coverage
    # both sides and both kinds of extreme (yaw and pitch) occur
    yaws = np.array([v.yaw for v in views])
    assert (yaws > 60).any() and (yaws < -60).any()
    assert any(abs(v.yaw) < 60 and abs(v.pitch) >= 30 for v in views)


def test_extreme_fraction_quota_is_exact():
    cfg = sampler_config("uniform", extreme_fraction=0.7)
    views = sample_views(FACESCAPE_LIKE, HEAD, 50, cfg, seed=0, head_radius=1.0)
    assert sum(v.extreme for v in views) == 35


def test_roll_rotates_the_image_up_vector():
    for roll in (-20.0, 0.0, 13.0):
        cam = camera_from_pose(HEAD, 30.0, 10.0, roll, 3.0, 200.0, 64, 64)
        back = cam.c2w[:3, 2]
        up0 = HEAD.up - back * (HEAD.up @ back)
        up0 /= np.linalg.norm(up0)
        right0 = np.cross(up0, back)
        up = cam.c2w[:3, 1]
        ang = math.degrees(math.atan2(-(up @ right0), up @ up0))
        assert ang == pytest.approx(roll, abs=1e-9)
    views = sample_views(FACESCAPE_LIKE, HEAD, 200, "uniform", seed=3, head_radius=1.0)
    rolls = np.array([v.roll for v in views])
    assert rolls.min() >= -20 and rolls.max() <= 20 and rolls.std() > 8


def test_coverage_limits_and_beyond_coverage_flag():
    narrow = rig(np.linspace(-40, 40, 5), (-10.0, 10.0))
    views = sample_views(narrow, HEAD, 150, "uniform", seed=0, head_radius=1.0)
    yaws = np.array([v.yaw for v in views])
    pitches = np.array([v.pitch for v in views])
    assert yaws.min() >= -55 - 1e-9 and yaws.max() <= 55 + 1e-9
    assert pitches.min() >= -25 - 1e-9 and pitches.max() <= 25 + 1e-9
    assert yaws.max() > 45 and yaws.min() < -45  # the margin is used
    wide = sample_views(narrow, HEAD, 150, "uniform", seed=0, head_radius=1.0, beyond_coverage=True)
    flags = np.array([v.beyond_coverage for v in wide])
    outside = np.array([abs(v.yaw) > 55 or abs(v.pitch) > 25 for v in wide])
    assert flags.any() and np.array_equal(flags, outside)


def test_no_extreme_pose_within_narrow_coverage_is_a_clear_error():
    frontal = rig(np.linspace(-20, 20, 3), (-5.0, 5.0))
    cfg = sampler_config("extreme", max_tries=500)
    with pytest.raises(LabelsplatError, match="outside_coverage") as err:
        sample_views(frontal, HEAD, 10, cfg, seed=0, head_radius=1.0)
    assert "beyond" in str(err.value)
    views = sample_views(frontal, HEAD, 10, "extreme", seed=0, head_radius=1.0, beyond_coverage=True)
    assert all(v.extreme and v.beyond_coverage for v in views)


def test_input_coverage_wraps_around_the_back():
    # inputs from 150 through 180 to -160 (= 200): a 50 degree arc centred on 175
    cov = input_coverage(np.array([150.0, 170.0, -170.0, -160.0]), np.zeros(4), margin_deg=15.0)
    assert cov.yaw_center == pytest.approx(175.0) and cov.yaw_half_width == pytest.approx(40.0)
    assert cov.contains(np.array([180.0, 140.0, 0.0, 100.0]), np.zeros(4)).tolist() == [True, True, False, False]


def test_sphere_coverage_matches_the_analytic_disc():
    r, d, f, size = 1.0, 4.0, 100.0, 128
    cam = camera_from_pose(HEAD, 10.0, 0.0, 0.0, d, f, size, size)
    frac, inside = head_coverage_sphere(cam, HEAD.center, r)
    disc = math.pi * (f * math.tan(math.asin(r / d))) ** 2 / size**2
    assert frac == pytest.approx(disc, abs=0.01)
    assert inside == 1.0
    # a dense point cloud on the sphere gives about the same area
    g = np.random.default_rng(0).normal(size=(20000, 3))
    pts = HEAD.center + r * g / np.linalg.norm(g, axis=1, keepdims=True)
    pfrac, pinside = head_coverage_points(cam, pts)
    assert pfrac == pytest.approx(disc, abs=0.03) and pinside == 1.0
    # zoomed in: the silhouette leaves the image
    close = camera_from_pose(HEAD, 10.0, 0.0, 0.0, d, 400.0, size, size)
    assert head_coverage_sphere(close, HEAD.center, r)[1] < 0.5


def test_rejection_of_small_and_cut_off_heads():
    cfg = ViewSamplerConfig(distance=Dist.uniform(1.0, 8.0), min_head_fraction=0.15)
    views = sample_views(FACESCAPE_LIKE, HEAD, 40, cfg, seed=0, head_radius=1.0)
    assert all(v.head_fraction >= 0.15 for v in views)
    dists = np.array([v.distance for v in views])
    # fraction 0.15 needs pi (f tan(asin(r/d)))^2 >= 0.15 * 128^2 (r = 1, f = 150)
    d_max = 1.0 / math.sin(math.atan(math.sqrt(0.15 * 128**2 / math.pi) / 150.0))
    assert dists.max() < d_max * 1.03 and dists.min() < 0.8 * d_max
    with pytest.raises(LabelsplatError, match="head_too_small"):
        sample_views(FACESCAPE_LIKE, HEAD, 5, ViewSamplerConfig(min_head_fraction=0.99, max_tries=300), seed=0,
                     head_radius=1.0)
    zoom = ViewSamplerConfig(focal=Dist.fixed(2.0), max_tries=300)
    with pytest.raises(LabelsplatError, match="head_cut_off"):
        sample_views(FACESCAPE_LIKE, HEAD, 5, zoom, seed=0, head_radius=1.0)


def test_seeded_and_deterministic():
    a = sample_views(FACESCAPE_LIKE, HEAD, 20, "uniform", seed=7, head_radius=1.0)
    b = sample_views(FACESCAPE_LIKE, HEAD, 20, "uniform", seed=7, head_radius=1.0)
    c = sample_views(FACESCAPE_LIKE, HEAD, 20, "uniform", seed=8, head_radius=1.0)
    assert all(np.array_equal(x.camera.c2w, y.camera.c2w) for x, y in zip(a, b))
    assert not all(np.array_equal(x.camera.c2w, y.camera.c2w) for x, y in zip(a, c))


def test_input_like_stays_near_inputs_and_keeps_intrinsics_scaled():
    inputs = rig((-30.0, 0.0, 45.0), (0.0,), focal=120.0, size=100)
    views = sample_views(inputs, HEAD, 60, "input-like", seed=0, head_radius=1.0, width=200)
    for v in views:
        assert min(abs(v.yaw - y) for y in (-30.0, 0.0, 45.0)) <= 30.0 + 1e-9
        assert abs(v.pitch) <= 15.0 + 1e-9
        assert (v.camera.width, v.camera.height) == (200, 200)
        assert v.camera.fx == pytest.approx(240.0) and v.camera.cx == pytest.approx(100.0)
        assert 0.8 * 3.0 - 1e-9 <= v.distance <= 1.2 * 3.0 + 1e-9


def test_bad_arguments():
    with pytest.raises(LabelsplatError, match="preset"):
        sampler_config("nope")
    with pytest.raises(LabelsplatError):
        sample_views([], HEAD, 3, "uniform", head_radius=1.0)
    with pytest.raises(LabelsplatError, match="positive integer"):
        sample_views(FACESCAPE_LIKE, HEAD, 0, "uniform", head_radius=1.0)
    with pytest.raises(LabelsplatError, match="head_points"):
        sample_views(FACESCAPE_LIKE, HEAD, 3, "uniform", head_points=np.zeros((4, 2)))
    with pytest.raises(LabelsplatError):
        ViewSamplerConfig(extreme_fraction=1.5)
