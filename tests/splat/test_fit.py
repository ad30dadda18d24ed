"""The joint fit on a tiny procedural head: losses fall, K = 0, resume, NaN stop, bad input, renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fit_scene import CENTER, RADIUS, cached_scene
from labelsplat.errors import LabelsplatError
from labelsplat.io import read_label, read_rgb
from labelsplat.scene import load_scene, save_scene
from labelsplat.config import fit_preset as make_config
from labelsplat.splat import fit, latest_checkpoint, load_checkpoint


def small_cfg(**kw):
    base = dict(steps=16, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=4,
                checkpoint_every=8, log_every=1, sh_degree_interval=8)
    base.update(kw)
    return make_config("micro", **base)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


@pytest.fixture(scope="module")
def fitted(scene_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    res = fit(scene_dir, run, small_cfg(steps=40, refine_every=10))
    return run, res


def _scores(res, scene_dir):
    """(foreground L1, cross-entropy vs the input labels) of a FitResult's model at the training views."""
    from labelsplat.io import read_rgb
    from labelsplat.splat import FittedRun, render_cameras

    scene = load_scene(scene_dir)
    fr = FittedRun(res.model, res.norm, res.config, "celebamask19-zll", res.model.num_classes, {})
    outs = render_cameras(fr, scene.cameras, batch_size=3)
    l1, ce = [], []
    for f, o in zip(scene.frames, outs):
        lab = read_label(scene.path(f.label_path), 19)
        img = read_rgb(scene.path(f.file_path)).astype(np.float32) / 255 * (lab != 0)[..., None]
        l1.append(np.abs(o["rgb"] - img).mean())
        ce.append(torch.nn.functional.cross_entropy(torch.from_numpy(o["logits"]).reshape(-1, 19),
                                                    torch.from_numpy(lab.astype(np.int64)).reshape(-1)).item())
    return float(np.mean(l1)), float(np.mean(ce))


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines() if x.strip()]


def test_fit_lowers_both_losses_and_writes_outputs(fitted, scene_dir):
    run, res = fitted
    log = _log(run)
    assert [r["step"] for r in log] == list(range(40))
    init = fit(scene_dir, run.parent / "init", small_cfg(steps=40, refine_every=10), stop_after=0)
    assert init.summary["stopped_early"]
    l1_0, ce_0 = _scores(init, scene_dir)
    l1_1, ce_1 = _scores(res, scene_dir)
    assert l1_1 < 0.8 * l1_0, (l1_0, l1_1)
    assert ce_1 < 0.6 * ce_0, (ce_0, ce_1)
    for rel in ("checkpoint.pt", "point_cloud.ply", "run.json", "train_log.jsonl"):
        assert (run / rel).is_file(), rel
    names = [f.name for f in load_scene(scene_dir).frames]
    for sub in ("rgb", "labels", "confidence", "labels_colour", "overlay"):
        assert sorted(p.stem for p in (run / "renders" / sub).glob("*.png")) == sorted(names)
    meta = json.loads((run / "run.json").read_text())
    assert meta["schema_version"] == 1 and meta["num_classes"] == 19 and meta["label_scheme"] == "celebamask19-zll"
    assert meta["config"]["steps"] == 40 and "torch" in meta["versions"]
    assert np.allclose(meta["normalization"]["center"], CENTER)  # the scene's head_frame centre
    assert 0.5 * RADIUS < meta["normalization"]["scale"] < 2.5 * RADIUS
    lab = read_label(run / "renders" / "labels" / f"{names[0]}.png", 19)
    assert lab.shape == (32, 32) and (lab == 0).any() and (lab != 0).any()
    from labelsplat.schemes import colorize

    np.testing.assert_array_equal(read_rgb(run / "renders" / "labels_colour" / f"{names[0]}.png"),
                                  colorize(lab, "celebamask19-zll"))
    assert read_rgb(run / "renders" / "overlay" / f"{names[0]}.png").shape == (32, 32, 3)
    # n_views_seen was measured, stored in the checkpoint and bounded by the number of views
    nvs = res.model.n_views_seen
    assert nvs is not None and int(nvs.max()) <= 6 and int(nvs.max()) >= 2
    ck = load_checkpoint(run / "checkpoint.pt")
    assert torch.equal(ck["model"]["n_views_seen"], nvs.cpu())


def test_ply_is_in_scene_units(fitted):
    from labelsplat.splat.ply import load_ply

    run, res = fitted
    ply = load_ply(run / "point_cloud.ply")
    centre = np.median(ply["means"], axis=0)
    assert np.linalg.norm(centre - CENTER) < 0.5 * RADIUS
    assert np.percentile(np.linalg.norm(ply["means"] - CENTER, axis=1), 50) < 2 * RADIUS
    assert ply["sem"].shape[1] == 19 and (ply["n_views_seen"] >= 0).all()


def test_render_cameras_scene_units(fitted, scene_dir):
    from labelsplat.splat import load_run, render_cameras

    run, _ = fitted
    fr = load_run(run)
    cams = [f.camera for f in load_scene(scene_dir).frames][:3]
    outs = render_cameras(fr, cams, batch_size=2)
    assert len(outs) == 3
    o = outs[0]
    assert o["rgb"].shape == (32, 32, 3) and o["logits"].shape == (32, 32, 19) and o["labels"].shape == (32, 32)
    for k in ("depth", "alpha", "confidence", "views_seen", "low_view_fraction"):
        assert o[k].shape == (32, 32), k
    fg = o["alpha"] > 0.9
    assert fg.any()
    dist = np.linalg.norm(cams[0].center - CENTER)
    d = o["depth"][fg]
    assert np.all(d > dist - 2.5 * RADIUS) and np.all(d < dist + 2.5 * RADIUS)  # scene units (mm-like)
    assert np.all((o["low_view_fraction"] >= 0) & (o["low_view_fraction"] <= 1))
    half = render_cameras(fr, cams[:1], resolution_scale=0.5)[0]
    assert half["rgb"].shape == (16, 16, 3)
    # batch size does not change the result
    one = render_cameras(fr, cams[:2], batch_size=1)
    np.testing.assert_allclose(one[1]["logits"], outs[1]["logits"], atol=1e-4)


def test_rgb_only_k0(scene_dir, tmp_path):
    res = fit(scene_dir, tmp_path / "run", small_cfg(steps=6, semantics=False))
    assert res.model.num_classes == 0 and res.model.params["sem"].shape[1] == 0
    assert not (tmp_path / "run" / "renders" / "labels").exists()
    log = _log(tmp_path / "run")
    assert all(r["label_acc"] is None and r["sem_loss"] == 0.0 for r in log)


def test_resume_is_bitwise_identical(scene_dir, tmp_path):
    cfg = small_cfg(steps=16, checkpoint_every=4)
    straight = fit(scene_dir, tmp_path / "a", cfg, write_outputs=False)
    part = fit(scene_dir, tmp_path / "b", cfg, stop_after=8)
    assert part.summary["stopped_early"] and latest_checkpoint(tmp_path / "b").name == "step_000008.pt"
    resumed = fit(scene_dir, tmp_path / "b", None, resume=True, write_outputs=False)
    assert resumed.model.num_gaussians == straight.model.num_gaussians
    for k, v in straight.model.params.items():
        assert torch.equal(v, resumed.model.params[k]), k
    la = [json.dumps({k: v for k, v in r.items() if k != "time_s"}) for r in _log(tmp_path / "a")]
    lb = [json.dumps({k: v for k, v in r.items() if k != "time_s"}) for r in _log(tmp_path / "b")]
    assert la == lb


def test_resuming_a_finished_fit_keeps_its_label_assignment(scene_dir, tmp_path):
    # the final checkpoint carries the assigned logits: resuming must not shift them a second time
    cfg = small_cfg(steps=4, semantic_lift="unweight", class_weights_by_concept=(("nose", 5.0),))
    done = fit(scene_dir, tmp_path / "r", cfg, write_outputs=False)
    assert done.summary["semantic_lift"]["mode"] == "unweight"
    again = fit(scene_dir, tmp_path / "r", None, resume=True, write_outputs=False)
    assert "semantic_lift" not in again.summary
    assert torch.equal(again.model.params["sem"], done.model.params["sem"])


def test_resume_refusals(scene_dir, tmp_path):
    with pytest.raises(LabelsplatError, match="nothing to resume"):
        fit(scene_dir, tmp_path / "none", small_cfg(), resume=True)
    fit(scene_dir, tmp_path / "r", small_cfg(steps=4), stop_after=2)
    with pytest.raises(LabelsplatError, match="differs"):
        fit(scene_dir, tmp_path / "r", small_cfg(steps=5), resume=True)
    with pytest.raises(LabelsplatError, match="already holds a fit"):
        fit(scene_dir, tmp_path / "r", small_cfg(steps=4))
    other = load_scene(_copy_scene(scene_dir, tmp_path / "other"))
    other.frames[0].name = "renamed"
    save_scene(other)
    with pytest.raises(LabelsplatError, match="other frames"):
        fit(other.root, tmp_path / "r", None, resume=True)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_nan_loss_stops_with_checkpoint_intact(scene_dir, tmp_path, monkeypatch, device):
    """CPU reads the finiteness every step; CUDA accumulates it on the device and reads it at
    log/checkpoint steps (log_every=3 here): the same error, and the checkpoint left is finite."""
    import importlib

    tr = importlib.import_module("labelsplat.splat.fit")  # the module (labelsplat.splat.fit is the function)
    calls = {"n": 0}
    real = tr.rgb_loss

    def flaky(pred, target, lam):
        calls["n"] += 1
        out = real(pred, target, lam)
        return out * float("nan") if calls["n"] > 5 else out

    monkeypatch.setattr(tr, "rgb_loss", flaky)
    with pytest.raises(LabelsplatError, match="NaN") as ei:
        fit(scene_dir, tmp_path / "run", small_cfg(steps=12, checkpoint_every=4, log_every=3), device=device)
    assert "step_000004.pt" in str(ei.value)
    ck = load_checkpoint(tmp_path / "run" / "ckpt" / "step_000004.pt")
    assert ck["step"] == 4 and all(torch.isfinite(v).all() for v in ck["model"]["params"].values())
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def _copy_scene(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_bad_inputs(scene_dir, tmp_path):
    # frames without labels
    s = load_scene(_copy_scene(scene_dir, tmp_path / "nolab"))
    s.frames[2].label_path = None
    save_scene(s)
    with pytest.raises(LabelsplatError, match="no label_path") as ei:
        fit(s.root, tmp_path / "r1", small_cfg())
    assert "transforms.json" in str(ei.value)
    # ... fine for an RGB-only fit
    # label scheme mismatch between frames
    s = load_scene(_copy_scene(scene_dir, tmp_path / "mix"))
    s.frames[1].extra["label_scheme"] = "lapa11"
    save_scene(s)
    with pytest.raises(LabelsplatError, match="label_scheme"):
        fit(s.root, tmp_path / "r2", small_cfg())
    # unknown scheme
    s = load_scene(_copy_scene(scene_dir, tmp_path / "unk"))
    s.label_scheme = "no-such-scheme"
    save_scene(s)
    with pytest.raises(LabelsplatError, match="unknown label scheme"):
        fit(s.root, tmp_path / "r3", small_cfg())
    # a camera that looks away from the head
    s = load_scene(_copy_scene(scene_dir, tmp_path / "away"))
    c2w = s.frames[0].camera.c2w.copy()
    c2w[:3, :3] = c2w[:3, :3] @ np.diag([-1.0, 1.0, -1.0])  # turn it around
    s.frames[0].camera.c2w = c2w
    save_scene(s)
    with pytest.raises(LabelsplatError, match="sees nothing"):
        fit(s.root, tmp_path / "r4", small_cfg())
    # label ids outside the scheme
    s = load_scene(_copy_scene(scene_dir, tmp_path / "ids"))
    from labelsplat.io import write_png

    write_png(s.path(s.frames[0].label_path), np.full((32, 32), 40, np.uint8))
    with pytest.raises(LabelsplatError, match="outside"):
        fit(s.root, tmp_path / "r5", small_cfg())


def test_label_confidence_hook(scene_dir, tmp_path):
    from labelsplat.io import write_png

    s = load_scene(_copy_scene(scene_dir, tmp_path / "conf"))
    for fr in s.frames:
        write_png(s.root / "conf" / f"{fr.name}.png", np.zeros((32, 32), np.uint8))
        fr.extra["label_confidence_path"] = f"conf/{fr.name}.png"
    save_scene(s)
    fit(s.root, tmp_path / "r", small_cfg(steps=3), write_outputs=False)
    assert all(r["sem_loss"] == 0.0 for r in _log(tmp_path / "r"))  # zero confidence everywhere: no CE
    write_png(s.root / "conf" / f"{s.frames[0].name}.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(LabelsplatError, match="confidence map size"):
        fit(s.root, tmp_path / "r2", small_cfg(steps=3))


def test_point_cloud_init_batches_and_empty_scene(scene_dir, tmp_path):
    from plyfile import PlyData, PlyElement

    s = load_scene(_copy_scene(scene_dir, tmp_path / "pc"))
    rng = np.random.default_rng(0)
    d = rng.normal(size=(120, 3))
    pts = CENTER + RADIUS * d / np.linalg.norm(d, axis=1, keepdims=True)
    v = np.array([tuple(p) for p in pts], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(v, "vertex")]).write(str(s.root / "points.ply"))
    s.ply_file_path = "points.ply"
    save_scene(s)
    res = fit(s.root, tmp_path / "r", small_cfg(steps=2, batch_size=2), write_outputs=False)
    ck = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert ck["meta"]["init_source"] == "point cloud points.ply"
    assert res.model.num_gaussians == 120  # no densification in 2 steps
    # the initial means are the PLY's points mapped into the normalised frame
    init = fit(s.root, tmp_path / "r0", small_cfg(steps=2), stop_after=0)
    np.testing.assert_allclose(init.norm.to_scene(init.model.params["means"].detach().numpy()), pts, atol=1e-3)
    # a scene without frames
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "transforms.json").write_text('{"label_scheme": "celebamask19-zll", "frames": []}')
    with pytest.raises(LabelsplatError, match="zero frames"):
        fit(tmp_path / "empty", tmp_path / "r2", small_cfg())


def test_semantic_grad_none_keeps_the_rgb_only_geometry(scene_dir, tmp_path):
    """With semantic_grad=none the labels never move the geometry (nor its densification):
    the geometry is bitwise the RGB-only (K = 0) fit's; with full it differs."""
    cfg = dict(steps=12, refine_every=4)
    rgb = fit(scene_dir, tmp_path / "rgb", small_cfg(semantics=False, **cfg), write_outputs=False).model.params
    none = fit(scene_dir, tmp_path / "none", small_cfg(semantic_grad="none", **cfg), write_outputs=False).model.params
    full = fit(scene_dir, tmp_path / "full", small_cfg(semantic_grad="full", **cfg), write_outputs=False).model.params
    for k in ("means", "scales", "quats", "opacities", "sh0"):
        assert torch.equal(rgb[k], none[k]), k
    assert rgb["means"].shape != full["means"].shape or not torch.equal(rgb["means"], full["means"])


def test_fast_preset_takes_the_foreground_undilated(scene_dir):
    """A dilated foreground adds a ring of backdrop that the fit paints with Gaussians; the fast
    preset takes the foreground undilated (here, without mask files, the labels' non-background)."""
    from labelsplat.config import PRESETS
    from labelsplat.splat import load_views

    scene = load_scene(scene_dir)
    fast = load_views(scene, PRESETS["fast"].fit, 19)
    for lab, m in zip(fast.labels, fast.masks):
        assert np.array_equal(m, lab != 0)
    wide = load_views(scene, small_cfg(mask_dilate=0.1), 19)
    assert all(w.sum() > m.sum() and (w | m).sum() == w.sum() for w, m in zip(wide.masks, fast.masks))


def test_load_views_on_threads_keeps_frame_order_and_reports_the_first_bad_frame(tmp_path):
    from fit_scene import make_scene

    from labelsplat.scene import load_scene
    from labelsplat.config import PRESETS
    from labelsplat.splat import load_views

    root = make_scene(tmp_path / "s", n_views=6, res=32)
    views = load_views(load_scene(root), PRESETS["micro"].fit, 19)
    assert views.names == [f"view_{i:02d}" for i in range(6)]
    assert views.label_files == [str(root / "labels" / f"view_{i:02d}.png") for i in range(6)]
    # two broken frames: the error names the first one in frame order
    (root / "images" / "view_02.png").write_bytes(b"not a png")
    (root / "images" / "view_04.png").unlink()
    with pytest.raises(LabelsplatError) as e:
        load_views(load_scene(root), PRESETS["micro"].fit, 19)
    assert "view_02.png" in str(e.value)


def test_background_import_is_skipped_for_loaded_modules():
    from labelsplat.splat.fit import _import_in_background

    assert _import_in_background("json") is None
    th = _import_in_background("labelsplat_no_such_module_xyz")  # a failing import stays silent
    th.join(5)
    assert not th.is_alive()


def test_scaled_semantic_grad_as_a_loss_weight_matches_the_literal_form(scene_dir, tmp_path, monkeypatch):
    """scaled:f realised as a semantic-loss weight (the gsplat path) gives the same fit as the
    literal gradient scaling (Adam is invariant to the scale of a gradient): checked on the CPU
    backend, both ways, with densification in the window."""
    from labelsplat.splat import optim

    assert optim.semantic_grad_plan(0.1, "gsplat", 19) == (1.0, 0.1)
    assert optim.semantic_grad_plan(0.1, "cpu", 19) == (0.1, 1.0)
    assert optim.semantic_grad_plan(0.0, "gsplat", 19) == (0.0, 1.0)  # none stays in the renderer
    assert optim.semantic_grad_plan(1.0, "gsplat", 19) == (1.0, 1.0)
    assert optim.semantic_grad_plan(0.1, "gsplat", 0) == (0.1, 1.0)
    cfg = small_cfg(steps=12, refine_every=4, semantic_grad="scaled:0.1", sem_warmup=0)
    literal = fit(scene_dir, tmp_path / "literal", cfg, write_outputs=False).model.params
    monkeypatch.setattr(optim, "SCALE_BY_LOSS_BACKENDS", frozenset({"cpu"}))
    by_loss = fit(scene_dir, tmp_path / "loss", cfg, write_outputs=False).model.params
    full = fit(scene_dir, tmp_path / "full", small_cfg(steps=12, refine_every=4, semantic_grad="full",
                                                         sem_warmup=0), write_outputs=False).model.params
    for k in ("means", "scales", "quats", "opacities", "sh0", "sem"):
        assert literal[k].shape == by_loss[k].shape, k
        err = float((literal[k] - by_loss[k]).detach().abs().max())
        assert err <= 1e-4 * max(1.0, float(literal[k].detach().abs().max())), (k, err)
    # and the test can tell: the full-gradient fit is measurably different
    assert full["means"].shape != literal["means"].shape or \
        float((full["means"] - literal["means"]).detach().abs().max()) > 1e-3
