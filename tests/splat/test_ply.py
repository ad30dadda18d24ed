"""3DGS PLY: Inria property layout, scene units, round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.splat.model import GaussianModel
from labelsplat.splat.normalize import Normalization
from labelsplat.splat.ply import load_ply, save_ply


def _model(K, deg, n=40):
    rng = np.random.default_rng(1)
    m = GaussianModel.from_points(rng.normal(size=(n, 3)), rng.uniform(size=(n, 3)),
                                  rng.integers(0, max(K, 1), size=n) if K else None, sh_degree=deg, num_classes=K)
    with torch.no_grad():
        m.params["shN"].normal_()
        m.params["quats"].normal_()
        m.params["sem"].normal_()
    m.n_views_seen = torch.tensor(rng.integers(0, 9, size=n), dtype=torch.int32)
    return m


@pytest.mark.parametrize("K,deg", [(19, 3), (0, 0), (3, 1)])
def test_ply_roundtrip_in_scene_units(tmp_path, K, deg):
    from plyfile import PlyData

    m = _model(K, deg)
    norm = Normalization((100.0, -20.0, 5.0), 80.0)
    path = save_ply(tmp_path / "pc.ply", m, norm)
    names = PlyData.read(str(path))["vertex"].data.dtype.names
    M = (deg + 1) ** 2 - 1
    head = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(3 * M)]
    head += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert list(names[: len(head)]) == head  # the Inria order viewers expect
    assert ("label" in names) == (K > 0) and sum(n.startswith("sem_") for n in names) == K
    back = load_ply(path)
    p = {k: v.detach().numpy() for k, v in m.params.items()}
    assert back["sh_degree"] == deg
    np.testing.assert_allclose(back["means"], p["means"] * 80.0 + [100.0, -20.0, 5.0], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(back["scales"], p["scales"] + np.log(80.0), atol=1e-5)
    q = p["quats"] / np.linalg.norm(p["quats"], axis=1, keepdims=True)
    np.testing.assert_allclose(back["quats"], q, atol=1e-6)
    np.testing.assert_allclose(back["opacities"], p["opacities"], atol=1e-6)
    np.testing.assert_allclose(back["sh0"], p["sh0"], atol=1e-6)
    np.testing.assert_allclose(back["shN"], p["shN"], atol=1e-6)  # channel-major f_rest undone
    np.testing.assert_allclose(back["sem"], p["sem"], atol=1e-6)
    np.testing.assert_array_equal(back["n_views_seen"], m.n_views_seen.numpy())
    if K:
        np.testing.assert_array_equal(back["label"], p["sem"].argmax(1))


def test_f_rest_is_channel_major(tmp_path):
    from plyfile import PlyData

    m = _model(0, 1, n=2)
    with torch.no_grad():
        m.params["shN"][:] = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])  # (M=3 bases, RGB)
    v = PlyData.read(str(save_ply(tmp_path / "a.ply", m, Normalization.identity())))["vertex"]
    got = [float(v[f"f_rest_{i}"][0]) for i in range(9)]
    assert got == [1.0, 4.0, 7.0, 2.0, 5.0, 8.0, 3.0, 6.0, 9.0]  # all R, then all G, then all B


def test_load_ply_rejects_non_gaussian_ply(tmp_path):
    from plyfile import PlyData, PlyElement

    v = np.array([(0.0, 1.0, 2.0)], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "p.ply"))
    with pytest.raises(LabelsplatError, match="not a 3DGS PLY"):
        load_ply(tmp_path / "p.ply")
    with pytest.raises(LabelsplatError, match="not found"):
        load_ply(tmp_path / "none.ply")
