"""refine_quality --no-masks: the synthetic scene without its mask files, the original untouched."""

from __future__ import annotations

import numpy as np

from benchmarks.refine_quality import _without_masks
from labelsplat.config import fit_preset
from labelsplat.scene import load_scene
from labelsplat.splat import load_views
from labelsplat.synth import SynthConfig, synthesize


def test_without_masks_takes_the_foreground_from_the_labels(tmp_path):
    synthesize(tmp_path / "noisy", SynthConfig(identities=1, views=4, rig="facescape", resolution=32,
                                               noise="simulated:high", seed=0))
    src = tmp_path / "noisy" / "head_000"
    assert all(fr.mask_path for fr in load_scene(src).frames)
    out = _without_masks(src)
    assert out != src and not (out / "masks").exists() and (src / "masks").is_dir()
    scene = load_scene(out)
    assert all(fr.mask_path is None for fr in scene.frames)
    assert all(fr.mask_path for fr in load_scene(src).frames)  # the original keeps its masks
    views = load_views(scene, fit_preset("micro", mask_dilate=0.0), 19)
    for lab, m in zip(views.labels, views.masks):
        assert np.array_equal(m, lab != 0)
    assert _without_masks(src) == out  # cached
