"""MCMC densification (``strategy=mcmc:<cap>``): the grammar, the torch relocation against the
formula, a capped CPU fit, a bit-identical resume, and the torch relocation against gsplat's CUDA
kernel (skipped without CUDA)."""

from __future__ import annotations

import math

import pytest
import torch

from fit_scene import cached_scene
from labelsplat.config import fit_preset as make_config
from labelsplat.errors import LabelsplatError
from labelsplat.splat import fit, load_checkpoint
from labelsplat.splat.config import FitConfig, StrategySpec
from labelsplat.splat.densify import DefaultDensify, MCMCDensify
from labelsplat.splat.mcmc import compute_relocation, relocate, relocation_torch, sample_add
from labelsplat.splat.optim import make_strategy


def _binoms(n_max: int = 51) -> torch.Tensor:
    return torch.tensor([[float(math.comb(n, k)) for k in range(n_max)] for n in range(n_max)])


def test_strategy_grammar():
    assert StrategySpec.parse("default") == StrategySpec() and str(StrategySpec()) == "default"
    spec = StrategySpec.parse(" MCMC:6000 ")
    assert spec == StrategySpec("mcmc", 6000) and spec.is_mcmc and str(spec) == "mcmc:6000"
    spec = StrategySpec.parse("mcmc:6000:0.50")
    assert spec == StrategySpec("mcmc", 6000, 0.5) and str(spec) == "mcmc:6000:0.5"
    assert StrategySpec.parse("mcmc:6000:0.05") == StrategySpec.parse("mcmc:6000")
    for bad in ("mcmc", "mcmc:", "mcmc:0", "mcmc:-5", "mcmc:1.5", "mcmc:6e3", "mcmc:x", "gradient", "",
                "mcmc:10:0", "mcmc:10:-1", "mcmc:10:nan", "mcmc:10:0.5:1"):
        with pytest.raises(LabelsplatError, match="invalid strategy") as exc:
            StrategySpec.parse(bad)
        assert "mcmc:6000" in exc.value.hint
    cfg = make_config("micro", strategy="mcmc:2000")
    assert cfg.parsed.strategy.cap == 2000 and cfg.to_dict()["strategy"] == "mcmc:2000"
    with pytest.raises(LabelsplatError, match="below init_max_points"):
        make_config("micro", strategy="mcmc:100")  # micro starts from up to 1500 Gaussians
    old = make_config("micro").to_dict()
    old.pop("strategy")  # a run written before the setting existed
    assert FitConfig.from_dict(old).strategy == "default"
    for name in ("micro", "tiny", "fast", "gpu", "paper"):
        assert make_config(name).strategy == "default"


def test_make_strategy_objects():
    assert isinstance(make_strategy(make_config("micro")), DefaultDensify)
    s = make_strategy(make_config("micro", strategy="mcmc:3000"))
    sched = make_config("micro").strategy_schedule()
    assert isinstance(s, MCMCDensify) and (s.cap_max, s.growth) == (3000, 0.05)
    assert s.refine_every == sched["refine_every"]
    assert (s.refine_start_iter, s.refine_stop_iter) == (sched["refine_start_iter"], sched["refine_stop_iter"])
    params = {"opacities": torch.zeros(4), "scales": torch.zeros(4, 3)}
    assert make_strategy(make_config("micro")).regularization(params) == 0.0
    assert float(s.regularization(params)) == pytest.approx(0.01 * 0.5 + 0.01 * 1.0)


def _direct(o: float, s: float, n: int) -> tuple[float, float]:
    """The relocation formula, one element at a time (math, float64)."""
    new_o = 1.0 - (1.0 - o) ** (1.0 / n)
    denom = sum(math.comb(i - 1, k) * (-1) ** k / math.sqrt(k + 1) * new_o ** (k + 1)
                for i in range(1, n + 1) for k in range(i))
    return new_o, o / denom * s


def test_torch_relocation_matches_the_formula_and_keeps_a_single_copy():
    g = torch.Generator().manual_seed(0)
    o = torch.rand(200, generator=g, dtype=torch.float64) * 0.98 + 0.01
    s = torch.rand(200, 3, generator=g, dtype=torch.float64) * 0.1 + 1e-3
    n = torch.randint(1, 30, (200,), generator=g)
    new_o, new_s = relocation_torch(o, s, n, _binoms())
    for i in range(0, 200, 7):
        want_o, want_s = _direct(float(o[i]), float(s[i, 0]), int(n[i]))
        assert float(new_o[i]) == pytest.approx(want_o, rel=1e-9)
        assert float(new_s[i, 0]) == pytest.approx(want_s, rel=1e-7)
    # n copies together are as opaque as the original; one copy is the original
    assert torch.allclose(1 - (1 - new_o) ** n, o, atol=1e-12)
    one_o, one_s = relocation_torch(o.float(), s.float(), torch.ones(200, dtype=torch.long), _binoms())
    assert torch.allclose(one_o, o.float(), atol=1e-7) and torch.allclose(one_s, s.float(), rtol=1e-6)
    assert bool((new_s <= s + 1e-12).all())  # copies are never larger
    assert compute_relocation(o, s, n, _binoms())[0].equal(new_o)  # CPU tensors use the torch form


def _toy(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = torch.nn.ParameterDict({
        "means": torch.nn.Parameter(torch.randn(n, 3, generator=g)),
        "scales": torch.nn.Parameter(torch.log(torch.rand(n, 3, generator=g) * 0.1 + 0.01)),
        "quats": torch.nn.Parameter(torch.randn(n, 4, generator=g)),
        "opacities": torch.nn.Parameter(torch.logit(torch.rand(n, generator=g) * 0.9 + 0.05)),
        "sem": torch.nn.Parameter(torch.randn(n, 0, generator=g)),
    })
    opts = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    sum(p.sum() for p in params.values()).backward()
    for o in opts.values():
        o.step()
    return params, opts


def test_relocate_and_add_edit_parameters_and_adam_state():
    params, opts = _toy()
    with torch.no_grad():
        params["opacities"][:5] = -12.0  # five dead Gaussians
    dead = torch.sigmoid(params["opacities"]) <= 0.005
    before = {k: v.detach().clone() for k, v in params.items()}
    assert relocate(params, opts, dead, _binoms()) == 5
    assert bool((torch.sigmoid(params["opacities"]) > 0.005).all()) and len(params["means"]) == 40
    assert not torch.equal(params["means"][:5], before["means"][:5])
    assert torch.equal(params["means"][5:], before["means"][5:])  # the live Gaussians stay where they are
    assert sample_add(params, opts, 7, _binoms()) == 7
    for k, p in params.items():
        assert len(p) == 47 and opts[k].param_groups[0]["params"][0] is p
        st = opts[k].state[p]
        assert st["exp_avg"].shape == p.shape and float(st["exp_avg"][40:].abs().sum()) == 0
    # a refine round adds growth x N, up to the cap
    strategy = MCMCDensify(cap_max=60, growth=0.2, refine_start_iter=0, refine_stop_iter=10, refine_every=1)
    state = strategy.initialize_state(scene_scale=1.0)
    strategy.step_post_backward(params, opts, state, 1, {})
    assert len(params["means"]) == 56
    strategy.step_post_backward(params, opts, state, 2, {})
    assert len(params["means"]) == 60 and all(bool(torch.isfinite(p).all()) for p in params.values())


def test_mcmc_micro_fit_stays_under_the_cap_and_resumes_bit_identically(tmp_path_factory, tmp_path):
    scene = cached_scene(tmp_path_factory, n_views=6, res=32)
    cfg = make_config("micro", steps=12, max_resolution=32, init_max_points=250, hull_resolution=20,
                      refine_start_frac=0.1, refine_stop_frac=0.9, refine_every=2, checkpoint_every=6,
                      log_every=3, strategy="mcmc:280")
    whole = fit(scene, tmp_path / "a", cfg, write_outputs=False)
    n = whole.model.num_gaussians
    assert n == 280  # grown by 5 % per refine round and stopped at the cap
    assert all(bool(torch.isfinite(p).all()) for p in whole.model.params.values())
    fit(scene, tmp_path / "b", cfg, stop_after=6, write_outputs=False)
    ck = load_checkpoint(tmp_path / "b" / "ckpt" / "step_000006.pt")
    assert torch.equal(ck["strategy_state"]["binoms"], _binoms())
    res = fit(scene, tmp_path / "b", None, resume=True, write_outputs=False)
    for k, v in whole.model.params.items():
        assert torch.equal(v, res.model.params[k]), k


@pytest.mark.cuda
def test_torch_relocation_matches_gsplat_cuda_kernel():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    g = torch.Generator().manual_seed(1)
    o = torch.rand(5000, generator=g) * 0.98 + 0.01
    s = torch.rand(5000, 3, generator=g) * 0.1 + 1e-3
    n = torch.randint(1, 12, (5000,), generator=g)
    b = _binoms()
    cuda_o, cuda_s = compute_relocation(o.cuda(), s.cuda(), n.cuda(), b.cuda())
    ref_o, ref_s = relocation_torch(o, s, n, b)
    assert torch.allclose(cuda_o.cpu(), ref_o, rtol=1e-5, atol=1e-6)
    assert torch.allclose(cuda_s.cpu(), ref_s, rtol=1e-3, atol=1e-6)
