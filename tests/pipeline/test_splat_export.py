"""labelsplat export: the padded PLY loads like the reference 3DGS loader, ply-labels colours decode
to the palette, .splat records, one class."""

from __future__ import annotations

import numpy as np
import pytest

from labelsplat.schemes import get_scheme


def _reference_3dgs_load(path, max_sh_degree=3):
    """The reference 3DGS loader's reading of a PLY (graphdeco-inria gaussian_model.load_ply), with
    its assertions, in numpy."""
    from plyfile import PlyData

    plydata = PlyData.read(str(path))
    el = plydata.elements[0]
    xyz = np.stack([np.asarray(el[k]) for k in "xyz"], axis=1)
    opacities = np.asarray(el["opacity"])[..., np.newaxis]
    features_dc = np.stack([np.asarray(el[f"f_dc_{i}"]) for i in range(3)], axis=1)[..., None]
    extra = sorted((p.name for p in el.properties if p.name.startswith("f_rest_")), key=lambda x: int(x.split("_")[-1]))
    assert len(extra) == 3 * (max_sh_degree + 1) ** 2 - 3
    features_extra = np.stack([np.asarray(el[n]) for n in extra], axis=1)
    features_extra = features_extra.reshape((features_extra.shape[0], 3, (max_sh_degree + 1) ** 2 - 1))
    scale_names = sorted((p.name for p in el.properties if p.name.startswith("scale_")), key=lambda x: int(x.split("_")[-1]))
    rot_names = sorted((p.name for p in el.properties if p.name.startswith("rot")), key=lambda x: int(x.split("_")[-1]))
    assert len(scale_names) == 3 and len(rot_names) == 4
    return xyz, features_dc, features_extra, opacities


@pytest.fixture(scope="module")
def run_dir(refined):
    return refined / "scenes" / "head_000" / "run"


def test_padded_ply_loads_in_the_reference_loader(cli, tmp_path, run_dir):
    from labelsplat.splat import load_run
    from labelsplat.splat.ply import load_ply

    r = cli("export", run_dir, "--format", "ply", "--sh-degree", "3", "--out", tmp_path / "a.ply")
    assert r.exit_code == 0, r.output
    xyz, dc, extra, _ = _reference_3dgs_load(tmp_path / "a.ply")
    run = load_run(run_dir)
    deg = run.model.sh_degree
    M = (deg + 1) ** 2 - 1
    assert deg < 3 and len(xyz) == run.model.num_gaussians
    assert np.all(extra[:, :, M:] == 0)  # zero padding beyond the run's own degree
    own = load_ply(run_dir / "point_cloud.ply")
    np.testing.assert_allclose(extra[:, :, :M].transpose(0, 2, 1), own["shN"], atol=1e-6)
    back = load_ply(tmp_path / "a.ply")
    assert back["sem"].shape[1] == run.num_classes  # the logits stay in sem_*


def test_ply_labels_colours_decode_to_the_palette(cli, tmp_path, run_dir):
    from labelsplat.splat.ply import load_ply

    r = cli("export", run_dir, "--format", "ply-labels", "--out", tmp_path / "l.ply")
    assert r.exit_code == 0, r.output
    p = load_ply(tmp_path / "l.ply")
    palette = get_scheme("celebamask19-zll").palette_array()
    rgb = p["sh0"][:, 0, :] * 0.2821 + 0.5
    np.testing.assert_allclose(rgb * 255.0, palette[p["label"]], atol=0.2)
    assert np.all(p["shN"] == 0)


def test_splat_records_and_one_class(cli, tmp_path, run_dir):
    from labelsplat.splat.ply import load_ply

    r = cli("export", run_dir, "--format", "splat", "--out", tmp_path / "s.splat", "--class", "hair")
    assert r.exit_code == 0, r.output
    own = load_ply(run_dir / "point_cloud.ply")
    hair = own["label"] == get_scheme("celebamask19-zll").index("hair")
    raw = (tmp_path / "s.splat").read_bytes()
    assert len(raw) == 32 * int(hair.sum()) > 0
    rec = np.frombuffer(raw, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    mine = {tuple(np.round(m, 3)) for m in own["means"][hair]}
    assert {tuple(np.round(m.astype(np.float64), 3)) for m in rec["pos"]} == mine
    q = (rec["rot"].astype(np.float64) - 128.0) / 128.0
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=0.03)
    assert np.all(rec["scale"] > 0)


def test_export_bad_input(cli, tmp_path, run_dir):
    r = cli("export", run_dir, "--format", "obj", "--out", tmp_path / "x.obj")
    assert r.exit_code == 2 and "unknown export format" in r.output
    r = cli("export", run_dir, "--class", "wings", "--out", tmp_path / "x.ply")
    assert r.exit_code == 2 and "no class 'wings'" in r.output
    assert not (tmp_path / "x.ply").exists() and not (tmp_path / "x.obj").exists()
    (tmp_path / "y.ply").write_text("mine")
    r = cli("export", run_dir, "--out", tmp_path / "y.ply")
    assert r.exit_code == 2 and "already exists" in r.output and (tmp_path / "y.ply").read_text() == "mine"
