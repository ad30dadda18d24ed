"""Contract: gsplat's DefaultStrategy runs unchanged on the CPU backend's output (on CPU).

The strategy reads ``info["means2d"].grad`` (after ``retain_grad()`` in step_pre_backward),
``radii`` (C,N,2), ``width``, ``height``, ``n_cameras`` and ``gaussian_ids``; with a tiny
schedule, growing (duplicate + split) and pruning must actually fire.

Note (gsplat 1.5.3): ``DefaultStrategy.step_post_backward`` tests
``step % reset_every == 0 & step > 0``, which Python parses as a chained comparison that is
always False, so the periodic opacity reset never fires (upstream PR
nerfstudio-project/gsplat#776). Callers wanting the reset must call
``gsplat.strategy.ops.reset_opa`` themselves; the last test pins both facts.
"""

from __future__ import annotations

import numpy as np
import torch

from labelsplat.scene import look_at
from labelsplat.splat.rasterize import rasterize


def _setup(seed=0, N=60):
    g = torch.Generator().manual_seed(seed)
    params = torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(torch.randn(N, 3, generator=g) * 0.4),
            "scales": torch.nn.Parameter(torch.log(torch.rand(N, 3, generator=g) * 0.12 + 0.03)),
            "quats": torch.nn.Parameter(torch.randn(N, 4, generator=g)),
            "opacities": torch.nn.Parameter(torch.logit(torch.rand(N, generator=g) * 0.8 + 0.1)),
            "colors": torch.nn.Parameter(torch.rand(N, 5, generator=g)),
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    cams = [look_at(c, [0, 0, 0], [0, 1, 0], 40, 40, 32, 32) for c in ([0, 0, 3], [2.5, 0.5, 1.5])]
    vm = torch.tensor(np.stack([c.w2c_opencv for c in cams]), dtype=torch.float32)
    Ks = torch.tensor(np.stack([c.K for c in cams]), dtype=torch.float32)
    target = torch.rand(2, 32, 32, 5, generator=g)
    return params, optimizers, vm, Ks, target


def _step(params, optimizers, strategy, state, step, vm, Ks, target):
    render, alpha, info = rasterize(
        params["means"], params["quats"], torch.exp(params["scales"]),
        torch.sigmoid(params["opacities"]), params["colors"], vm, Ks, 32, 32,
        backend="cpu", render_depth=False,
    )
    strategy.step_pre_backward(params, optimizers, state, step, info)
    loss = (render - target).abs().mean()
    loss.backward()
    strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
    for opt in optimizers.values():
        opt.step()
        opt.zero_grad(set_to_none=True)
    return info


def test_default_strategy_grows_and_prunes_on_cpu_backend_output():
    from gsplat.strategy import DefaultStrategy

    params, optimizers, vm, Ks, target = _setup()
    strategy = DefaultStrategy(
        refine_start_iter=1, refine_every=2, refine_stop_iter=100, reset_every=1000,
        grow_grad2d=1e-7, grow_scale3d=0.08, prune_opa=0.2,
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    n0 = len(params["means"])
    n_low_opacity = int((torch.sigmoid(params["opacities"]) < 0.2).sum())
    assert n_low_opacity > 0
    small = torch.exp(params["scales"]).max(dim=-1).values <= 0.08
    assert 0 < int(small.sum()) < n0  # both duplicate and split branches are exercised

    info = _step(params, optimizers, strategy, state, 0, vm, Ks, target)
    # the state saw real image-plane gradients of the visible Gaussians
    visible = (info["radii"] > 0).all(-1).any(0)
    assert int(visible.sum()) > 0
    assert torch.equal(state["count"] > 0, visible)
    assert float(state["grad2d"][visible].min()) > 0
    _step(params, optimizers, strategy, state, 1, vm, Ks, target)
    n_before = len(params["means"])
    _step(params, optimizers, strategy, state, 2, vm, Ks, target)  # refine fires (2 > 1, 2 % 2 == 0)
    n_after = len(params["means"])
    assert n_after != n_before
    for k, p in params.items():
        assert len(p) == n_after, k
        assert optimizers[k].param_groups[0]["params"][0] is p
    assert len(state["grad2d"]) == n_after and float(state["count"].sum()) == 0  # reset by refine
    # low-opacity Gaussians were pruned; the strategy keeps training on the new set
    # (one Adam step of lr 1e-3 on the logits ran after the pruning)
    assert float(torch.sigmoid(params["opacities"].detach()).min()) >= 0.2 - 1e-3
    info = _step(params, optimizers, strategy, state, 3, vm, Ks, target)
    assert tuple(info["radii"].shape) == (2, n_after, 2)


def test_opacity_reset_op_works_on_our_params_and_gsplat_153_schedule_never_fires_it():
    from gsplat.strategy import DefaultStrategy
    from gsplat.strategy.ops import reset_opa

    params, optimizers, vm, Ks, target = _setup(seed=1)
    strategy = DefaultStrategy(refine_start_iter=1000, reset_every=2, refine_stop_iter=100)
    state = strategy.initialize_state()
    for step in range(5):  # steps 2 and 4 are multiples of reset_every
        _step(params, optimizers, strategy, state, step, vm, Ks, target)
    opac = torch.sigmoid(params["opacities"]).detach()
    # gsplat 1.5.3 bug (see module docstring): no reset happened. If gsplat fixes it, this
    # assertion fails and the trainer's own reset call should be revisited.
    assert float(opac.max()) > 0.5
    reset_opa(params=params, optimizers=optimizers, state=state, value=0.01)
    assert float(torch.sigmoid(params["opacities"].detach()).max()) <= 0.01 + 1e-6
