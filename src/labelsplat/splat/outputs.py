"""A finished fit's files: the PLY, the training-view renders and ``run.json``.

::

    RUN/point_cloud.ply                               Inria 3DGS PLY in scene units (:mod:`.ply`)
    RUN/renders/{rgb,labels,confidence}/<frame>.png   training-view renders (+ the head's own images,
                                                      e.g. seg_rgb/ for a palette head)
    RUN/renders/{labels_colour,overlay}/<frame>.png   the labels in the scheme's palette, and blended
                                                      over the input image (for viewing)
    RUN/run.json                                      scene, scheme, config, seed, versions,
                                                      normalisation, summary
"""

from __future__ import annotations

import os
import platform
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..io import atomic_write_json, write_png
from ..scene.paths import check_name
from ..schemes import colorize, overlay
from .data import ViewLevel
from .losses import psnr
from .model import GaussianModel
from .normalize import Normalization
from .ply import save_ply
from .render import render_model


def versions() -> dict[str, str]:
    """Versions of the packages that decide a fit's numbers (``run.json``'s ``versions``)."""
    import gsplat  # gsplat: a heavy import, only needed when a fit starts

    return {
        "labelsplat": __version__, "torch": str(torch.__version__), "gsplat": getattr(gsplat, "__version__", "?"),
        "numpy": np.__version__, "python": platform.python_version(),
    }


def _uint8(x: torch.Tensor) -> np.ndarray:
    """Values in [0, 1] as uint8 (rounded), on the host."""
    return (x * 255 + 0.5).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def write_run_outputs(out_dir: Path, model: GaussianModel, norm: Normalization, level: ViewLevel, names: list[str],
                      backend: str, bg_logit: float, scheme: str | None = None) -> dict[str, Any]:
    """PLY + training-view renders (RGB, the head's images, labels, confidence; with ``scheme`` also
    the labels coloured and overlaid on the input image); returns render metrics at the training
    views (foreground PSNR, label agreement with the input)."""
    save_ply(out_dir / "point_cloud.ply", model, norm)
    # PNG encoding (Pillow releases the GIL) runs on threads while the next view renders
    pool = ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1)))
    pending = []

    def queue_png(path, arr):
        pending.append(pool.submit(write_png, path, arr, compress_level=1))

    for name in names:
        check_name(name, what="view name")  # joined into renders/*/<name>.png
    rdir = out_dir / "renders"
    head = model.head
    psnrs, accs = [], []
    try:
        for i, (cam, name) in enumerate(zip(level.cameras, names)):
            out = render_model(model, [cam], backend=backend, bg_logit=bg_logit)
            m = level.masks[i]
            target = level.images[i] * m[..., None]
            psnrs.append(psnr(out["rgb"][0].clamp(0, 1), target))
            queue_png(rdir / "rgb" / f"{name}.png", _uint8(out["rgb"][0].clamp(0, 1)))
            feats = head.for_output(out[head.key])
            for folder, img in head.images(feats[0]).items():
                queue_png(rdir / folder / f"{name}.png", _uint8(img))
            decoded = head.decode(feats)
            if decoded is not None:
                labels = decoded.labels[0].cpu().numpy()
                queue_png(rdir / "labels" / f"{name}.png", labels)
                if scheme is not None:  # class ids look black in a viewer: a palette view and an overlay too
                    queue_png(rdir / "labels_colour" / f"{name}.png", colorize(labels, scheme))
                    queue_png(rdir / "overlay" / f"{name}.png", overlay(_uint8(level.images[i].clamp(0, 1)), labels, scheme))
                queue_png(rdir / "confidence" / f"{name}.png", _uint8(decoded.confidence[0]))
                accs.append(head.view_accuracy(feats, decoded, level.labels[i][None]))
    finally:
        pool.shutdown(wait=True)
    for fut in pending:
        fut.result()  # re-raise a failed write
    res = {"train_view_psnr_fg": float(np.mean(psnrs))}
    accs = [a for a in accs if np.isfinite(a)]  # a view without a usable label pixel has no accuracy
    if accs:
        res["train_view_label_acc_vs_input"] = float(np.mean(accs))
    return res


def write_run_json(out_dir: Path, meta: dict[str, Any], summary: dict[str, Any], notes: list[str],
                   resumed_from_step: int | None) -> Path:
    """``RUN/run.json``: the run's metadata, its summary and notes."""
    return atomic_write_json(out_dir / "run.json", {**meta, "summary": summary, "notes": notes,
                                                    "resumed_from_step": resumed_from_step})


__all__ = ["versions", "write_run_json", "write_run_outputs"]
