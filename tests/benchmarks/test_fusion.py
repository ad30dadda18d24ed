"""The fitted fusion bound of the quality benchmark: input labels fused per mesh triangle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import refine_quality as rq
from benchmarks.fusion import fused_label_maps
from labelsplat.io import read_label
from labelsplat.scene import load_scene
from labelsplat.synth import SynthConfig, synthesize


@pytest.fixture(scope="module")
def noisy_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    synthesize(root / "noisy", SynthConfig(identities=1, views=8, rig="facescape", resolution=48,
                                           noise="simulated:high", seed=0), overwrite=True)
    return next(p for p in sorted((root / "noisy").iterdir()) if (p / "transforms.json").is_file())


def _agreement(scene, maps) -> float:
    hits = total = 0
    for fr, lab in zip(scene.frames, maps):
        gt = read_label(scene.path(fr.gt_label_path), shape=lab.shape)
        hits += int((lab == gt).sum())
        total += lab.size
    return hits / total


def test_fused_labels_agree_with_the_exact_ones_more_than_the_noisy_labels(noisy_scene):
    scene = load_scene(noisy_scene)
    noisy = [read_label(scene.path(fr.label_path)) for fr in scene.frames]
    fused = fused_label_maps(scene)
    assert [m.shape for m in fused] == [m.shape for m in noisy] and all(m.dtype == np.uint8 for m in fused)
    assert _agreement(scene, fused) > _agreement(scene, noisy)


def test_the_benchmark_fits_the_fused_labels_as_a_labelling(noisy_scene, tmp_path):
    out = tmp_path / "rq.json"
    args = ["--preset", "micro", "--views", "6", "--resolution", "48", "--novel-views", "3", "--identities", "1",
            "--seeds", "0", "--only-main", "--no-ceiling", "--fusion-bound", "--out", str(out),
            "--workdir", str(tmp_path / "work")]
    assert rq.main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["fusion_bound"] is True
    (cell,) = doc["cells"].values()
    assert {"initial", "refined", "fusion", "fusion_raw"} <= set(cell["labellings"])
    assert [f["labelling"] for f in cell["fits"]] == ["refined", "fusion"]
    assert "fusion" in doc["summary"]["main"]

    # a seed run without the bound merges in; the file then says which seeds measured it
    other = tmp_path / "rq_s1.json"
    no_bound = [a for a in args if a != "--fusion-bound"]
    no_bound[no_bound.index("--seeds") + 1] = "1"
    no_bound[no_bound.index("--out") + 1] = str(other)
    assert rq.main(no_bound) == 0
    assert rq.main(["--out", str(out), "--merge", str(other)]) == 0
    merged = json.loads(out.read_text())
    assert merged["settings"]["seeds"] == [0, 1] and merged["settings"]["fusion_bound_seeds"] == [0]
    assert merged["summary"]["main"]["fusion"]["n_seeds"] == 1
    assert merged["summary"]["main"]["refined"]["n_seeds"] == 2
    # another configuration is refused
    doc = json.loads(other.read_text())
    doc["settings"]["novel_views"] = 4
    other.write_text(json.dumps(doc))
    assert rq.main(["--out", str(out), "--merge", str(other)]) == 2
