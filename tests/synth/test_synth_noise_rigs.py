import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.eval import confusion_matrix, scores_from_confusion
from labelsplat.scene import is_extreme, yaw_pitch
from labelsplat.synth.noise import apply_noise, parse_noise, severity, surface_patches
from labelsplat.synth.render import render_head
from labelsplat.synth.rigs import RigConfig, camera_at, facescape_candidates, rig_cameras
from labelsplat.synth.scene import head_frame


def _miou(views, mesh, level, seed):
    spec = parse_noise("simulated:" + level)
    patches = surface_patches(mesh, level, seed)
    conf = 0
    for cam, r in views:
        noisy = apply_noise(r, mesh, cam, spec, seed, patches=patches)
        conf = conf + confusion_matrix(noisy, r.gt_labels, 19)
    return scores_from_confusion(conf)["miou"]


@pytest.fixture(scope="module")
def pose_views(head_mesh):
    out = {}
    for name, yaws in (("frontal", (-10.0, 0.0, 10.0, 20.0)), ("profile", (-80.0, -70.0, 70.0, 80.0))):
        views = []
        for y in yaws:
            for p in (-10.0, 10.0):
                cam = camera_at(y, p, resolution=96)
                views.append((cam, render_head(head_mesh, cam)))
        out[name] = views
    return out


def test_noise_grows_with_yaw(head_mesh, pose_views):
    seed = head_mesh.params.seed
    for level in ("low", "high"):
        front = _miou(pose_views["frontal"], head_mesh, level, seed)
        prof = _miou(pose_views["profile"], head_mesh, level, seed)
        assert front - prof > 0.08, (level, front, prof)
    assert _miou(pose_views["profile"], head_mesh, "low", seed) > _miou(pose_views["profile"], head_mesh, "high", seed)
    assert severity("medium", 80, 0) > severity("medium", 40, 0) > severity("medium", 5, 0)


def test_noise_is_deterministic_per_view_and_none_is_exact(head_mesh, pose_views):
    cam, r = pose_views["profile"][0]
    spec = parse_noise("simulated:medium")
    a = apply_noise(r, head_mesh, cam, spec, 3)
    b = apply_noise(r, head_mesh, cam, spec, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, r.gt_labels)
    assert np.array_equal(apply_noise(r, head_mesh, cam, parse_noise("none"), 3), r.gt_labels)
    assert a.dtype == np.uint8 and a.max() < 19


def test_surface_patches_are_consistent_across_neighbouring_views(head_mesh):
    """A 3D patch relabels the same surface in every view of its pose range."""
    from labelsplat.synth.noise import patched_triangle_labels

    patches = surface_patches(head_mesh, "high", 1)
    assert patches
    a = patched_triangle_labels(head_mesh, patches, 85.0)
    b = patched_triangle_labels(head_mesh, patches, 88.0)
    assert a is not None and np.array_equal(a, b)
    assert (a != head_mesh.labels).any()


def test_parse_noise():
    assert parse_noise("none").is_none
    assert parse_noise("simulated:high").level == "high"
    with pytest.raises(LabelsplatError, match="unknown noise"):
        parse_noise("simulated:extreme")


def test_rigs():
    cand = facescape_candidates()
    assert 50 <= len(cand) <= 60
    assert np.abs(cand[:, 0]).max() <= 90 and np.abs(cand[:, 1]).max() <= 30
    hf = head_frame()
    cams, poses = rig_cameras(RigConfig("facescape", 20, 64), 0)
    assert len(cams) == 20
    for cam, (yaw, pitch) in zip(cams, poses):
        y, p = yaw_pitch(cam.center, hf)
        assert abs(y - yaw) < 1e-6 and abs(p - pitch) < 1e-6
        assert abs(y) < 90 and abs(p) <= 30
        # looks at the head centre: it projects to the principal point
        uv, _ = cam.project(hf.center[None])
        assert np.allclose(uv[0], [cam.cx, cam.cy], atol=1e-6)
    cams, _ = rig_cameras(RigConfig("extreme", 12, 64), 1)
    assert all(is_extreme(*yaw_pitch(c.center, hf)) for c in cams)
    cams, _ = rig_cameras(RigConfig("orbit", 12, 64), 1)
    yaws = sorted(yaw_pitch(c.center, hf)[0] for c in cams)
    assert yaws[-1] - yaws[0] > 300
    assert np.array_equal(rig_cameras(RigConfig("orbit", 5, 64), 2)[0][3].c2w, rig_cameras(RigConfig("orbit", 5, 64), 2)[0][3].c2w)
    with pytest.raises(LabelsplatError, match="unknown rig"):
        RigConfig("dome", 4, 64)
    with pytest.raises(LabelsplatError):
        RigConfig("orbit", 0, 64)


def test_facescape_views_contain_the_head(head_mesh):
    for yaw, pitch in ((0, 25), (0, -25), (-89, 0), (60, 12)):
        r = render_head(head_mesh, camera_at(yaw, pitch, resolution=64, distance=60 * 0.92, focal_scale=1.08))
        assert not r.mask[0].any(), (yaw, pitch)  # the top of the head stays inside the image
