"""Colour-plausibility weights of input labels (splat/colour_weights.py) and FitConfig.label_colour_weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fit_scene import cached_scene
from labelsplat.errors import LabelsplatError
from labelsplat.splat import fit
from labelsplat.splat.colour_weights import colour_label_weights
from labelsplat.config import fit_preset as make_config


def _two_colour_views(n=3, size=32, wrong_frac=0.1, seed=0):
    """Left half red (class 1), right half blue (class 2); a fraction of red pixels labelled 2."""
    rng = np.random.default_rng(seed)
    imgs, labs, wrong = [], [], []
    for _ in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        img[:, : size // 2] = (200, 30, 30)
        img[:, size // 2 :] = (30, 30, 200)
        img = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
        lab = np.ones((size, size), np.uint8)
        lab[:, size // 2 :] = 2
        w = (rng.random((size, size)) < wrong_frac) & (lab == 1)
        lab[w] = 2
        imgs.append(img)
        labs.append(lab)
        wrong.append(w)
    return imgs, labs, wrong


def test_implausible_labels_get_the_floor():
    imgs, labs, wrong = _two_colour_views()
    W = colour_label_weights(imgs, labs, 3, floor=0.1, full_at=1.0, min_pixels=10)
    w = np.concatenate([x.ravel() for x in W])
    bad = np.concatenate([x.ravel() for x in wrong])
    assert w.dtype == np.float32 and W[0].shape == labs[0].shape
    assert w[bad].max() < 0.3 and np.median(w[bad]) == pytest.approx(0.1, abs=0.05)
    assert w[~bad].min() > 0.9  # red labelled 1 and blue labelled 2 are plausible
    # full_at: labels at least that plausible relative to the best class keep weight 1
    W_half = colour_label_weights(imgs, labs, 3, floor=0.0, full_at=0.5, min_pixels=10)
    W_one = colour_label_weights(imgs, labs, 3, floor=0.0, full_at=1.0, min_pixels=10)
    for a, b in zip(W_half, W_one):
        np.testing.assert_allclose(a, np.minimum(1.0, 2.0 * b), rtol=1e-5, atol=1e-6)
    # floor 1 switches the weighting off; ignore labels and pixels outside the mask weigh 1
    assert all(np.all(x == 1.0) for x in colour_label_weights(imgs, labs, 3, floor=1.0, min_pixels=10))
    labs_ign = [np.where(wr, 255, lab).astype(np.uint8) for lab, wr in zip(labs, wrong)]
    W_ign = colour_label_weights(imgs, labs_ign, 3, floor=0.1, min_pixels=10)
    assert all(np.all(x[wr] == 1.0) for x, wr in zip(W_ign, wrong))
    masks = [np.zeros(lab.shape, bool) for lab in labs]
    assert all(np.all(x == 1.0) for x in colour_label_weights(imgs, labs, 3, masks=masks, min_pixels=10))


def test_bad_inputs():
    imgs, labs, _ = _two_colour_views(n=1)
    with pytest.raises(ValueError, match="same length"):
        colour_label_weights(imgs, labs * 2, 3)
    with pytest.raises(ValueError, match="does not match"):
        colour_label_weights([imgs[0][:8]], labs, 3)
    with pytest.raises(ValueError, match="bins"):
        colour_label_weights(imgs, labs, 3, bins=1)
    with pytest.raises(ValueError, match="full_at"):
        colour_label_weights(imgs, labs, 3, full_at=0.0)
    with pytest.raises(LabelsplatError, match="label_colour_weight"):
        make_config("micro", label_colour_weight=1.5)


def test_fit_with_colour_weights(tmp_path_factory, tmp_path):
    scene_dir = cached_scene(tmp_path_factory, n_views=6, res=32, label_noise=0.2)
    kw = dict(steps=12, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=4,
              checkpoint_every=12, log_every=4, sh_degree_interval=8)
    plain = fit(scene_dir, tmp_path / "a", make_config("micro", **kw), write_outputs=False).model
    res = fit(scene_dir, tmp_path / "b", make_config("micro", label_colour_weight=0.1, **kw), write_outputs=True)
    run = __import__("json").loads((tmp_path / "b" / "run.json").read_text())
    assert run["config"]["label_colour_weight"] == 0.1
    assert not torch.equal(plain.params["sem"], res.model.params["sem"])
