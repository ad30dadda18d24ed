"""Semantic losses of the fit behind one protocol, :class:`SemanticLoss`.

A semantic loss scores a head's rendered semantic channels against the input labels. The logit
head's losses come from the configuration through :func:`make_semantic_loss`:

* :class:`CrossEntropy` -- ``semantic_loss=ce`` (with ``label_smoothing``);
* :class:`GeneralizedCE` -- ``semantic_loss=gce:<q>``, robust to label noise;
* :class:`NoiseCorrected` -- ``label_noise=em|learn``: the cross-entropy through one label-noise
  transition matrix per scene (:class:`~.losses.NoiseTransition`), which it estimates or learns
  during the fit, checkpoints and reports (``noise_transition.json``).

The palette head fits its colours with :class:`PaletteL1`; an RGB-only fit has
:class:`NoSemanticLoss`. The maths are :mod:`.losses`' functions; these objects choose the
arguments and own whatever state a loss keeps between steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import LabelsplatError
from ..io import atomic_write_json
from .config import FitConfig, LabelNoiseSpec
from .losses import NoiseTransition, palette_loss, semantic_loss


class SemanticLoss(Protocol):
    """The loss of a head's rendered semantic channels ``feats`` (C, H, W, S) against ``labels``
    (C, H, W) class ids (255 = ignore), and the loss's state across the fit."""

    def __call__(self, feats: torch.Tensor, labels: torch.Tensor, *, step: int, steps: int,
                 class_weights: torch.Tensor | None, confidence: torch.Tensor | None) -> torch.Tensor:
        """The scalar loss at ``step`` of ``steps`` (``class_weights`` (K,), ``confidence`` (C, H, W))."""
        ...

    def after_backward(self, step: int, steps: int) -> None:
        """Called once per step after the model's optimisers stepped."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries (top-level keys of the checkpoint); empty for a stateless loss."""
        ...

    def load_state_dict(self, checkpoint: dict[str, Any], path: Path | None = None) -> None:
        """Restore from a checkpoint written with :meth:`state_dict` (``path`` names it in errors)."""
        ...

    def finish(self, out_dir: Path, class_names: list[str]) -> dict[str, Any]:
        """At the end of a fit: write the loss's own files into ``out_dir``, return run-summary entries."""
        ...


class _Stateless:
    """Defaults of a loss that keeps nothing between steps."""

    def after_backward(self, step: int, steps: int) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, checkpoint: dict[str, Any], path: Path | None = None) -> None:
        pass

    def finish(self, out_dir: Path, class_names: list[str]) -> dict[str, Any]:
        return {}


class CrossEntropy(_Stateless):
    """Softmax cross-entropy of logits (``label_smoothing`` in [0, 1))."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = float(label_smoothing)

    def __call__(self, feats, labels, *, step, steps, class_weights, confidence):
        return semantic_loss(feats, labels, class_weights=class_weights, label_smoothing=self.label_smoothing,
                             confidence=confidence, gce_q=0.0)


class GeneralizedCE(_Stateless):
    """Generalized cross-entropy (1 - p_t^q) / q of logits, q in (0, 1] (Zhang & Sabuncu 2018)."""

    def __init__(self, q: float) -> None:
        if not 0.0 < q <= 1.0:
            raise ValueError(f"GeneralizedCE: q must be in (0, 1], got {q}")
        self.q = float(q)

    def __call__(self, feats, labels, *, step, steps, class_weights, confidence):
        return semantic_loss(feats, labels, class_weights=class_weights, label_smoothing=0.0,
                             confidence=confidence, gce_q=self.q)


class NoiseCorrected(_Stateless):
    """Cross-entropy through the scene's label-noise transition T (forward correction).

    Each step folds the rendered class probabilities into T's estimate (``em``) before the loss,
    adds T's trace penalty (``learn``) and steps T's own optimiser after the model's
    (``learn``). T's state is the checkpoint entry ``label_noise``; at the end T is written to
    ``noise_transition.json`` and to the run summary (``label_noise``).
    """

    STATE_KEY = "label_noise"
    FILE = "noise_transition.json"

    def __init__(self, spec: LabelNoiseSpec, num_classes: int, device) -> None:
        self.spec = spec
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self._transition: NoiseTransition | None = None

    @property
    def transition(self) -> NoiseTransition:
        # built on first use: its optimiser (learn) is created after the fit's set-up has finished
        # its background import of torch._dynamo (a torch optimiser's first construction imports it)
        if self._transition is None:
            self._transition = NoiseTransition(self.spec, self.num_classes, self.device)
        return self._transition

    def __call__(self, feats, labels, *, step, steps, class_weights, confidence):
        nt = self.transition
        nt.observe(feats, labels)
        t_noise = nt.for_loss(step, steps)
        loss = semantic_loss(feats, labels, class_weights=class_weights, label_smoothing=0.0, confidence=confidence,
                             gce_q=0.0, transition=t_noise)
        pen = nt.penalty(t_noise, step, steps)
        return loss if pen is None else loss + pen

    def after_backward(self, step: int, steps: int) -> None:
        self.transition.step(step, steps)

    def state_dict(self) -> dict[str, Any]:
        return {self.STATE_KEY: self.transition.state_dict()}

    def load_state_dict(self, checkpoint: dict[str, Any], path: Path | None = None) -> None:
        if self.STATE_KEY not in checkpoint:
            raise LabelsplatError("the checkpoint holds no label-noise transition state", path=path,
                                  hint="resume with the run's own configuration")
        self.transition.load_state_dict(checkpoint[self.STATE_KEY])

    def finish(self, out_dir: Path, class_names: list[str]) -> dict[str, Any]:
        summary = self.transition.summary(class_names)
        atomic_write_json(Path(out_dir) / self.FILE, summary)
        return {self.STATE_KEY: summary}


class PaletteL1(_Stateless):
    """Mean L1 between rendered palette colours and the palette-coloured labels (the paper's variant)."""

    def __init__(self, palette: torch.Tensor) -> None:
        self.palette = palette

    def __call__(self, feats, labels, *, step, steps, class_weights, confidence):
        return palette_loss(feats, labels, self.palette, class_weights=class_weights, confidence=confidence)


class NoSemanticLoss(_Stateless):
    """The loss of an RGB-only fit's empty head: zero."""

    def __call__(self, feats, labels, *, step, steps, class_weights, confidence):
        return torch.zeros((), device=feats.device)


def make_semantic_loss(cfg: FitConfig, num_classes: int, device) -> SemanticLoss:
    """The logit head's semantic loss chosen by ``cfg`` (``label_noise``, ``semantic_loss``,
    ``label_smoothing``; their combinations are checked by :meth:`FitConfig.validate`)."""
    p = cfg.parsed
    if p.label_noise.enabled:
        return NoiseCorrected(p.label_noise, num_classes, device)
    if p.semantic_loss.generalized:
        return GeneralizedCE(p.semantic_loss.q)
    return CrossEntropy(cfg.label_smoothing)


__all__ = ["CrossEntropy", "GeneralizedCE", "NoSemanticLoss", "NoiseCorrected", "PaletteL1", "SemanticLoss",
           "make_semantic_loss"]
