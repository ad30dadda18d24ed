"""Label extraction: argmax of hand-built logits, palette nearest / k-means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.extract import default_sigma, extract_argmax, extract_palette
from labelsplat.schemes import get_scheme

SCHEME = get_scheme("celebamask19-zll")


def test_argmax_on_hand_built_logits():
    logits = np.zeros((1, 2, 2, 3), dtype=np.float32)
    logits[0, 0, 0] = [0.0, 2.0, 0.0]          # class 1
    logits[0, 0, 1] = [0.0, 0.0, math.log(3)]  # class 2, p = 3/5
    logits[0, 1, 0] = [1.0, 1.0, 1.0]          # uniform: tie -> first index, p = 1/3
    logits[0, 1, 1] = [0.0, 5.0, 0.0]          # class 1 but alpha low -> background
    alpha = np.array([[[1.0, 0.9], [0.6, 0.2]]], dtype=np.float32)
    r = extract_argmax(logits, alpha, alpha_threshold=0.5)
    assert r.labels.dtype == np.uint8 and r.labels.shape == (1, 2, 2)
    assert r.labels.tolist() == [[[1, 2], [0, 0]]]
    e2 = math.exp(2)
    assert r.confidence[0, 0, 0] == pytest.approx(e2 / (e2 + 2), rel=1e-5)
    assert r.confidence[0, 0, 1] == pytest.approx(0.6, rel=1e-5)
    assert r.confidence[0, 1, 0] == pytest.approx(1 / 3, rel=1e-5)
    assert r.entropy[0, 1, 0] == pytest.approx(math.log(3), rel=1e-5)
    p = np.array([0.2, 0.2, 0.6])
    assert r.entropy[0, 0, 1] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-5)
    # low alpha: background with confidence 1 - alpha and binary entropy of alpha
    assert r.confidence[0, 1, 1] == pytest.approx(0.8, rel=1e-5)
    assert r.entropy[0, 1, 1] == pytest.approx(-(0.2 * math.log(0.2) + 0.8 * math.log(0.8)), rel=1e-5)


def test_argmax_torch_equals_numpy_and_chunks():
    g = np.random.default_rng(0)
    logits = g.normal(size=(5, 6, 7, 19)).astype(np.float32)
    alpha = g.uniform(size=(5, 6, 7)).astype(np.float32)
    a = extract_argmax(logits, alpha, chunk=2)
    b = extract_argmax(torch.from_numpy(logits), torch.from_numpy(alpha), chunk=8)
    assert np.array_equal(a.labels, b.labels)
    assert np.allclose(a.confidence, b.confidence) and np.allclose(a.entropy, b.entropy)
    fg = alpha >= 0.5
    assert np.array_equal(a.labels[fg], logits.argmax(-1)[fg]) and (a.labels[~fg] == 0).all()
    none = extract_argmax(logits, None)
    assert np.array_equal(none.labels, logits.argmax(-1))
    assert ((none.confidence > 0) & (none.confidence <= 1)).all()


def test_argmax_rejects_bad_shapes_and_values():
    with pytest.raises(LabelsplatError, match="B, H, W, K"):
        extract_argmax(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(LabelsplatError, match="alpha"):
        extract_argmax(np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 4, 5), np.float32))
    bad = np.zeros((1, 2, 2, 3), np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(LabelsplatError, match="NaN"):
        extract_argmax(bad)
    with pytest.raises(LabelsplatError, match="background_index"):
        extract_argmax(np.zeros((1, 2, 2, 3), np.float32), background_index=3)


def _palette_image(ids: np.ndarray) -> np.ndarray:
    return SCHEME.palette_array()[ids].astype(np.float32) / 255.0


def test_palette_nearest_exact_and_midpoint_confidence():
    ids = np.arange(19).reshape(1, 1, 19)
    r = extract_palette(_palette_image(ids), SCHEME, "nearest")
    assert np.array_equal(r.labels, ids)
    assert (r.confidence > 0.998).all()
    # uint8 input gives the same labels
    u8 = SCHEME.palette_array()[ids]
    assert np.array_equal(extract_palette(u8, "celebamask19-zll").labels, ids)
    # half-way between the two closest palette colours: confidence ~ 0.5
    pal = SCHEME.palette_array().astype(np.float32) / 255.0
    d = np.linalg.norm(pal[:, None] - pal[None], axis=-1) + np.eye(19) * 9
    i, j = np.unravel_index(d.argmin(), d.shape)
    mid = ((pal[i] + pal[j]) / 2).reshape(1, 1, 1, 3)
    rm = extract_palette(mid, SCHEME)
    assert rm.labels[0, 0, 0] in (i, j)
    assert rm.confidence[0, 0, 0] == pytest.approx(0.5, abs=0.01)
    assert default_sigma(pal) == pytest.approx(d.min() / 4)


def test_palette_kmeans_absorbs_a_colour_shift():
    """Class a's rendered colour is shifted 40% towards its nearest palette neighbour n (also
    present, unshifted), plus noise: per-pixel nearest colour often says n for a's pixels,
    k-means centres follow the shift (and the shifted centre still maps to a)."""
    pal = SCHEME.palette_array().astype(np.float32) / 255.0
    a = SCHEME.index("skin")
    d = np.linalg.norm(pal - pal[a], axis=1)
    d[a] = np.inf
    n = int(d.argmin())
    g = np.random.default_rng(0)
    ids = np.where(np.arange(64 * 64).reshape(1, 64, 64) % 2 == 0, a, n)
    img = pal[ids]
    img[ids == a] = 0.6 * pal[a] + 0.4 * pal[n]
    img = np.clip(img + g.normal(scale=0.04, size=img.shape), 0, 1).astype(np.float32)
    near = extract_palette(img, SCHEME, "nearest")
    km = extract_palette(img, SCHEME, "kmeans", seed=0)
    err_near = (near.labels != ids).mean()
    err_km = (km.labels != ids).mean()
    assert err_near > 0.05
    assert err_km < 0.02 and err_km < err_near / 3


def test_palette_alpha_and_errors():
    ids = np.full((2, 3, 3), SCHEME.index("nose"))
    alpha = np.ones((2, 3, 3), np.float32)
    alpha[1] = 0.1
    r = extract_palette(_palette_image(ids), SCHEME, alpha=alpha)
    assert (r.labels[0] == ids[0]).all() and (r.labels[1] == 0).all()
    assert r.confidence[1] == pytest.approx(0.9)
    with pytest.raises(LabelsplatError, match="method"):
        extract_palette(_palette_image(ids), SCHEME, "median")
    with pytest.raises(LabelsplatError, match="B, H, W, 3"):
        extract_palette(np.zeros((3, 3, 3), np.float32), SCHEME)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_extraction_on_cuda_tensors_matches_cpu():
    g = np.random.default_rng(1)
    logits = g.normal(size=(3, 16, 16, 19)).astype(np.float32)
    alpha = g.uniform(size=(3, 16, 16)).astype(np.float32)
    cpu = extract_argmax(logits, alpha)
    gpu = extract_argmax(torch.from_numpy(logits).cuda(), torch.from_numpy(alpha).cuda())
    assert np.array_equal(cpu.labels, gpu.labels) and np.allclose(cpu.confidence, gpu.confidence, atol=1e-5)
    rgb = _palette_image(g.integers(0, 19, (2, 8, 8)))
    assert np.array_equal(extract_palette(rgb, SCHEME, "kmeans").labels,
                          extract_palette(torch.from_numpy(rgb).cuda(), SCHEME, "kmeans").labels)
