"""The joint Gaussian model: one geometry, two appearance heads (docs/design.md "The joint model").

Parameters live in a ``torch.nn.ParameterDict`` with gsplat ``simple_trainer`` names so
gsplat's ``DefaultStrategy`` can densify / prune them unchanged:

* ``means`` (N, 3) normalised frame; ``scales`` (N, 3) log standard deviations;
  ``quats`` (N, 4) ``wxyz`` (unnormalised); ``opacities`` (N,) logits;
* ``sh0`` (N, 1, 3) DC SH coefficients, ``shN`` (N, (d+1)^2 - 1, 3) higher bands
  (gsplat convention, colour = clamp(SH(dir) + 0.5, min=0));
* ``sem`` (N, S) the semantic head's features: S = K class logits (:class:`~.heads.LogitsHead`,
  the default), S = 3 palette colours (:class:`~.heads.PaletteHead`, the paper's variant) or
  S = 0 (RGB-only model, :class:`~.heads.EmptyHead`): the same code path. ``model.head`` says which.

``rasterize_mode`` (``classic`` or ``antialiased``, :func:`~.rasterize.rasterize`) is how the model
was fitted and so how every render of it rasterises; a classic model's state carries no entry.

``n_views_seen`` (N,) int32 (or None before it is measured) counts the training views in which
a Gaussian's blend-weight sum exceeded a threshold; it is bookkeeping, not a parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import LabelsplatError
from .config import RASTERIZE_MODES
from .heads import EmptyHead, LogitsHead, SemanticHead, head_from_state
from .sh import eval_sh

PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN", "sem")
C0 = 0.28209479177387814  # SH band-0 constant: colour = 0.5 + C0 * f_dc


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / C0


class GaussianModel:
    """Container of the ParameterDict plus the model's static facts (SH degree, K, semantic head).

    ``head`` defaults to a :class:`~.heads.LogitsHead` of ``num_classes`` classes (an
    :class:`~.heads.EmptyHead` for K = 0); a given head must have ``num_classes`` classes.
    """

    def __init__(self, params: torch.nn.ParameterDict, sh_degree: int, num_classes: int,
                 n_views_seen: torch.Tensor | None = None, *, head: SemanticHead | None = None,
                 rasterize_mode: str = "classic"):
        if rasterize_mode not in RASTERIZE_MODES:
            raise LabelsplatError(f"unknown rasterize_mode {rasterize_mode!r}",
                                  hint=f"choose one of {', '.join(RASTERIZE_MODES)}")
        self.rasterize_mode = rasterize_mode
        self.params = params
        self.sh_degree = int(sh_degree)
        self.num_classes = int(num_classes)
        self.n_views_seen = n_views_seen
        if head is None:
            head = LogitsHead(self.num_classes) if self.num_classes > 0 else EmptyHead()
        if head.num_classes != self.num_classes:
            raise LabelsplatError(f"the semantic head has {head.num_classes} classes, the model {self.num_classes}")
        self.head = head
        self.check()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_points(
        cls,
        means: np.ndarray,
        colors: np.ndarray,
        labels: np.ndarray | None,
        *,
        sh_degree: int,
        num_classes: int,
        init_opacity: float = 0.1,
        device: torch.device | str = "cpu",
        head: SemanticHead | None = None,
        rasterize_mode: str = "classic",
    ) -> "GaussianModel":
        """Gaussians at ``means`` (N, 3) with colours (N, 3) in [0, 1] and class ids (N,) (-1 = unknown).

        Scales: mean distance to the 3 nearest neighbours (isotropic), as gsplat; quats identity;
        semantic features from the head's :meth:`~.heads.SemanticHead.init_features` (logits:
        ``init_logit * one_hot(label)``; palette: ``palette[label]``).
        """
        from scipy.spatial import cKDTree  # scipy.spatial: 0.7 s to import, only needed here

        means = np.asarray(means, dtype=np.float64)
        n = len(means)
        if n == 0 or means.shape != (n, 3):
            raise LabelsplatError(f"cannot build a model from {means.shape} points")
        k = min(4, n)
        if n > 1:
            d, _ = cKDTree(means).query(means, k=k)
            dist = np.sqrt(np.mean(np.square(d[:, 1:]), axis=1))
        else:
            dist = np.full(1, 0.05)
        dist = np.clip(dist, 1e-4, None)
        dev = torch.device(device)
        f32 = dict(dtype=torch.float32, device=dev)
        n_rest = (sh_degree + 1) ** 2 - 1
        if head is None:
            head = LogitsHead(num_classes) if num_classes > 0 else EmptyHead()
        sem = head.init_features(labels, n, dev)
        quats = torch.zeros(n, 4, **f32)
        quats[:, 0] = 1.0
        params = torch.nn.ParameterDict({
            "means": torch.nn.Parameter(torch.as_tensor(means, **f32)),
            "scales": torch.nn.Parameter(torch.log(torch.as_tensor(dist, **f32))[:, None].repeat(1, 3)),
            "quats": torch.nn.Parameter(quats),
            "opacities": torch.nn.Parameter(torch.logit(torch.full((n,), float(init_opacity), **f32))),
            "sh0": torch.nn.Parameter(rgb_to_sh0(torch.as_tensor(np.asarray(colors), **f32))[:, None, :]),
            "shN": torch.nn.Parameter(torch.zeros(n, n_rest, 3, **f32)),
            "sem": torch.nn.Parameter(sem),
        })
        return cls(params, sh_degree, num_classes, head=head, rasterize_mode=rasterize_mode)

    # ------------------------------------------------------------------ facts
    @property
    def sem_channels(self) -> int:
        """Channels of the semantic head: K (logits), 3 (palette) or 0 (RGB only)."""
        return self.head.channels

    @property
    def semantic_target(self) -> str:
        """The head's ``FitConfig.semantic_target`` (``logits`` or ``palette``)."""
        return self.head.target

    def check(self) -> None:
        p = self.params
        missing = [k for k in PARAM_NAMES if k not in p]
        if missing:
            raise LabelsplatError(f"model parameters missing: {missing}")
        n = p["means"].shape[0]
        expect = {
            "means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,), "sh0": (n, 1, 3),
            "shN": (n, (self.sh_degree + 1) ** 2 - 1, 3), "sem": (n, self.sem_channels),
        }
        for k, shape in expect.items():
            if tuple(p[k].shape) != shape:
                raise LabelsplatError(f"model parameter {k!r} has shape {tuple(p[k].shape)}, expected {shape}")
        if self.n_views_seen is not None and tuple(self.n_views_seen.shape) != (n,):
            raise LabelsplatError(f"n_views_seen has shape {tuple(self.n_views_seen.shape)}, expected ({n},)")

    @property
    def num_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    @property
    def device(self) -> torch.device:
        return self.params["means"].device

    def activated(self) -> dict[str, torch.Tensor]:
        """Renderer inputs: means, normalised quats, exp'd scales, sigmoid'd opacities."""
        p = self.params
        return {
            "means": p["means"],
            "quats": torch.nn.functional.normalize(p["quats"], dim=-1),
            "scales": torch.exp(p["scales"]),
            "opacities": torch.sigmoid(p["opacities"]),
        }

    def rgb(self, cam_centers: torch.Tensor, active_degree: int | None = None) -> torch.Tensor:
        """View-dependent colours (C, N, 3) for camera centres (C, 3) (normalised frame).

        Degree ``active_degree`` (<= sh_degree) bands are used; colour = clamp(SH + 0.5, min=0)
        as gsplat's ``rasterization(sh_degree=...)``. Degree 0 skips the direction entirely.
        """
        deg = self.sh_degree if active_degree is None else min(int(active_degree), self.sh_degree)
        sh0 = self.params["sh0"]
        C = cam_centers.shape[0]
        if deg == 0:
            col = (C0 * sh0[:, 0, :] + 0.5).clamp_min(0.0)
            return col[None].expand(C, -1, -1)
        coeffs = torch.cat([sh0, self.params["shN"]], dim=1)[:, : (deg + 1) ** 2]  # (N, (deg+1)^2, 3)
        dirs = self.params["means"][None, :, :] - cam_centers[:, None, :]  # (C, N, 3)
        col = eval_sh(deg, coeffs, dirs)
        return (col + 0.5).clamp_min(0.0)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors + ints (loadable with ``torch.load(weights_only=True)``), plus the head's
        entries (none for a logit head, so its checkpoints are unchanged; a palette head adds
        ``semantic_target`` and ``palette``). A state without them loads as logits."""
        d = {
            "params": {k: v.detach().cpu().clone() for k, v in self.params.items()},
            "sh_degree": self.sh_degree,
            "num_classes": self.num_classes,
            "n_views_seen": None if self.n_views_seen is None else self.n_views_seen.detach().cpu().clone(),
        }
        d.update(self.head.state_dict())
        if self.rasterize_mode != "classic":
            d["rasterize_mode"] = self.rasterize_mode
        return d

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device | str = "cpu") -> "GaussianModel":
        try:
            params = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(state["params"][k].to(device)) for k in PARAM_NAMES}
            )
            nvs = state.get("n_views_seen")
            return cls(params, int(state["sh_degree"]), int(state["num_classes"]),
                       None if nvs is None else nvs.to(device), head=head_from_state(state, device),
                       rasterize_mode=str(state.get("rasterize_mode", "classic")))
        except KeyError as exc:
            raise LabelsplatError(f"checkpoint model state lacks {exc}") from exc
