"""The paper's palette variant of the semantic fit (``semantic_target="palette"``) on a tiny procedural head.

The semantic head has 3 channels fitted to the palette-coloured labels with an L1 loss; labels
come back as the nearest palette colour. The logit path is covered by ``test_fit.py`` (its
resume test is bitwise) and must stay unchanged.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fit_scene import cached_scene
from labelsplat.errors import LabelsplatError
from labelsplat.io import read_label
from labelsplat.scene import load_scene
from labelsplat.schemes import get_scheme
from labelsplat.config import fit_preset as make_config
from labelsplat.splat import PaletteHead, fit, load_checkpoint
from labelsplat.splat.config import FitConfig
from labelsplat.splat.losses import palette_accuracy, palette_loss, palette_nearest
from labelsplat.splat.model import GaussianModel

SCHEME = "celebamask19-zll"
PAL = get_scheme(SCHEME).palette_array().astype(np.float32) / 255.0


def small_cfg(**kw):
    base = dict(steps=16, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=4,
                checkpoint_every=8, log_every=1, sh_degree_interval=8, semantic_target="palette")
    base.update(kw)
    return make_config("micro", **base)


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


@pytest.fixture(scope="module")
def fitted(scene_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("palrun") / "run"
    res = fit(scene_dir, run, small_cfg(steps=100, refine_every=10, checkpoint_every=50))
    return run, res


# ----------------------------------------------------------------------------- pure pieces
def test_config_field_validated_and_old_configs_load_as_logits():
    assert make_config("micro").semantic_target == "logits"  # the default path is unchanged
    assert make_config("micro", semantic_target="palette").semantic_target == "palette"
    with pytest.raises(LabelsplatError, match="semantic_target"):
        make_config("micro", semantic_target="colours")
    d = make_config("tiny").to_dict()
    del d["semantic_target"]  # a run written before the field existed
    assert FitConfig.from_dict(d).semantic_target == "logits"


def test_palette_loss_masks_ignore_and_is_zero_on_target():
    rng = np.random.default_rng(0)
    pal = torch.tensor(PAL)
    lab = torch.tensor(rng.integers(0, 19, size=(2, 5, 6)))
    lab[0, 0, :3] = 255
    exact = pal[lab.clamp_max(18)].clone()
    exact[0, 0, :3] = torch.tensor([0.3, 0.9, 0.1])  # anything at ignored pixels
    assert float(palette_loss(exact, lab, pal)) == 0.0
    off = exact + 0.1
    off[0, 0, :3] = 5.0  # ignored pixels never count
    assert abs(float(palette_loss(off, lab, pal)) - 0.1) < 1e-6
    assert palette_accuracy(exact, lab, pal) == 1.0
    assert torch.equal(palette_nearest(pal + 0.01, pal), torch.arange(19))
    allign = torch.full((1, 2, 2), 255)
    assert float(palette_loss(exact[:1, :2, :2], allign, pal)) == 0.0
    with pytest.raises(ValueError):
        palette_loss(exact[..., :2], lab, pal)


def test_model_palette_init_and_state_round_trip():
    rng = np.random.default_rng(1)
    labels = np.array([0, 1, 10, 17, -1, 3])
    m = GaussianModel.from_points(rng.normal(size=(6, 3)), rng.uniform(size=(6, 3)), labels, sh_degree=1,
                                  num_classes=19, head=PaletteHead(PAL))
    assert m.sem_channels == 3 and tuple(m.params["sem"].shape) == (6, 3)
    np.testing.assert_allclose(m.params["sem"].detach().numpy()[[0, 1, 2, 3, 5]], PAL[[0, 1, 10, 17, 3]])
    np.testing.assert_allclose(m.params["sem"].detach().numpy()[4], 0.5)  # unknown label: grey
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    back = GaussianModel.from_state_dict(torch.load(buf, weights_only=True))
    assert back.semantic_target == "palette" and torch.equal(back.head.palette, m.head.palette)
    # a logit model's state has no new keys (old checkpoints and new ones look the same) and loads as logits
    lm = GaussianModel.from_points(rng.normal(size=(6, 3)), rng.uniform(size=(6, 3)), labels, sh_degree=1,
                                   num_classes=19)
    st = lm.state_dict()
    assert "semantic_target" not in st and "palette" not in st
    assert GaussianModel.from_state_dict(st).semantic_target == "logits"
    with pytest.raises(LabelsplatError, match="palette"):
        PaletteHead(None)  # no palette given
    with pytest.raises(LabelsplatError, match="classes"):
        GaussianModel(m.params, 1, 19, head=PaletteHead(PAL[:5]))  # a palette of 5 colours for 19 classes


# ----------------------------------------------------------------------------- the fit
def test_palette_fit_lowers_its_loss_and_recovers_the_labels(fitted, scene_dir):
    run, res = fitted
    log = _log(run)
    assert [r["step"] for r in log] == list(range(100))
    first = np.mean([r["sem_loss"] for r in log[:5]])
    last = np.mean([r["sem_loss"] for r in log[-5:]])
    assert last < 0.5 * first, (first, last)
    assert np.mean([r["rgb_loss"] for r in log[-5:]]) < np.mean([r["rgb_loss"] for r in log[:5]])
    assert log[-1]["label_acc"] > log[0]["label_acc"]
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"]["semantic_target"] == "palette" and meta["num_classes"] == 19
    assert meta["summary"]["train_view_label_acc_vs_input"] >= 0.9, meta["summary"]
    names = [f.name for f in load_scene(scene_dir).frames]
    for sub in ("rgb", "seg_rgb", "labels", "confidence"):
        assert sorted(p.stem for p in (run / "renders" / sub).glob("*.png")) == sorted(names), sub
    lab = read_label(run / "renders" / "labels" / f"{names[0]}.png", 19)
    assert lab[0, 0] == 0 and set(np.unique(lab)) >= {0, 1}
    ck = load_checkpoint(run / "checkpoint.pt")
    assert ck["model"]["semantic_target"] == "palette" and tuple(ck["model"]["params"]["sem"].shape[1:]) == (3,)


def test_render_cameras_palette_keys_and_labels(fitted, scene_dir):
    from labelsplat.extract import extract_palette
    from labelsplat.scene import look_at
    from labelsplat.splat import load_run, render_cameras

    run, _ = fitted
    fr = load_run(run)
    assert fr.semantic_target == "palette" and fr.model.sem_channels == 3
    scene = load_scene(scene_dir)
    away = scene.cameras[0]
    # a camera looking away from the head: empty space renders as class 0's palette colour
    eye = away.center
    away = look_at(eye, eye + (eye - np.asarray(scene.head_frame.center)), [0.0, 1.0, 0.0], away.fx, away.fy,
                   away.width, away.height)
    outs = render_cameras(fr, scene.cameras + [away], batch_size=4)
    o = outs[0]
    assert "logits" not in o
    assert set(o) == {"rgb", "seg_rgb", "labels", "confidence", "depth", "alpha", "views_seen", "low_view_fraction"}
    assert o["seg_rgb"].shape == (32, 32, 3) and o["seg_rgb"].dtype == np.float32
    assert o["seg_rgb"].min() >= 0.0 and o["seg_rgb"].max() <= 1.0
    assert o["labels"].dtype == np.uint8 and o["confidence"].shape == (32, 32)
    ex = extract_palette(np.stack([x["seg_rgb"] for x in outs]), SCHEME, "nearest")
    assert all(np.array_equal(ex.labels[i], outs[i]["labels"]) for i in range(len(outs)))
    np.testing.assert_allclose(outs[-1]["seg_rgb"], PAL[0][None, None].repeat(32, 0).repeat(32, 1), atol=1e-6)
    assert (outs[-1]["labels"] == 0).all()
    agree = []
    for f, out in zip(scene.frames, outs):
        lab = read_label(scene.path(f.label_path), 19)
        agree.append((out["labels"] == lab).mean())
    assert np.mean(agree) >= 0.9, agree


def test_palette_ply_round_trip(fitted):
    from labelsplat.splat.ply import load_ply

    run, res = fitted
    ply = load_ply(run / "point_cloud.ply")
    sem = res.model.params["sem"].detach().numpy()
    assert ply["sem"].shape == (res.model.num_gaussians, 0)  # no sem_* properties in palette mode
    np.testing.assert_array_equal(ply["seg_rgb"].astype(np.float32), sem)
    nearest = ((sem[:, None, :].astype(np.float64) - PAL[None].astype(np.float64)) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(ply["label"], nearest)
    assert (ply["n_views_seen"] >= 0).all() and ply["n_views_seen"].max() <= 6
    assert set(np.unique(ply["label"])) & {1, 10, 17}


def test_palette_resume_is_bitwise(scene_dir, tmp_path):
    full = fit(scene_dir, tmp_path / "full", small_cfg())
    part = tmp_path / "part"
    fit(scene_dir, part, small_cfg(), stop_after=8)
    res = fit(scene_dir, part, None, resume=True)
    for k, v in full.model.params.items():
        assert torch.equal(v, res.model.params[k]), k
    def strip(log):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in log]

    assert strip(_log(part)) == strip(_log(tmp_path / "full"))
    # resuming a palette run with a logits configuration is refused
    shutil.rmtree(part / "ckpt", ignore_errors=True)
    (part / "run.json").unlink()
    with pytest.raises(LabelsplatError, match="semantic_target"):
        fit(scene_dir, part, small_cfg(semantic_target="logits"), resume=True)


def test_fit_cli_semantic_target(cli, scene_dir, tmp_path):
    run = tmp_path / "run"
    r = cli("fit", scene_dir, "--out", run, "--preset", "micro", "--steps", "4", "--device", "cpu", "--quiet",
            "--semantic-target", "palette")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["config"]["semantic_target"] == "palette"
    assert (run / "renders" / "seg_rgb").is_dir()
    r = cli("fit", scene_dir, "--out", tmp_path / "bad", "--preset", "micro", "--semantic-target", "colours")
    assert r.exit_code == 2 and "semantic_target" in r.output and "Traceback" not in r.output
