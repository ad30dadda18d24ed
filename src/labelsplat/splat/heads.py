"""The semantic head of the joint model: what its ``sem`` channels mean.

One :class:`SemanticHead` per ``FitConfig.semantic_target`` (plus the empty head of an RGB-only
fit); every difference between them lives here:

* :class:`LogitsHead` (``logits``, the default): K class logits; the background logit vector
  ``bg_logit * one_hot(0)`` is composited behind them; the loss is a :class:`~.semantic_loss.SemanticLoss`
  chosen by the configuration (cross-entropy, generalized CE, noise-corrected); labels are the
  argmax and confidence the max softmax probability.
* :class:`PaletteHead` (``palette``, the paper's variant): 3 channels, a colour in the scheme's
  palette colour space (RGB in [0, 1], unclamped), fitted with an L1 loss to the palette-coloured
  labels; class 0's colour is composited behind; labels are the nearest palette colour with a
  distance-based confidence (:func:`soft_assign`; ``labelsplat.extract.extract_palette`` uses the
  same functions).
* :class:`EmptyHead`: no semantic channels (K = 0), the same code path.

A head owns: its channel count, the background composited behind it, the initial features from
point labels, its loss, its accuracy, decoding rendered features to (labels, confidence), its
PLY columns and its entries in the model's state (a logit model's state has none, so its
checkpoints look as they always did).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import LabelsplatError
from ..schemes import get_scheme
from .config import SEMANTIC_TARGETS, FitConfig
from .losses import label_accuracy, palette_accuracy
from .semantic_loss import CrossEntropy, NoSemanticLoss, PaletteL1, SemanticLoss, make_semantic_loss

#: views decoded at a time by :meth:`PaletteHead.decode` (bounds the (pixels, K) distance table)
DECODE_CHUNK = 8


@dataclass
class Decoded:
    """Labels decoded from rendered semantic features: ``labels`` (...) uint8 class ids,
    ``confidence`` (...) float32 in [0, 1]; tensors on the features' device."""

    labels: torch.Tensor
    confidence: torch.Tensor


class SemanticHead(Protocol):
    """The semantic head of a :class:`~.model.GaussianModel` (see the module docstring)."""

    target: str  # the FitConfig.semantic_target it implements
    key: str  # the key of its channels in render results ("logits" or "seg_rgb")
    num_classes: int
    channels: int  # per-Gaussian features: K, 3 or 0
    semantic_loss: SemanticLoss

    def fill_background(self, bg: torch.Tensor, bg_logit: float) -> None:
        """Write the background composited behind the channels into ``bg`` (C, channels)."""
        ...

    def init_features(self, labels: np.ndarray | None, n: int, device) -> torch.Tensor:
        """(n, channels) float32 initial features of points with class ids ``labels`` (-1 = unknown)."""
        ...

    def for_output(self, feats: torch.Tensor) -> torch.Tensor:
        """Rendered features as renders hand them out (the palette's colours clamped to [0, 1])."""
        ...

    def combine(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """One output from the :meth:`for_output` features of several fits of a scene at the same
        cameras (an ensemble of fits): their class probabilities (or colours) averaged."""
        ...

    def images(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra training-view images (folder -> (H, W, 3) in [0, 1]) of output features (H, W, S)."""
        ...

    def decode(self, feats: torch.Tensor) -> Decoded | None:
        """Labels and confidence of output features (..., S); None without classes."""
        ...

    def accuracy(self, feats: torch.Tensor, labels: torch.Tensor) -> float | None:
        """Pixel accuracy of rendered features against ids (C, H, W) (the training log's ``label_acc``)."""
        ...

    def view_accuracy(self, feats: torch.Tensor, decoded: Decoded, labels: torch.Tensor) -> float:
        """Accuracy of one training view's render (``feats`` output features, ``decoded`` their labels)
        against its input labels (1, H, W): ``run.json``'s ``train_view_label_acc_vs_input``."""
        ...

    def class_features(self, class_id: int, scale: float) -> torch.Tensor:
        """(channels,) features of a Gaussian that certainly has class ``class_id`` (a 3D label
        edit); ``scale``: the background logit (the scale of a logit head's features)."""
        ...

    def ply_columns(self, sem: np.ndarray) -> list[tuple[str, np.ndarray, str]]:
        """PLY vertex columns (name, values, numpy type) of per-Gaussian features ``sem`` (N, S) float64."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Entries of the model's state describing the head (plain tensors and strings)."""
        ...


def palette_sigma(palette: np.ndarray) -> float:
    """Colour-distance scale for palette confidences: a quarter of the smallest distance between
    two palette colours (in [0, 1] RGB units). A pixel exactly on a palette colour then gets a
    confidence > 0.999; one half-way between two colours gets 0.5."""
    d = np.sqrt(((palette[:, None, :] - palette[None, :, :]) ** 2).sum(-1))
    d[np.eye(len(palette), dtype=bool)] = np.inf
    return float(d.min()) / 4.0


def soft_assign(x: torch.Tensor, centres: torch.Tensor, centre_class: torch.Tensor, num_classes: int,
                sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel class distribution of colours ``x`` (..., 3) from their distances to ``centres``
    (C, 3): ``softmax(-|x - c|^2 / (2 sigma^2))`` over centres, summed per class (``centre_class``
    (C,)). Returns (label, max class probability, class entropy)."""
    d2 = ((x[..., None, :] - centres) ** 2).sum(-1)
    p_c = torch.softmax(-d2 / (2.0 * sigma * sigma), dim=-1)
    onehot = torch.nn.functional.one_hot(centre_class, num_classes).to(p_c.dtype)
    p = p_c @ onehot
    conf, lab = p.max(dim=-1)
    ent = (-(p * torch.log(p.clamp_min(1e-12))).sum(-1)).clamp_min(0.0)
    return lab, conf, ent


def _labels_tensor(labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    lab = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    return lab, lab >= 0


class LogitsHead:
    """K class logits per Gaussian (see the module docstring)."""

    target = "logits"
    key = "logits"

    def __init__(self, num_classes: int, *, init_logit: float = 3.0, semantic_loss: SemanticLoss | None = None):
        if int(num_classes) < 1:
            raise LabelsplatError(f"a logit head needs at least one class, got {num_classes}")
        self.num_classes = self.channels = int(num_classes)
        self.init_logit = float(init_logit)
        self.semantic_loss = semantic_loss if semantic_loss is not None else CrossEntropy()

    @classmethod
    def from_config(cls, cfg: FitConfig, scheme: str, num_classes: int, device) -> "LogitsHead":
        return cls(num_classes, init_logit=cfg.init_logit, semantic_loss=make_semantic_loss(cfg, num_classes, device))

    @classmethod
    def from_state(cls, state: dict[str, Any], num_classes: int, device) -> "LogitsHead":
        return cls(num_classes)

    def fill_background(self, bg: torch.Tensor, bg_logit: float) -> None:
        bg[:, 0] = float(bg_logit)

    def init_features(self, labels, n, device):
        """``init_logit * one_hot(label)`` (zeros where unknown)."""
        sem = torch.zeros(n, self.num_classes, dtype=torch.float32, device=device)
        if labels is not None:
            lab, known = _labels_tensor(labels, device)
            ok = known & (lab < self.num_classes)
            sem[ok, lab[ok]] = self.init_logit
        return sem

    def for_output(self, feats):
        return feats

    def combine(self, outputs):
        # log of the mean softmax: softmax (extraction, confidence) of the result is the mean probability
        logp = torch.stack([torch.log_softmax(o.float(), dim=-1) for o in outputs])
        return torch.logsumexp(logp, dim=0) - math.log(len(outputs))

    def images(self, feats):
        return {}

    def decode(self, feats):
        prob = torch.softmax(feats, dim=-1)
        conf, lab = prob.max(dim=-1)
        return Decoded(lab.to(torch.uint8), conf.float())

    def accuracy(self, feats, labels):
        return label_accuracy(feats, labels)

    def view_accuracy(self, feats, decoded, labels):
        return label_accuracy(feats, labels)

    def class_features(self, class_id, scale):
        """``scale * one_hot(class_id)`` (what the multiview vote gives a unanimous Gaussian)."""
        f = torch.zeros(self.num_classes, dtype=torch.float32)
        f[int(class_id)] = float(scale)
        return f

    def ply_columns(self, sem):
        return [("label", sem.argmax(1), "u1")] + [(f"sem_{i}", sem[:, i], "f4") for i in range(sem.shape[1])]

    def state_dict(self) -> dict[str, Any]:
        return {}


class PaletteHead:
    """A palette colour per Gaussian (the paper's variant, see the module docstring).

    ``palette`` (K, 3) in [0, 1] (the scheme's colours, row = class id).
    """

    target = "palette"
    key = "seg_rgb"
    channels = 3

    def __init__(self, palette: np.ndarray | torch.Tensor, *, device=None):
        if palette is None:
            raise LabelsplatError("a palette model needs the scheme's palette (K, 3)")
        pal = palette.detach().float() if isinstance(palette, torch.Tensor) else np.asarray(palette, np.float32)
        self.palette = torch.as_tensor(pal).to(device if device is not None else "cpu")
        if self.palette.dim() != 2 or self.palette.shape[1] != 3 or self.palette.shape[0] < 1:
            raise LabelsplatError(f"palette has shape {tuple(self.palette.shape)}, expected (K, 3)")
        self.num_classes = int(self.palette.shape[0])
        self.sigma = palette_sigma(self.palette.cpu().numpy())
        self.semantic_loss: SemanticLoss = PaletteL1(self.palette)

    @classmethod
    def from_config(cls, cfg: FitConfig, scheme: str, num_classes: int, device) -> "PaletteHead":
        palette = get_scheme(scheme).palette_array().astype(np.float32) / 255.0
        if len(palette) != num_classes:
            raise LabelsplatError(f"the scheme's palette has {len(palette)} colours for {num_classes} classes")
        return cls(torch.as_tensor(palette, device=device), device=device)

    @classmethod
    def from_state(cls, state: dict[str, Any], num_classes: int, device) -> "PaletteHead":
        head = cls(state.get("palette"), device=device)
        if head.num_classes != num_classes:
            raise LabelsplatError(f"palette has shape {tuple(head.palette.shape)}, expected ({num_classes}, 3)")
        return head

    def fill_background(self, bg: torch.Tensor, bg_logit: float) -> None:
        bg[:] = self.palette[0].to(bg.device)

    def init_features(self, labels, n, device):
        """``palette[label]`` (0.5 grey where unknown)."""
        sem = torch.full((n, 3), 0.5, dtype=torch.float32, device=device)
        if labels is not None:
            lab, known = _labels_tensor(labels, device)
            ok = known & (lab < self.num_classes)
            sem[ok] = self.palette.to(device)[lab[ok]]
        return sem

    def for_output(self, feats):
        return feats.clamp(0, 1)

    def combine(self, outputs):
        return torch.stack(outputs).mean(dim=0)

    def images(self, feats):
        return {"seg_rgb": feats}

    def decode(self, feats):
        """The nearest palette colour (ties to the lower id) and its soft-assignment probability
        (``labelsplat.extract.extract_palette(..., method="nearest")`` without an alpha threshold)."""
        x_all = feats.float()
        if not torch.isfinite(x_all).all():
            raise LabelsplatError("the rendered palette colours contain NaN or infinite values")
        pal = self.palette.to(x_all.device)
        centre_class = torch.arange(self.num_classes, device=x_all.device)
        flat = x_all.reshape(-1, *x_all.shape[-3:]) if x_all.dim() >= 3 else x_all[None]
        labs, confs = [], []
        for s in range(0, flat.shape[0], DECODE_CHUNK):
            lab, conf, _ = soft_assign(flat[s:s + DECODE_CHUNK], pal, centre_class, self.num_classes, self.sigma)
            labs.append(lab)
            confs.append(conf)
        shape = x_all.shape[:-1]
        return Decoded(torch.cat(labs).to(torch.uint8).reshape(shape), torch.cat(confs).float().reshape(shape))

    def accuracy(self, feats, labels):
        return palette_accuracy(feats.clamp(0, 1), labels, self.palette)

    def view_accuracy(self, feats, decoded, labels):
        lab = labels.cpu().numpy()
        valid = lab != 255
        return float((decoded.labels.cpu().numpy() == lab)[valid].mean()) if valid.any() else float("nan")

    def class_features(self, class_id, scale):
        """The class's palette colour."""
        return self.palette[int(class_id)].detach().float().cpu().clone()

    def ply_columns(self, sem):
        pal = self.palette.detach().cpu().numpy().astype(np.float64)
        lab = ((sem[:, None, :] - pal[None]) ** 2).sum(-1).argmin(1)
        return [("label", lab, "u1")] + [(f"seg_{c}", sem[:, i], "f4") for i, c in enumerate("rgb")]

    def state_dict(self) -> dict[str, Any]:
        return {"semantic_target": self.target, "palette": self.palette.detach().cpu().clone()}


class EmptyHead:
    """No semantic channels (an RGB-only fit, K = 0). ``target`` remembers the configured head
    (a palette configuration's state keeps saying so)."""

    key = "logits"
    num_classes = 0
    channels = 0

    def __init__(self, target: str = "logits"):
        if target not in SEMANTIC_TARGETS:
            raise LabelsplatError(f"unknown semantic_target {target!r}", hint="use logits or palette")
        self.target = target
        self.semantic_loss: SemanticLoss = NoSemanticLoss()

    def fill_background(self, bg: torch.Tensor, bg_logit: float) -> None:
        pass

    def init_features(self, labels, n, device):
        return torch.zeros(n, 0, dtype=torch.float32, device=device)

    def for_output(self, feats):
        return feats

    def combine(self, outputs):
        return outputs[0]

    def images(self, feats):
        return {}

    def decode(self, feats):
        return None

    def accuracy(self, feats, labels):
        return None

    def view_accuracy(self, feats, decoded, labels):
        return float("nan")

    def class_features(self, class_id, scale):
        raise LabelsplatError("an RGB-only run has no labels to edit")

    def ply_columns(self, sem):
        return []

    def state_dict(self) -> dict[str, Any]:
        return {} if self.target == "logits" else {"semantic_target": self.target, "palette": None}


#: the head class of each FitConfig.semantic_target
HEADS: dict[str, Any] = {"logits": LogitsHead, "palette": PaletteHead}
assert tuple(HEADS) == SEMANTIC_TARGETS


def make_head(cfg: FitConfig, scheme: str, num_classes: int, device) -> SemanticHead:
    """The head (with its semantic loss) a fit of ``cfg`` trains for ``num_classes`` classes of ``scheme``."""
    if num_classes == 0:
        return EmptyHead(cfg.semantic_target)
    return HEADS[cfg.semantic_target].from_config(cfg, scheme, num_classes, device)


def head_from_state(state: dict[str, Any], device) -> SemanticHead:
    """The head described by a model state (``semantic_target``, ``palette``; none = logits)."""
    target = str(state.get("semantic_target", "logits"))
    num_classes = int(state["num_classes"])
    if target not in HEADS:
        raise LabelsplatError(f"unknown semantic_target {target!r}", hint="use logits or palette")
    if num_classes == 0:
        return EmptyHead(target)
    return HEADS[target].from_state(state, num_classes, device)


__all__ = ["DECODE_CHUNK", "Decoded", "EmptyHead", "HEADS", "LogitsHead", "PaletteHead", "SemanticHead",
           "head_from_state", "make_head", "palette_sigma", "soft_assign"]
