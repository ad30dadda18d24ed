"""The renderer: analytic footprint, CPU backend vs the frozen naive reference (images and
gradients), finite differences, geometry-gradient weights, contributions, determinism, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labelsplat.scene import look_at
from labelsplat.splat._torch_impl import project_gaussians
from labelsplat.splat.rasterize import rasterize


def _cameras(n_cams: int, W: int, H: int, dtype):
    centres = [[0.3, 0.2, 4.0], [3.0, 1.0, 2.2], [-2.5, -1.0, 2.8]]
    cams = [look_at(centres[i], [0, 0, 0], [0, 1, 0], 1.1 * W, 1.05 * W, W, H) for i in range(n_cams)]
    vm = torch.tensor(np.stack([c.w2c_opencv for c in cams]), dtype=dtype)
    Ks = torch.tensor(np.stack([c.K for c in cams]), dtype=dtype)
    return vm, Ks


def _scene(N=40, D=3, C=2, W=40, H=32, dtype=torch.float64, seed=0):
    """Random overlapping Gaussians around the origin, seen by C cameras (occlusion guaranteed)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(N, 3, generator=g, dtype=dtype) * 0.5
    quats = torch.randn(N, 4, generator=g, dtype=dtype)
    scales = torch.rand(N, 3, generator=g, dtype=dtype) * 0.15 + 0.04
    opac = torch.rand(N, generator=g, dtype=dtype) * 0.6 + 0.35
    colors = torch.randn(N, D, generator=g, dtype=dtype)
    vm, Ks = _cameras(C, W, H, dtype)
    return means, quats, scales, opac, colors, vm, Ks, W, H


def _run(backend, scene, seed=1, **kw):
    """Render, backprop a fixed random linear loss of (render, alpha); return values and grads."""
    means, quats, scales, opac, colors, vm, Ks, W, H = scene
    ps = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors)]
    render, alpha, info = rasterize(*ps, vm, Ks, W, H, backend=backend, **kw)
    info["means2d"].retain_grad()
    g = torch.Generator().manual_seed(seed)
    wr = torch.randn(render.shape, generator=g, dtype=render.dtype)
    wa = torch.randn(alpha.shape, generator=g, dtype=alpha.dtype)
    ((render * wr).sum() + (alpha * wa).sum()).backward()
    grads = {k: p.grad for k, p in zip(("means", "quats", "scales", "opacities", "colors"), ps)}
    grads["means2d"] = info["means2d"].grad
    return render.detach(), alpha.detach(), grads, info


def _assert_close(a, b, rtol, name):
    scale = max(float(b.abs().max()), 1e-12)
    err = float((a - b).abs().max())
    assert err <= rtol * scale, f"{name}: max abs err {err:.3g} vs max |ref| {scale:.3g}"


def _assert_same_run(cpu, naive) -> None:
    """Two ``_run`` results (render, alpha, grads, info) agree to float64 round-off."""
    rc, ac, gc, infoc = cpu
    rn, an, gn, infon = naive
    _assert_close(rc, rn, 1e-9, "render")
    _assert_close(ac, an, 1e-9, "alpha")
    for k in gn:
        _assert_close(gc[k], gn[k], 1e-8, f"grad {k}")
    _assert_close(infoc["contrib"], infon["contrib"], 1e-9, "contrib")
    assert torch.equal(infoc["radii"], infon["radii"])


@pytest.mark.parametrize("backend", ["naive", "cpu"])
def test_single_isotropic_gaussian_renders_its_analytic_footprint(backend):
    # camera at the origin looking down +z (OpenCV), Gaussian on the axis at depth z; the pixel
    # centre convention puts the mean exactly on the centre of pixel (8, 6)
    z, s, f, op = 5.0, 0.05, 100.0, 0.8
    W, H = 17, 13
    vm = torch.eye(4, dtype=torch.float64)[None]
    Ks = torch.tensor([[[f, 0, 8.5], [0, f, 6.5], [0, 0, 1]]], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0, z]], dtype=torch.float64)
    quats = torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64)
    scales = torch.full((1, 3), s, dtype=torch.float64)
    opac = torch.tensor([op], dtype=torch.float64)
    colors = torch.tensor([[1.0, 0.25]], dtype=torch.float64)
    eps2d = 0.3
    render, alpha, info = rasterize(means, quats, scales, opac, colors, vm, Ks, W, H,
                                    eps2d=eps2d, backend=backend)
    var = (f * s / z) ** 2 + eps2d  # EWA: J = f/z at the centre, plus the eps2d blur
    ys, xs = np.mgrid[0:H, 0:W]
    r2 = (xs + 0.5 - 8.5) ** 2 + (ys + 0.5 - 6.5) ** 2
    expected = op * np.exp(-0.5 * r2 / var)
    expected[expected < 1 / 255] = 0.0
    got = alpha[0, ..., 0].numpy()
    assert got[6, 8] == pytest.approx(op, abs=1e-12)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(render[0, ..., 0].numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(render[0, ..., 1].numpy(), 0.25 * expected, atol=1e-12)
    # expected depth channel = z wherever the Gaussian is visible
    np.testing.assert_allclose(render[0, ..., 2].numpy()[expected > 0], z, rtol=1e-12)
    assert info["radii"].dtype == torch.int32 and tuple(info["radii"].shape) == (1, 1, 2)
    ext = min(3.33, math.sqrt(2 * math.log(255 * op)))
    assert int(info["radii"][0, 0, 0]) == math.ceil(ext * math.sqrt(var))


CASES = {
    "D3": dict(D=3, C=2, bg=False, w=None),
    "D22-bg": dict(D=22, C=2, bg=True, w=None),
    "D22-bg-none": dict(D=22, C=2, bg=True, w="none"),
    "D22-bg-scaled": dict(D=22, C=3, bg=True, w="scaled"),
    "D64-bg": dict(D=64, C=1, bg=True, w=None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cpu_backend_matches_naive_reference_float64(case):
    cfg = CASES[case]
    D, C = cfg["D"], cfg["C"]
    scene = _scene(N=45, D=D, C=C, seed=len(case))
    kw = {"return_contrib": True}
    if cfg["bg"]:
        kw["backgrounds"] = torch.rand(C, D, generator=torch.Generator().manual_seed(3),
                                       dtype=torch.float64)
    if cfg["w"] is not None:
        w = torch.ones(D, dtype=torch.float64)
        w[3:] = 0.0 if cfg["w"] == "none" else 0.1
        kw["geom_grad_weights"] = w
    rn, an, gn, infon = _run("naive", scene, **kw)
    rc, ac, gc, infoc = _run("cpu", scene, **kw)
    assert rc.shape == (C, scene[8], scene[7], D + 1) and ac.shape == (C, scene[8], scene[7], 1)
    assert float(an.max()) > 0.9, "test scene should contain opaque, occluding regions"
    _assert_same_run((rc, ac, gc, infoc), (rn, an, gn, infon))


def test_cpu_backend_matches_naive_float32_with_per_camera_colors():
    scene = list(_scene(N=60, D=5, C=2, dtype=torch.float32, seed=7))
    scene[4] = torch.rand(2, 60, 5, generator=torch.Generator().manual_seed(0))  # (C,N,D)
    bg = torch.rand(2, 5, generator=torch.Generator().manual_seed(1))
    w = torch.tensor([1.0, 1.0, 1.0, 0.1, 0.0])
    rn, an, gn, _ = _run("naive", scene, backgrounds=bg, geom_grad_weights=w)
    rc, ac, gc, _ = _run("cpu", scene, backgrounds=bg, geom_grad_weights=w)
    assert rc.dtype == torch.float32
    _assert_close(rc, rn, 2e-5, "render")
    _assert_close(ac, an, 2e-5, "alpha")
    for k in gn:
        _assert_close(gc[k], gn[k], 1e-3, f"grad {k}")


def test_cpu_backend_gradients_match_finite_differences():
    # three smooth, partly overlapping Gaussians; float64 central differences
    dtype = torch.float64
    means = torch.tensor([[0.0, 0.0, 0.0], [0.15, 0.1, 0.3], [-0.1, 0.05, -0.2]], dtype=dtype)
    quats = torch.tensor([[1.0, 0.1, 0.2, 0.0], [0.9, 0.0, 0.3, 0.2], [1.0, -0.2, 0.0, 0.1]], dtype=dtype)
    scales = torch.tensor([[0.2, 0.12, 0.1], [0.15, 0.2, 0.1], [0.18, 0.18, 0.12]], dtype=dtype)
    opac = torch.tensor([0.7, 0.5, 0.6], dtype=dtype)
    colors = torch.tensor([[1.0, 0.2, -0.5, 0.3], [0.1, 0.9, 0.4, -1.0], [0.5, 0.5, 1.0, 0.0]], dtype=dtype)
    vm, Ks = _cameras(1, 24, 20, dtype)
    bg = torch.tensor([[0.2, 0.1, 0.3, 2.0]], dtype=dtype)
    g = torch.Generator().manual_seed(5)
    wr = torch.randn(1, 20, 24, 5, generator=g, dtype=dtype)
    wa = torch.randn(1, 20, 24, 1, generator=g, dtype=dtype)

    def loss(m, q, s, o, c):
        r, a, _ = rasterize(m, q, s, o, c, vm, Ks, 24, 20, backgrounds=bg, backend="cpu")
        return (r * wr).sum() + (a * wa).sum()

    params = [means, quats, scales, opac, colors]
    ps = [p.clone().requires_grad_(True) for p in params]
    loss(*ps).backward()
    eps = 1e-6
    for i, name in enumerate(("means", "quats", "scales", "opacities", "colors")):
        fd = torch.zeros_like(params[i])
        flat = fd.view(-1)
        for j in range(flat.numel()):
            plus = [p.clone() for p in params]
            minus = [p.clone() for p in params]
            plus[i].view(-1)[j] += eps
            minus[i].view(-1)[j] -= eps
            flat[j] = (loss(*plus) - loss(*minus)) / (2 * eps)
        _assert_close(ps[i].grad, fd, 1e-4, f"finite differences {name}")


def test_geom_grad_weights_zero_blocks_geometry_gradient_but_not_colours():
    scene = _scene(N=30, D=4, C=1, seed=3)
    means, quats, scales, opac, colors, vm, Ks, W, H = scene
    ps = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors)]
    w = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    bg = torch.ones(1, 4, dtype=torch.float64)
    render, alpha, _ = rasterize(*ps, vm, Ks, W, H, backgrounds=bg, geom_grad_weights=w,
                                 render_depth=False, backend="cpu")
    render[..., 3].sum().backward()  # a loss on the zero-weight channel only
    for p in ps[:4]:
        assert float(p.grad.abs().max()) == 0.0
    assert float(ps[4].grad[:, 3].abs().max()) > 0.0


def test_contrib_sums_to_alpha_and_marks_visible_gaussians():
    scene = _scene(N=40, D=3, C=2, seed=11)
    r, a, info = rasterize(*scene, backend="cpu", return_contrib=True)
    contrib = info["contrib"]
    assert contrib.shape == (2, 40) and not contrib.requires_grad
    np.testing.assert_allclose(contrib.sum(dim=1).numpy(), a.sum(dim=(1, 2, 3)).numpy(), rtol=1e-9)
    assert bool((contrib[~(info["radii"] > 0).all(-1)] == 0).all())


def test_cpu_backend_is_deterministic_across_thread_counts(monkeypatch):
    scene = _scene(N=80, D=6, C=2, W=48, H=40, dtype=torch.float32, seed=2)
    monkeypatch.setenv("LABELSPLAT_NUM_THREADS", "1")
    r1, a1, g1, _ = _run("cpu", scene)
    monkeypatch.setenv("LABELSPLAT_NUM_THREADS", "2")
    r2, a2, g2, _ = _run("cpu", scene)
    assert torch.equal(r1, r2) and torch.equal(a1, a2)
    for k in g1:
        assert torch.equal(g1[k], g2[k]), k


def test_everything_culled_gives_background_and_zero_gradients():
    means, quats, scales, opac, colors, vm, Ks, W, H = _scene(N=10, D=3, C=1)
    means = means + torch.tensor([0.0, 0.0, 100.0], dtype=torch.float64)  # behind the camera
    bg = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    scene = (means, quats, scales, opac, colors, vm, Ks, W, H)
    r, a, g, info = _run("cpu", scene, backgrounds=bg)
    assert int(info["radii"].max()) == 0
    assert float(a.abs().max()) == 0.0
    np.testing.assert_allclose(r[..., :3].numpy(), np.broadcast_to(bg.numpy()[:, None, None, :], r[..., :3].shape))
    for k, v in g.items():
        assert float(v.abs().max()) == 0.0, k


def test_projection_matches_gsplat_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    means, quats, scales, opac, colors, vm, Ks, W, H = _scene(N=50, C=3, seed=4)
    proj = project_gaussians(means, quats, scales, opac, vm, Ks, W, H)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, True, False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, vm, Ks, W, H)
    v = proj.valid
    assert bool((v <= (radii > 0).all(-1)).all())  # opacity-aware radii only cull more
    torch.testing.assert_close(proj.means2d[v], means2d[v])
    torch.testing.assert_close(proj.conics[v], conics[v])
    torch.testing.assert_close(proj.depths, depths)
    assert bool((proj.radii <= radii).all())


def test_info_has_the_gsplat_keys_used_by_strategies():
    scene = _scene(N=12, D=3, C=2, dtype=torch.float32)
    for backend in ("naive", "cpu"):
        _, _, info = rasterize(*scene, backend=backend)
        for key in ("means2d", "radii", "width", "height", "n_cameras", "gaussian_ids", "depths",
                    "conics", "opacities", "camera_ids", "batch_ids", "n_batches"):
            assert key in info, (backend, key)
        assert info["gaussian_ids"] is None and info["n_cameras"] == 2
        assert tuple(info["means2d"].shape) == (2, 12, 2) and info["means2d"].requires_grad is False
        assert tuple(info["radii"].shape) == (2, 12, 2) and info["radii"].dtype == torch.int32
    # with parameters that require grad, means2d is a non-leaf whose grad can be retained
    ps = [t.clone().requires_grad_(True) for t in scene[:5]]
    _, alpha, info = rasterize(*ps, *scene[5:], backend="cpu")
    info["means2d"].retain_grad()
    alpha.sum().backward()
    assert info["means2d"].grad is not None and float(info["means2d"].grad.abs().sum()) > 0
    # tile data in gsplat's layout
    assert tuple(info["isect_offsets"].shape) == (2, info["tile_height"], info["tile_width"])
    assert info["flatten_ids"].dtype == torch.int32
    assert int(info["tiles_per_gauss"].sum()) == len(info["flatten_ids"])


def test_bad_inputs_raise_clear_errors():
    means, quats, scales, opac, colors, vm, Ks, W, H = _scene(N=5, D=3, C=1, dtype=torch.float32)
    with pytest.raises(ValueError, match="quats"):
        rasterize(means, quats[:, :3], scales, opac, colors, vm, Ks, W, H)
    with pytest.raises(ValueError, match="backgrounds"):
        rasterize(means, quats, scales, opac, colors, vm, Ks, W, H, backgrounds=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="geom_grad_weights"):
        rasterize(means, quats, scales, opac, colors, vm, Ks, W, H, geom_grad_weights=torch.ones(2))
    with pytest.raises(ValueError, match="backend"):
        rasterize(means, quats, scales, opac, colors, vm, Ks, W, H, backend="opengl")
    with pytest.raises(ValueError, match="CUDA"):
        rasterize(means, quats, scales, opac, colors, vm, Ks, W, H, backend="gsplat")
    with pytest.raises(ValueError, match="dtype"):
        rasterize(means, quats.double(), scales, opac, colors, vm, Ks, W, H)


def test_zero_gaussians_render_background():
    _, _, _, _, _, vm, Ks, W, H = _scene(N=1, D=4, C=2, dtype=torch.float32)
    ps = [torch.zeros(0, 3), torch.ones(0, 4), torch.ones(0, 3), torch.ones(0), torch.ones(0, 4)]
    ps = [p.requires_grad_(True) for p in ps]
    bg = torch.rand(2, 4)
    r, a, info = rasterize(*ps, vm, Ks, W, H, backgrounds=bg, backend="cpu", return_contrib=True)
    (r.sum() + a.sum()).backward()
    assert float(a.detach().abs().max()) == 0.0
    torch.testing.assert_close(r.detach()[..., :4], bg[:, None, None, :].expand(2, H, W, 4))
    assert tuple(info["contrib"].shape) == (2, 0) and tuple(ps[0].grad.shape) == (0, 3)


def _render_in_child(queue):
    scene = _scene(N=20, D=3, C=1, dtype=torch.float32, seed=9)
    r, _, _ = rasterize(*scene, backend="cpu")
    queue.put(float(r.sum()))


def test_cpu_backend_works_in_a_forked_child_after_use_in_the_parent(monkeypatch):
    import multiprocessing as mp

    monkeypatch.setenv("LABELSPLAT_NUM_THREADS", "2")
    scene = _scene(N=20, D=3, C=1, dtype=torch.float32, seed=9)
    expected = float(rasterize(*scene, backend="cpu")[0].sum())  # creates the thread pool
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_render_in_child, args=(q,))
    p.start()
    p.join(timeout=60)
    assert p.exitcode == 0
    assert q.get(timeout=5) == expected


def test_no_grad_rendering_matches_and_builds_no_graph():
    scene = _scene(N=30, D=4, C=2, dtype=torch.float32, seed=12)
    ps = [t.clone().requires_grad_(True) for t in scene[:5]]
    r1, a1, _ = rasterize(*ps, *scene[5:], backend="cpu")
    with torch.no_grad():
        r2, a2, info = rasterize(*ps, *scene[5:], backend="cpu")
    assert not r2.requires_grad and not info["means2d"].requires_grad
    assert torch.equal(r1.detach(), r2) and torch.equal(a1.detach(), a2)
