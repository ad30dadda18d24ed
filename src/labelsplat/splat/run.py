"""Render a fitted model at arbitrary cameras (scene units in, scene units out).

:func:`load_run` reads a run directory's final checkpoint; :func:`render_cameras` renders
any list of :class:`~labelsplat.scene.Camera` (scene frame and units, any sizes) in
batches and returns per camera a dict of numpy arrays:

* ``rgb`` (H, W, 3) float32 in [0, 1] (black background),
* ``logits`` (H, W, K) float32 (background logit vector ``bg_logit * one_hot(0)`` composited behind),
* ``labels`` (H, W) uint8 argmax, ``confidence`` (H, W) max softmax probability,
* ``depth`` (H, W) float32 expected depth in scene units (camera z; 0 where alpha ~ 0),
* ``alpha`` (H, W) float32,
* ``views_seen`` (H, W) float32: alpha-normalised mean of ``n_views_seen`` of the Gaussians
  blended at the pixel,
* ``low_view_fraction`` (H, W) float32 in [0, 1]: the share of the pixel's blend weight that
  comes from Gaussians seen by fewer than ``min_views`` training views. The refine stage marks
  pixels where it exceeds a threshold as unknown (255) rather than guessing.

Palette runs (``config.semantic_target == "palette"``, the paper's variant) return no
``logits`` key; instead

* ``seg_rgb`` (H, W, 3) float32 in [0, 1]: the rendered palette image (class 0's palette
  colour composited behind), clamped,
* ``labels`` / ``confidence`` of the nearest palette colour (:meth:`.heads.PaletteHead.decode`,
  the same as ``labelsplat.extract.extract_palette(seg_rgb, scheme, method="nearest")``; no alpha
  threshold: the background colour is already composited).

The semantic channels' key is ``run.model.head.key``.

A run may carry **members**: further fits of the same scene that differ only in their seed
(``RUN/members/<k>/``, written by ``refine`` with ``members`` > 1). Renders then average them:
the class probabilities (``logits`` become the log of the mean probability, so their softmax and
argmax are the ensemble's), ``rgb``, ``alpha``, ``depth``, ``views_seen`` and
``low_view_fraction``. Whatever edits or exports one model (``labelsplat view``, ``edit``,
``export``) uses ``run.model``, the first fit.

Pure: no file I/O besides :func:`load_run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import resolve_device
from ..errors import LabelsplatError
from ..scene import Camera
from ..schemes import get_scheme, list_schemes
from .checkpoint import load_checkpoint
from .config import FitConfig
from .model import GaussianModel
from .normalize import Normalization
from .ply import load_ply
from .render import render_model, resolve_backend


@dataclass
class FittedRun:
    """A fitted model with what is needed to render it in scene units."""

    model: GaussianModel
    norm: Normalization
    config: FitConfig
    label_scheme: str
    num_classes: int
    meta: dict[str, Any]
    run_dir: Path | None = None
    members: tuple["FittedRun", ...] = ()  # further fits of the scene, averaged by every render

    @property
    def semantic_target(self) -> str:
        """``"logits"`` or ``"palette"`` (the model's semantic head)."""
        return self.model.semantic_target


MEMBERS_DIR = "members"  # RUN/members/<k>/: the ensemble's further fits (k = 1, 2, ...)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> FittedRun:
    """Load ``RUN/checkpoint.pt`` (written at the end of a fit) onto ``device`` (auto | cpu | cuda),
    with the finished fits under ``RUN/members/`` as its members."""
    path = final_checkpoint(run_dir)
    run = run_from_checkpoint(load_checkpoint(path, device="cpu"), path, device)
    members = []
    for mdir in member_dirs(path.parent):
        if not (mdir / "checkpoint.pt").is_file():
            continue  # an unfinished member (an interrupted refine) is not part of the ensemble
        m = run_from_checkpoint(load_checkpoint(mdir / "checkpoint.pt", device="cpu"), mdir / "checkpoint.pt", device)
        if (m.label_scheme, m.num_classes, m.semantic_target) != (run.label_scheme, run.num_classes,
                                                                 run.semantic_target):
            raise LabelsplatError(f"this member's labels ({m.label_scheme}, {m.num_classes} classes, "
                                  f"{m.semantic_target}) differ from the run's ({run.label_scheme}, "
                                  f"{run.num_classes} classes, {run.semantic_target})", path=mdir,
                                  hint="remove the member folder or refit the scene")
        members.append(m)
    run.members = tuple(members)
    return run


def member_dirs(run_dir: str | Path) -> list[Path]:
    """``RUN/members/<k>`` folders in the order of k (numbered folders only)."""
    root = Path(run_dir) / MEMBERS_DIR
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def final_checkpoint(run_dir: str | Path) -> Path:
    """``RUN/checkpoint.pt`` (``run_dir`` may also be the checkpoint file itself); refused when the fit
    did not finish."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint.pt" if run_dir.is_dir() else run_dir
    if run_dir.is_dir() and not path.is_file():
        raise LabelsplatError("the run has no final checkpoint.pt (the fit did not finish)", path=run_dir,
                              hint="finish it with `labelsplat fit SCENE --out RUN --resume`")
    return path


def run_from_checkpoint(ck: dict, path: Path, device: str | torch.device = "cpu") -> FittedRun:
    """The :class:`FittedRun` of a loaded final checkpoint ``ck`` (read from ``path``)."""
    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    meta = ck["meta"]
    model = GaussianModel.from_state_dict(ck["model"], dev)
    return FittedRun(
        model=model, norm=Normalization.from_dict(meta["normalization"]), config=FitConfig.from_dict(meta["config"]),
        label_scheme=meta["label_scheme"], num_classes=int(meta["num_classes"]), meta=meta,
        run_dir=path.parent,
    )


def _ply_scheme(num_classes: int, scheme: str | None, path: Path) -> str:
    if scheme is not None:
        if get_scheme(scheme).num_classes != num_classes:
            raise LabelsplatError(f"the PLY has {num_classes} classes, the scheme {scheme} "
                                  f"{get_scheme(scheme).num_classes}", path=path)
        return scheme
    names = [n for n in ["celebamask19-zll", *list_schemes()] if get_scheme(n).num_classes == num_classes]
    return names[0] if names else ""


def load_ply_run(path: str | Path, device: str | torch.device = "cpu", *, scheme: str | None = None) -> FittedRun:
    """A bare 3DGS PLY (:func:`.ply.load_ply`: ours or any Inria-convention file) as a run in its
    own frame (identity normalisation, no cameras). Its labels (``sem_*`` logits or palette
    colours) use ``scheme``, by default the first known scheme with as many classes (none: RGB only)."""
    path = Path(path)
    a = load_ply(path)
    sem = a["sem"] if a["seg_rgb"] is None else a["seg_rgb"]
    k = sem.shape[1] if a["seg_rgb"] is None else (get_scheme(scheme).num_classes if scheme else 19)
    name = _ply_scheme(k, scheme, path) if sem.shape[1] else ""
    if not name:
        sem, k = np.zeros((len(a["means"]), 0)), 0
    state: dict[str, Any] = {
        "params": {key: torch.as_tensor(np.asarray(v), dtype=torch.float32) for key, v in (
            ("means", a["means"]), ("scales", a["scales"]), ("quats", a["quats"]), ("opacities", a["opacities"]),
            ("sh0", a["sh0"]), ("shN", a["shN"]), ("sem", sem))},
        "sh_degree": int(a["sh_degree"]), "num_classes": k,
        "n_views_seen": torch.as_tensor(a["n_views_seen"], dtype=torch.int32),
    }
    if a["seg_rgb"] is not None and k:
        state.update(semantic_target="palette",
                     palette=torch.as_tensor(get_scheme(name).palette_array() / 255.0, dtype=torch.float32))
    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    model = GaussianModel.from_state_dict(state, dev)
    return FittedRun(model=model, norm=Normalization.identity(), config=FitConfig(), label_scheme=name,
                     num_classes=k, meta={"ply": str(path)}, run_dir=None)


@torch.no_grad()
def render_batches(
    run: FittedRun,
    cameras: list[Camera],
    *,
    batch_size: int = 4,
    backend: str | None = None,
    resolution_scale: float = 1.0,
    min_views: int = 2,
    bg_logit: float | None = None,
):
    """Render ``cameras`` and yield, per batch of same-size cameras, a dict of tensors on the
    model's device (no host copies): ``rgb`` (B,H,W,3) clamped, the head's channels (``logits``
    (B,H,W,K), or ``seg_rgb`` (B,H,W,3) clamped for palette runs), ``depth`` (scene units, 0 where
    alpha ~ 0), ``alpha``, ``views_seen``, ``low_view_fraction`` (B,H,W), and ``start`` (index of
    the batch's first camera).

    This is what :func:`render_cameras` converts to numpy; callers that keep work on the GPU
    (extraction of many views) consume it directly.
    """
    if not isinstance(run, FittedRun):
        raise TypeError(f"render_cameras expects a FittedRun (from load_run), got {type(run).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if resolution_scale <= 0:
        raise ValueError(f"resolution_scale must be > 0, got {resolution_scale}")
    fits = (run, *run.members)
    views = []
    for c in cameras:
        if not isinstance(c, Camera):
            raise TypeError(f"cameras must be labelsplat.scene.Camera, got {type(c).__name__}")
        views.append(c.scaled(resolution_scale) if resolution_scale != 1.0 else c)
    i = 0
    while i < len(views):
        size = (views[i].width, views[i].height)
        j = i
        while j < len(views) and j - i < batch_size and (views[j].width, views[j].height) == size:
            j += 1
        outs = [_render_fit(f, views[i:j], backend, bg_logit, min_views) for f in fits]
        batch = outs[0] if len(outs) == 1 else _average(outs, run.model.head)
        batch["start"] = i
        yield batch
        i = j


def _render_fit(run: FittedRun, cameras: list[Camera], backend: str | None, bg_logit: float | None,
                min_views: int) -> dict[str, torch.Tensor]:
    """One fit's render of same-size scene cameras (the dict :func:`render_batches` yields, less ``start``)."""
    model = run.model
    backend = resolve_backend(backend, model.device)
    bg_logit = run.config.bg_logit if bg_logit is None else float(bg_logit)
    nvs = model.n_views_seen
    if nvs is None:
        nvs = torch.full((model.num_gaussians,), -1, dtype=torch.int32, device=model.device)
    extra = torch.stack([nvs.float().clamp_min(0), (nvs < min_views).float()], dim=1)  # (N,2)
    out = render_model(model, [run.norm.camera_to_norm(c) for c in cameras], backend=backend, bg_logit=bg_logit,
                       extra=extra)
    alpha = out["alpha"]
    safe = alpha.clamp_min(1e-6)
    low = (out["extra"][..., 1] / safe).clamp(0, 1)
    batch = {
        "rgb": out["rgb"].clamp(0, 1).float(),
        "depth": torch.where(alpha > 1e-3, out["depth"] * run.norm.scale, torch.zeros_like(alpha)).float(),
        "alpha": alpha.float(),
        "views_seen": (out["extra"][..., 0] / safe).float(),
        "low_view_fraction": torch.where(alpha > 1e-3, low, torch.ones_like(low)).float(),
    }
    batch[model.head.key] = model.head.for_output(out[model.head.key]).float()
    return batch


def _average(outs: list[dict[str, torch.Tensor]], head) -> dict[str, torch.Tensor]:
    """The ensemble's render: the head's channels combined by the head, the rest averaged."""
    first = outs[0]
    dev = first["rgb"].device
    avg = {k: torch.stack([o[k].to(dev) for o in outs]).mean(dim=0) for k in first if k != head.key}
    avg[head.key] = head.combine([o[head.key].to(dev) for o in outs])
    return avg


@torch.no_grad()
def render_cameras(
    run: FittedRun,
    cameras: list[Camera],
    *,
    batch_size: int = 4,
    backend: str | None = None,
    resolution_scale: float = 1.0,
    min_views: int = 2,
    bg_logit: float | None = None,
) -> list[dict[str, np.ndarray]]:
    """Render ``cameras`` (scene frame) and return one dict per camera (see the module docstring).

    Consecutive cameras of the same size are rendered ``batch_size`` at a time; the backend
    follows the model's device (``gsplat`` on CUDA, ``cpu`` otherwise) unless given.
    ``resolution_scale`` renders every camera at that multiple of its size.
    """
    results: list[dict[str, np.ndarray]] = []
    for batch in render_batches(run, cameras, batch_size=batch_size, backend=backend,
                                resolution_scale=resolution_scale, min_views=min_views, bg_logit=bg_logit):
        head = run.model.head
        decoded = head.decode(batch[head.key])
        for b in range(batch["rgb"].shape[0]):
            d = {"rgb": batch["rgb"][b].cpu().numpy(), head.key: batch[head.key][b].cpu().numpy()}
            for key in ("depth", "alpha", "views_seen", "low_view_fraction"):
                d[key] = batch[key][b].cpu().numpy()
            if decoded is not None:
                d["labels"] = decoded.labels[b].cpu().numpy()
                d["confidence"] = decoded.confidence[b].cpu().numpy()
            results.append(d)
    return results


__all__ = ["FittedRun", "load_ply_run", "load_run", "render_batches", "render_cameras"]
