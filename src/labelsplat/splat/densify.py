"""The densification strategies a fit can use (``FitConfig.strategy``), behind gsplat's strategy
protocol (``check_sanity`` / ``initialize_state`` / ``step_pre_backward`` / ``step_post_backward``)
plus :meth:`regularization`, the strategy's own term of the loss (0 for ``default``).

* ``default`` -- :class:`DefaultDensify`, gsplat's ``DefaultStrategy`` unchanged.
* ``mcmc:<cap>[:<growth>]`` -- :class:`MCMCDensify`, gsplat's ``MCMCStrategy`` with at most ``cap``
  Gaussians (``growth`` x N more per refine round, gsplat's 0.05 by default), its relocation and
  position noise in torch (:mod:`.mcmc`) so it runs on every backend, the means' learning rate
  read from the ``means`` optimiser, and the opacity / scale regularisers of gsplat's
  ``simple_trainer`` (0.01 each, on the activated values).

Both take their schedule from :meth:`FitConfig.strategy_schedule`. Their state (a dict of tensors)
is checkpointed with the run (:class:`.checkpoint.RunState`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gsplat.strategy import DefaultStrategy, MCMCStrategy

from .config import FitConfig
from .mcmc import inject_position_noise, relocate, sample_add


@dataclass
class DefaultDensify(DefaultStrategy):
    """gsplat's ``DefaultStrategy``: clone, split and prune by screen-space gradient, scale and opacity."""

    @classmethod
    def from_config(cls, cfg: FitConfig) -> "DefaultDensify":
        return cls(prune_opa=cfg.prune_opa, grow_grad2d=cfg.grow_grad2d, grow_scale3d=cfg.grow_scale3d,
                   prune_scale3d=cfg.prune_scale3d, verbose=False, **cfg.strategy_schedule())

    def regularization(self, params) -> float:
        """No loss term of its own."""
        return 0.0


@dataclass
class MCMCDensify(MCMCStrategy):
    """gsplat's ``MCMCStrategy`` on every backend: each refine round (``refine_start_iter`` <
    step < ``refine_stop_iter``, every ``refine_every``) moves the Gaussians of opacity <=
    ``min_opacity`` onto live ones and adds ``growth`` x N more (gsplat: 5 %), up to ``cap_max``;
    every step nudges the near-transparent ones by noise scaled by the means' learning rate x
    ``noise_lr``."""

    growth: float = 0.05  # share of Gaussians added per refine round (gsplat: 1.05 x N)
    opacity_reg: float = 0.01
    scale_reg: float = 0.01

    @classmethod
    def from_config(cls, cfg: FitConfig) -> "MCMCDensify":
        sched = cfg.strategy_schedule()
        spec = cfg.parsed.strategy
        return cls(cap_max=spec.cap, growth=spec.growth, refine_start_iter=sched["refine_start_iter"],
                   refine_stop_iter=sched["refine_stop_iter"], refine_every=sched["refine_every"],
                   min_opacity=cfg.prune_opa, verbose=False)

    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        """The binomial table of the relocation (``scene_scale`` is unused, as in gsplat)."""
        return super().initialize_state()

    def step_post_backward(self, params, optimizers, state, step, info, packed: bool = False,
                           lr: float | None = None) -> None:
        """Relocate and add Gaussians on a refine step, then the position noise; ``lr`` defaults to
        the ``means`` optimiser's current learning rate (``packed`` is unused)."""
        if lr is None:
            lr = float(optimizers["means"].param_groups[0]["lr"])
        state["binoms"] = binoms = state["binoms"].to(params["means"].device)
        if self.refine_start_iter < step < self.refine_stop_iter and step % self.refine_every == 0:
            self._relocate_gs(params, optimizers, binoms)
            self._add_new_gs(params, optimizers, binoms)
        inject_position_noise(params, lr * self.noise_lr)

    @torch.no_grad()
    def _relocate_gs(self, params, optimizers, binoms: torch.Tensor) -> int:
        dead = torch.sigmoid(params["opacities"].detach().flatten()) <= self.min_opacity
        return relocate(params, optimizers, dead, binoms, self.min_opacity)

    @torch.no_grad()
    def _add_new_gs(self, params, optimizers, binoms: torch.Tensor) -> int:
        n = len(params["means"])
        target = min(self.cap_max, int((1.0 + self.growth) * n))
        return sample_add(params, optimizers, max(0, target - n), binoms, self.min_opacity)

    def regularization(self, params) -> torch.Tensor:
        """``opacity_reg`` x mean opacity + ``scale_reg`` x mean scale (gsplat ``simple_trainer``)."""
        return (self.opacity_reg * torch.sigmoid(params["opacities"]).mean()
                + self.scale_reg * torch.exp(params["scales"]).mean())


#: the strategy class of each ``StrategySpec.kind``
STRATEGIES: dict[str, type] = {"default": DefaultDensify, "mcmc": MCMCDensify}


def strategy_for(cfg: FitConfig):
    """The densification strategy ``cfg.strategy`` names."""
    return STRATEGIES[cfg.parsed.strategy.kind].from_config(cfg)


__all__ = ["DefaultDensify", "MCMCDensify", "STRATEGIES", "strategy_for"]
