"""A tiny synthetic face-like dataset in the dataset layout of docs/design.md (session-cached)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

# celebamask19-zll ids
BG, SKIN, L_EYE, R_EYE, NOSE = 0, 1, 4, 5, 10
COLORS = {BG: (30, 40, 60), SKIN: (220, 170, 140), L_EYE: (40, 160, 40), R_EYE: (160, 40, 160), NOSE: (200, 60, 40)}


def make_face(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A disc of skin with two eyes (subject's left eye on the image's right) and a nose."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    cx, cy = size / 2 + rng.uniform(-4, 4), size / 2 + rng.uniform(-4, 4)
    r = size * rng.uniform(0.3, 0.4)
    lab = np.zeros((size, size), np.uint8)
    lab[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = SKIN
    er = r * 0.18
    lab[(xx - (cx + 0.4 * r)) ** 2 + (yy - (cy - 0.25 * r)) ** 2 < er**2] = L_EYE
    lab[(xx - (cx - 0.4 * r)) ** 2 + (yy - (cy - 0.25 * r)) ** 2 < er**2] = R_EYE
    lab[(np.abs(xx - cx) < 0.12 * r) & (yy > cy) & (yy < cy + 0.35 * r)] = NOSE
    rgb = np.zeros((size, size, 3), np.float64)
    for k, c in COLORS.items():
        rgb[lab == k] = c
    rgb += rng.normal(0, 6, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), lab


def write_dataset(root, n: int, seed: int, size: int = 64, scheme: str = "celebamask19-zll", extra_view=None):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    views = []
    for i in range(n):
        rgb, lab = make_face(rng, size)
        name = f"v{i:03d}"
        Image.fromarray(rgb).save(root / "images" / f"{name}.png")
        Image.fromarray(lab).save(root / "labels" / f"{name}.png")
        views.append({"name": name, "image": f"images/{name}.png", "label": f"labels/{name}.png",
                      "source_scene": "synthetic", "yaw": float(i), "pitch": 0.0, "accepted": True,
                      "split": "train", "mean_confidence": 1.0})
    if extra_view is not None:
        views.append(extra_view)
    (root / "manifest.json").write_text(json.dumps({"schema_version": 1, "label_scheme": scheme, "views": views,
                                                     "config": {"note": "extra keys are ignored"}}))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "faces"
    return write_dataset(root, 8, seed=1, extra_view={"name": "bad", "accepted": False, "reason": "low confidence"})


@pytest.fixture(scope="session")
def tiny_dataset_b(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsb") / "faces_b"
    return write_dataset(root, 4, seed=2)


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every train test runs with one torch thread (the shared fixture in tests/conftest.py)."""
    yield
