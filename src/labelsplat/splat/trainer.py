"""The joint fit: data loading, initialisation, the training loop, checkpoints and outputs.

:func:`fit` turns a scene directory into a run directory::

    RUN/checkpoint.pt          final state (plain tensors + JSON-able metadata, weights_only loadable)
    RUN/ckpt/step_XXXXX.pt     rolling periodic checkpoints (the last ``keep_checkpoints``)
    RUN/point_cloud.ply        Inria 3DGS PLY in scene units + label, sem_* (palette runs: seg_r/g/b), n_views_seen
    RUN/renders/{rgb,labels,confidence}/<frame>.png   training-view renders (palette runs also seg_rgb/)
    RUN/train_log.jsonl        one JSON line every ``log_every`` steps
    RUN/run.json               scene, scheme, config, seed, versions, normalisation, summary
    RUN/noise_transition.json  the label-noise transition matrix T (only with ``cfg.label_noise`` != none)

``cfg.semantic_target`` picks the semantic head: ``logits`` (K logits, cross-entropy) or
``palette`` (the paper's variant: 3 channels fitted to ``palette[labels] / 255`` with
``sem_weight * L1``, 255 masked out, class 0's palette colour composited behind, labels by the
nearest palette colour).

Determinism: everything random draws from ``torch.manual_seed(seed)`` (global, used by gsplat's
split) and one ``torch.Generator`` (camera order, background colours); both states, the Adam
moments and the densification statistics are checkpointed, so a resumed CPU fit is bitwise
identical to an uninterrupted one.
"""

from __future__ import annotations

import io as _io
import json
import math
import pickle
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import SCHEMA_VERSION, __version__
from ..errors import LabelsplatError
from ..io import (atomic_write_bytes, atomic_write_json, atomic_write_text, clean_leftovers, ensure_dir, read_label,
                  read_rgb)
from ..io import write_png as _write_png
from ..scene import Camera, Scene, load_scene
from .config import FitConfig
from .init import InitPoints, foreground_mask, hull_points, read_point_cloud, sample_views
from .losses import (NoiseTransition, alpha_loss, label_accuracy, palette_accuracy, palette_loss, psnr, rgb_loss,
                     semantic_loss)
from .model import GaussianModel
from .normalize import Normalization, estimate_normalization

CKPT_FORMAT = "labelsplat-splat-checkpoint"
CKPT_VERSION = 1


# ============================================================================ rendering
def camera_tensors(cameras: list[Camera], device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """viewmats (C,4,4) world->camera OpenCV, Ks (C,3,3), centres (C,3) for cameras in the model's frame."""
    viewmats = torch.tensor(np.stack([c.w2c_opencv for c in cameras]), dtype=dtype, device=device)
    Ks = torch.tensor(np.stack([c.K for c in cameras]), dtype=dtype, device=device)
    centres = torch.tensor(np.stack([c.center for c in cameras]), dtype=dtype, device=device)
    return viewmats, Ks, centres


def render_model(
    model: GaussianModel,
    cameras: list[Camera],
    *,
    backend: str = "cpu",
    active_sh: int | None = None,
    bg_rgb: torch.Tensor | None = None,
    bg_logit: float = 10.0,
    semantic_grad_weight: float = 1.0,
    extra: torch.Tensor | None = None,
    return_contrib: bool = False,
    cam_tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Render cameras (normalised frame, all the same size) in one rasterisation of [RGB | sem | extra].

    ``bg_rgb`` (C,3) background colour (default black); behind the semantic channels the
    background logit vector ``bg_logit * one_hot(0)`` (class 0 = background) is composited for a
    logit model, class 0's palette colour for a palette model (``model.semantic_target``);
    the semantic channels' geometry gradients are scaled by ``semantic_grad_weight``.
    ``extra`` (N,E) optional per-Gaussian channels (background 0, no geometry gradient).
    ``cam_tensors``: the cameras' (viewmats, Ks, centres) already on the device (else built here).
    Returns rgb (C,H,W,3), then ``logits`` (C,H,W,K) for a logit model (K = 0: empty) or
    ``seg_rgb`` (C,H,W,3) unclamped palette colours for a palette model (no ``logits`` key),
    extra (C,H,W,E), depth (C,H,W) normalised-frame expected depth, alpha (C,H,W), info (the
    rasteriser's).
    """
    from .rasterize import rasterize

    if len({(c.width, c.height) for c in cameras}) != 1:
        raise ValueError("render_model: all cameras of one call must have the same size")
    dev = model.device
    C = len(cameras)
    viewmats, Ks, centres = camera_tensors(cameras, dev) if cam_tensors is None else cam_tensors
    act = model.activated()
    K = model.sem_channels  # channels of the semantic head (K logits, 3 palette colours, 0)
    palette_mode = model.semantic_target == "palette"
    N = model.num_gaussians
    parts = [model.rgb(centres, active_sh)]
    if K > 0:
        parts.append(model.params["sem"][None].expand(C, N, K))
    E = 0
    if extra is not None:
        if extra.dim() != 2 or extra.shape[0] != N:
            raise ValueError(f"render_model: extra must be (N,E) with N={N}, got {tuple(extra.shape)}")
        E = extra.shape[1]
        parts.append(extra.to(dev, torch.float32)[None].expand(C, N, E))
    colors = torch.cat(parts, dim=-1)
    if bg_rgb is None:
        bg_rgb = torch.zeros(C, 3, device=dev)
    bg = torch.zeros(C, 3 + K + E, device=dev)
    bg[:, :3] = bg_rgb
    if K > 0 and palette_mode:
        bg[:, 3:6] = model.palette[0].to(dev)
    elif K > 0:
        bg[:, 3] = float(bg_logit)
    # on the host: the rasteriser decides the channel layout without a GPU sync
    ggw = (1.0,) * 3 + (float(semantic_grad_weight),) * K + (0.0,) * E
    render, alpha, info = rasterize(
        act["means"], act["quats"], act["scales"], act["opacities"], colors, viewmats, Ks,
        cameras[0].width, cameras[0].height, backgrounds=bg, render_depth=True,
        geom_grad_weights=ggw if (K + E) > 0 else None, backend=backend, return_contrib=return_contrib,
    )
    res = {"rgb": render[..., :3]}
    if palette_mode and K > 0:
        res["seg_rgb"] = render[..., 3 : 3 + K]
    else:
        res["logits"] = render[..., 3 : 3 + K]
    res.update({
        "extra": render[..., 3 + K : 3 + K + E],
        "depth": render[..., -1],
        "alpha": alpha[..., 0],
        "info": info,
    })
    return res


# ============================================================================ data
@dataclass
class ViewData:
    """Training views at the fit's base resolution, numpy (loaded once)."""

    names: list[str]
    cameras: list[Camera]  # scene frame, base resolution
    images: list[np.ndarray]  # (H,W,3) float32 in [0,1]
    labels: list[np.ndarray] | None  # (H,W) uint8 ids, 255 ignore
    masks: list[np.ndarray]  # (H,W) bool foreground (dilated)
    label_files: list[str]
    confidences: list[np.ndarray | None] | None = None  # (H,W) float32 in [0,1] per-pixel label weights


def _resize(arr: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    from PIL import Image

    w, h = size
    if arr.shape[1] == w and arr.shape[0] == h:
        return arr
    img = Image.fromarray(arr)
    return np.asarray(img.resize((w, h), Image.NEAREST if nearest else Image.BOX))


def _scaled_camera(cam: Camera, w: int, h: int) -> Camera:
    sx, sy = w / cam.width, h / cam.height
    return Camera(cam.fx * sx, cam.fy * sy, cam.cx * sx, cam.cy * sy, w, h, cam.c2w.copy())


def load_views(scene: Scene, cfg: FitConfig, num_classes: int) -> ViewData:
    """Read every frame's image, label and mask, downscaled to ``cfg.max_resolution``.

    Raises :class:`LabelsplatError` naming the file for missing images/labels, sizes that
    disagree with the camera, label ids outside the scheme and per-frame scheme mismatches.
    A frame's optional ``label_confidence_path`` (greyscale PNG, 255 = full weight) weights
    its pixels in the semantic loss (a parser's confidence; frames without one weigh 1).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    json_path = Path(scene.root) / "transforms.json"

    def one(idx: int, fr):
        if fr.file_path is None:
            raise LabelsplatError(f"frame {idx} ({fr.name}) has no file_path (RGB image)", path=json_path)
        fs = fr.extra.get("label_scheme")
        if fs is not None and fs != scene.label_scheme:
            raise LabelsplatError(
                f"frame {idx} ({fr.name}) has label_scheme {fs!r} but the scene says {scene.label_scheme!r}",
                path=json_path, hint="convert its labels with `labelsplat labels convert` so all frames share one scheme",
            )
        cam = fr.camera
        ipath = scene.path(fr.file_path)
        rgb = read_rgb(ipath)
        if rgb.shape[:2] != (cam.height, cam.width):
            raise LabelsplatError(
                f"image is {rgb.shape[1]}x{rgb.shape[0]} but frame {fr.name} says w={cam.width}, h={cam.height}",
                path=ipath,
            )
        lab, label_file = None, None
        if num_classes > 0:
            if fr.label_path is None:
                raise LabelsplatError(
                    f"frame {idx} ({fr.name}) has no label_path; a joint fit needs a label map for every view",
                    path=json_path, hint="run `labelsplat parse` on the scene first, or fit RGB only (--rgb-only)",
                )
            lab = read_label(scene.path(fr.label_path), num_classes, shape=(cam.height, cam.width))
            label_file = str(scene.path(fr.label_path))
        conf = None
        if num_classes > 0 and fr.extra.get("label_confidence_path"):
            cpath = scene.path(fr.extra["label_confidence_path"])
            conf = read_rgb(cpath)[..., 0]
            if conf.shape != (cam.height, cam.width):
                raise LabelsplatError(f"confidence map size {conf.shape[1]}x{conf.shape[0]} differs from its image",
                                      path=cpath)
        mask = None
        if fr.mask_path is not None:
            mpath = scene.path(fr.mask_path)
            m = read_rgb(mpath)[..., 0]
            if m.shape != (cam.height, cam.width):
                raise LabelsplatError(f"mask size {m.shape[1]}x{m.shape[0]} differs from its image", path=mpath)
            mask = m > 127
        if mask is None and lab is None:
            if fr.label_path is not None:  # RGB-only fit: the labels still give the foreground
                mask = read_label(scene.path(fr.label_path), shape=(cam.height, cam.width)) != 0
            else:
                mask = np.ones((cam.height, cam.width), dtype=bool)  # no mask, no labels: all foreground
        # base resolution
        f = 1.0
        if cfg.max_resolution is not None and max(cam.width, cam.height) > cfg.max_resolution:
            f = cfg.max_resolution / max(cam.width, cam.height)
        w, h = max(1, round(cam.width * f)), max(1, round(cam.height * f))
        rgb = _resize(rgb, (w, h), nearest=False)
        if lab is not None:
            lab = _resize(lab, (w, h), nearest=True)
        if mask is not None:
            mask = _resize(mask.astype(np.uint8) * 255, (w, h), nearest=False) > 127
        fg = foreground_mask(lab, mask, dilate_px=int(round(cfg.mask_dilate * max(w, h))))
        return (fr.name, _scaled_camera(cam, w, h), rgb.astype(np.float32) / 255.0, lab, fg,
                None if conf is None else _resize(conf, (w, h), nearest=False).astype(np.float32) / 255.0,
                label_file)

    # frames are decoded and resized on threads (PNG decoding and resizing release the GIL);
    # results and the first error come in frame order
    workers = max(1, min(8, os.cpu_count() or 1, len(scene.frames)))
    with ThreadPoolExecutor(workers) as pool:
        rows = list(pool.map(one, range(len(scene.frames)), scene.frames))
    names = [r[0] for r in rows]
    cams = [r[1] for r in rows]
    imgs = [r[2] for r in rows]
    labs = [r[3] for r in rows]
    masks = [r[4] for r in rows]
    confs = [r[5] for r in rows]
    lfiles = [r[6] for r in rows if r[6] is not None]
    any_conf = any(c is not None for c in confs)
    if any_conf:
        confs = [np.ones(m.shape, np.float32) if c is None else c for c, m in zip(confs, masks)]
    return ViewData(names, cams, imgs, labs if num_classes > 0 else None, masks, lfiles, confs if any_conf else None)


class _Levels:
    """Per-resolution-scale torch copies of the views (built on first use or by :meth:`build`, cached)."""

    def __init__(self, views: ViewData, norm: Normalization, device):
        self.views, self.norm, self.device = views, norm, device
        self.cache: dict[float, dict[str, list]] = {}

    def _view(self, i: int, scale: float) -> dict:
        v = self.views
        cam = v.cameras[i]
        w, h = max(1, round(cam.width * scale)), max(1, round(cam.height * scale))
        cam_n = self.norm.camera_to_norm(_scaled_camera(cam, w, h))
        # (viewmat, K, centre) on the device once, so a step copies nothing from the host
        rec: dict = {"cameras": cam_n, "cam_t": tuple(t[0] for t in camera_tensors([cam_n], self.device))}
        img = _resize((v.images[i] * 255.0 + 0.5).astype(np.uint8), (w, h), nearest=False) if scale != 1.0 \
            else None
        img_t = torch.from_numpy(v.images[i] if img is None else img.astype(np.float32) / 255.0)
        rec["images"] = img_t.to(self.device)
        m = _resize(v.masks[i].astype(np.uint8) * 255, (w, h), nearest=False).astype(np.float32) / 255.0
        rec["masks"] = torch.from_numpy(m).to(self.device)
        if v.confidences is not None:
            c = _resize((v.confidences[i] * 255.0 + 0.5).astype(np.uint8), (w, h), nearest=False)
            rec["confidences"] = torch.from_numpy(c.astype(np.float32) / 255.0).to(self.device)
        if v.labels is not None:
            lab = _resize(v.labels[i], (w, h), nearest=True)
            rec["labels"] = torch.from_numpy(lab.astype(np.int64)).to(self.device)
        return rec

    def build(self, scales) -> None:
        """Build the levels of ``scales`` now, the views of each on threads (PIL resizes release
        the GIL), so that the step loop never waits for a resolution switch."""
        import os
        from concurrent.futures import ThreadPoolExecutor

        todo = [sc for sc in dict.fromkeys(scales) if sc not in self.cache]
        if not todo:
            return
        n = len(self.views.cameras)
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            for sc in todo:
                self._store(sc, list(pool.map(lambda i, sc=sc: self._view(i, sc), range(n))))

    def _store(self, scale: float, recs: list[dict]) -> dict[str, list]:
        out: dict[str, list] = {k: [r[k] for r in recs if k in r]
                                for k in ("cameras", "images", "labels", "masks", "confidences", "cam_t")}
        self.cache[scale] = out
        return out

    def get(self, scale: float) -> dict[str, list]:
        if scale in self.cache:
            return self.cache[scale]
        return self._store(scale, [self._view(i, scale) for i in range(len(self.views.cameras))])


# ============================================================================ checks
def check_cameras(scene: Scene, cameras: list[Camera], masks: list[np.ndarray], norm: Normalization) -> list[str]:
    """Refuse cameras that cannot see the head; return warnings for views with an empty foreground."""
    json_path = Path(scene.root) / "transforms.json"
    notes = []
    centre = np.asarray(norm.center)[None]
    for fr, cam, m in zip(scene.frames, cameras, masks):
        uv, z = cam.project(centre)
        u, v = uv[0]
        if not (z[0] > 0):
            raise LabelsplatError(
                f"frame {fr.name}: the head centre is behind the camera (the camera sees nothing of the head)",
                path=json_path,
                hint="check transform_matrix (camera-to-world, OpenGL convention: the camera looks along -z)",
            )
        if not (-cam.width <= u <= 2 * cam.width and -cam.height <= v <= 2 * cam.height):
            raise LabelsplatError(
                f"frame {fr.name}: the head centre projects far outside the image ({u:.0f}, {v:.0f}) "
                "-- the camera sees nothing of the head",
                path=json_path, hint="check the frame's transform_matrix and intrinsics",
            )
        if not m.any():
            notes.append(f"frame {fr.name}: the foreground is empty (labels all background / empty mask)")
    return notes


# ============================================================================ checkpoints
def _save_torch(path: Path, obj: dict) -> None:
    buf = _io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, device="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; LabelsplatError naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise LabelsplatError("checkpoint not found", path=path)
    fix = ("use a checkpoint written by `labelsplat fit` (or resume from an earlier RUN/ckpt/step_*.pt), "
           "or start the run again with --overwrite")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a Python object: never fall back
        raise LabelsplatError("cannot read the checkpoint: it holds Python objects besides tensors, which are "
                              "refused (loading them could run code)", path=path, hint=fix) from exc
    except Exception as exc:  # corrupt / foreign files raise many types
        first = (str(exc).splitlines() or [""])[0].split(". ")[0][:160]
        raise LabelsplatError(f"cannot read the checkpoint ({type(exc).__name__}: {first}): truncated or not a "
                              "PyTorch file", path=path, hint=fix) from exc
    if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
        raise LabelsplatError("not a labelsplat fit checkpoint", path=path, hint=fix)
    if ck.get("version") != CKPT_VERSION:
        raise LabelsplatError(f"checkpoint version {ck.get('version')} is not supported (expected {CKPT_VERSION})",
                              path=path, hint="it was written by another labelsplat version: resume it with that "
                              "version, or start the run again with --overwrite")
    return ck


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``RUN/ckpt/`` or ``RUN/checkpoint.pt``."""
    run_dir = Path(run_dir)
    cands = sorted((run_dir / "ckpt").glob("step_*.pt"))
    best, best_step = None, -1
    final = run_dir / "checkpoint.pt"
    for p in cands + ([final] if final.is_file() else []):
        try:
            step = int(p.stem.split("_")[1]) if p.stem.startswith("step_") else int(1e12)
        except (IndexError, ValueError):
            continue
        if step > best_step:
            best, best_step = p, step
    return best


def _versions() -> dict[str, str]:
    import gsplat

    return {
        "labelsplat": __version__, "torch": str(torch.__version__), "gsplat": getattr(gsplat, "__version__", "?"),
        "numpy": np.__version__, "python": platform.python_version(),
    }


# ============================================================================ the fit
@dataclass
class FitResult:
    run_dir: Path
    model: GaussianModel
    norm: Normalization
    config: FitConfig
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """``None``/``auto`` -> ``gsplat`` on CUDA, ``cpu`` otherwise; check explicit choices."""
    if backend in (None, "auto"):
        return "gsplat" if device.type == "cuda" else "cpu"
    if backend not in ("cpu", "gsplat", "naive"):
        raise LabelsplatError(f"unknown backend {backend!r}", hint="choose cpu or gsplat")
    if backend == "gsplat" and device.type != "cuda":
        raise LabelsplatError("--backend gsplat needs a CUDA device", hint="use --device cuda, or --backend cpu")
    if backend in ("cpu", "naive") and device.type != "cpu":
        raise LabelsplatError(f"--backend {backend} runs on the CPU only", hint="use --device cpu")
    return backend


def scheme_classes(scene: Scene) -> tuple[str, int]:
    from ..schemes import get_scheme

    try:
        sch = get_scheme(scene.label_scheme)
    except LabelsplatError as exc:
        raise LabelsplatError(exc.message, path=Path(scene.root) / "transforms.json", hint=exc.hint) from exc
    return sch.name, sch.num_classes


def semantic_view_weights(scene: Scene, cfg: FitConfig) -> list[float] | None:
    """Per-frame semantic-loss weights from ``cfg.label_view_weight`` (None when ``none``).

    The weight depends on each input camera's yaw in the scene's head frame (DESIGN.md); with
    Adam a Gaussian seen only by low-weight views still learns, the weights only rebalance
    views that disagree about the same surface."""
    from .config import label_view_weight, parse_label_view_weight

    if parse_label_view_weight(cfg.label_view_weight) is None:
        return None
    if scene.head_frame is None:
        raise LabelsplatError(f"label_view_weight={cfg.label_view_weight!r} needs the scene's head_frame",
                              path=Path(scene.root) / "transforms.json",
                              hint="give the scene a head_frame (`labelsplat scene import --head-frame ...`) or use label_view_weight=none")
    from ..scene import yaw_pitch

    return [label_view_weight(cfg.label_view_weight, yaw_pitch(fr.camera.center, scene.head_frame)[0])
            for fr in scene.frames]


def concept_class_weights(scheme_name: str, by_concept) -> list[float]:
    """Per-class weights (K,) in the scheme's order from (concept, weight) pairs; others 1."""
    from ..schemes import get_scheme

    table = dict(by_concept)
    return [float(table.get(c, 1.0)) for c in get_scheme(scheme_name).concepts]


def scheme_palette(scheme_name: str) -> np.ndarray:
    """(K, 3) float32 palette of a scheme in [0, 1] (row = class id): the palette-mode target colours."""
    from ..schemes import get_scheme

    return get_scheme(scheme_name).palette_array().astype(np.float32) / 255.0


def _init_model(scene: Scene, views: ViewData, cams_n: list[Camera], norm: Normalization, cfg: FitConfig,
                K: int, device, palette: np.ndarray | None = None) -> tuple[GaussianModel, str]:
    if scene.ply_file_path:
        pts, cols = read_point_cloud(scene.path(scene.ply_file_path))
        pts_n = norm.to_norm(pts)
        rng = np.random.default_rng(cfg.seed)
        if len(pts_n) > cfg.init_max_points:
            keep = np.sort(rng.choice(len(pts_n), cfg.init_max_points, replace=False))
            pts_n = pts_n[keep]
            cols = None if cols is None else cols[keep]
        c2, labs = sample_views(pts_n, cams_n, views.images, views.labels, K)
        if cols is not None and len(cols) == len(pts_n):
            c2 = cols
        init = InitPoints(pts_n, c2, labs)
        source = f"point cloud {scene.ply_file_path}"
    else:
        init = hull_points(
            cams_n, views.masks, views.images, views.labels, K, resolution=cfg.hull_resolution, bound=cfg.hull_bound,
            vote_fraction=cfg.hull_vote_fraction, min_views=hull_min_views(cfg, len(cams_n)),
            max_points=cfg.init_max_points, seed=cfg.seed,
        )
        source = "visual hull"
    model = GaussianModel.from_points(
        init.means, init.colors, init.labels if K > 0 else None, sh_degree=cfg.sh_degree, num_classes=K,
        init_opacity=cfg.init_opacity, init_logit=cfg.init_logit, device=device,
        semantic_target=cfg.semantic_target, palette=palette,
    )
    return model, source


def hull_min_views(cfg: FitConfig, n_views: int) -> int:
    """Views that must see a voxel for it to be kept: ``cfg.hull_min_views`` or half the views (>= 2)."""
    if cfg.hull_min_views is not None:
        return max(1, min(int(cfg.hull_min_views), n_views))
    return max(min(2, n_views), math.ceil(n_views / 2))


def _make_optimizers(model: GaussianModel, cfg: FitConfig) -> dict[str, torch.optim.Optimizer]:
    s = cfg.lr_scale
    bs = math.sqrt(cfg.batch_size)
    lrs = {
        "means": cfg.means_lr * s, "scales": cfg.scales_lr * s, "quats": cfg.quats_lr * s,
        "opacities": cfg.opacities_lr, "sh0": cfg.sh0_lr * s, "shN": cfg.shN_lr * s, "sem": cfg.sem_lr,
    }
    # fused Adam on CUDA: one kernel per parameter group instead of a dozen (same update rule)
    fused = {"fused": True} if model.device.type == "cuda" else {}
    return {
        k: torch.optim.Adam([{"params": model.params[k], "lr": lr * bs, "name": k}], eps=1e-15 / bs,
                            betas=(1 - cfg.batch_size * (1 - 0.9), 1 - cfg.batch_size * (1 - 0.999)), **fused)
        for k, lr in lrs.items()
    }


def _strategy(cfg: FitConfig):
    from gsplat.strategy import DefaultStrategy

    return DefaultStrategy(
        prune_opa=cfg.prune_opa, grow_grad2d=cfg.grow_grad2d, grow_scale3d=cfg.grow_scale3d,
        prune_scale3d=cfg.prune_scale3d, verbose=False, **cfg.strategy_schedule(),
    )


@torch.no_grad()
def count_views_seen(model: GaussianModel, cameras: list[Camera], *, backend: str, threshold: float) -> torch.Tensor:
    """(N,) int32: in how many of ``cameras`` (normalised frame) each Gaussian's blend-weight sum > threshold."""
    counts = torch.zeros(model.num_gaussians, dtype=torch.int32, device=model.device)
    for cam in cameras:
        out = render_model(model, [cam], backend=backend, return_contrib=True)
        contrib = out["info"]["contrib"][0]
        counts += (contrib > threshold).to(torch.int32)
    return counts


def fit(
    scene: Scene | str | Path,
    out_dir: str | Path,
    cfg: FitConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    backend: str | None = None,
    resume: bool = False,
    progress: bool = False,
    write_outputs: bool = True,
    stop_after: int | None = None,
    torch_threads: int | None = 1,
) -> FitResult:
    """Fit the joint model to ``scene`` and write the run directory ``out_dir``.

    ``cfg`` is required for a new fit (e.g. ``labelsplat.config.fit_preset("tiny")``); on
    ``resume`` it defaults to the run's stored config (a different explicit config is refused). ``stop_after`` ends the loop after that many
    total steps without writing final outputs (used to test resume; the checkpoint at
    that step is written). Raises :class:`LabelsplatError` for bad input and NaN losses.

    ``torch_threads``: torch's intra-op threads during a CPU fit (restored afterwards). The
    default 1 leaves the cores to the numba rasteriser: torch's small per-step tensors gain
    nothing from a second thread, and its OpenMP pool spins badly on a busy machine (measured:
    SSIM fwd+bwd at 128^2 took 0.35-0.6 s CPU with 2 threads vs 0.01 s with 1 on the shared
    2-core box). ``None`` keeps torch's setting.
    """
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    prev_threads = torch.get_num_threads()
    if torch_threads is not None and dev.type == "cpu":
        torch.set_num_threads(int(torch_threads))
    try:
        return _fit(scene, out_dir, cfg, device=dev, backend=backend, resume=resume, progress=progress,
                    write_outputs=write_outputs, stop_after=stop_after)
    finally:
        torch.set_num_threads(prev_threads)


#: backends on which ``semantic_grad=scaled:f`` is realised as a semantic-loss weight
SCALE_BY_LOSS_BACKENDS: frozenset[str] = frozenset({"gsplat"})


def semantic_grad_plan(weight: float, backend: str, num_classes: int) -> tuple[float, float]:
    """(geometry-gradient weight given to the renderer, factor on the semantic loss).

    ``semantic_grad=scaled:f`` asks that the semantic channels contribute f times their
    gradient to the geometry while the semantic parameters learn from their exact gradient.
    With Adam (every parameter group here), an update is invariant to a constant scale of its
    gradient (up to the 1e-15 epsilon), so weighting the semantic loss by f gives the same
    updates: geometry receives f x the semantic gradient, the semantic parameters f x theirs,
    which Adam's normalisation removes. On the gsplat backend this replaces the two
    gradient-scaling autograd nodes per step (the rasteriser then runs as for ``full``); the
    CPU backend scales inside its kernels at no cost and keeps the literal form. ``none``
    (f = 0) cannot be a loss weight and stays with the renderer everywhere.
    """
    if num_classes > 0 and backend in SCALE_BY_LOSS_BACKENDS and weight > 0 and weight != 1:
        return 1.0, float(weight)
    return float(weight), 1.0


def _import_in_background(module: str):
    """Start importing ``module`` on a daemon thread (None if it is already imported).

    torch.optim's first optimizer imports ``torch._dynamo`` (1.6 s on the 2-core dev box, more
    where triton is installed): the fit starts that import while its views load (PNG decoding,
    numpy; no module the import touches), and joins the thread before creating the optimizers.
    A failed import is left to the main thread to raise.
    """
    import importlib
    import sys
    import threading

    if module in sys.modules:
        return None

    def run() -> None:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the main thread's own import reports it
            pass

    th = threading.Thread(target=run, name=f"import {module}", daemon=True)
    th.start()
    return th


def _fit(scene, out_dir, cfg, *, device, backend, resume, progress, write_outputs, stop_after) -> FitResult:
    t_start = time.perf_counter()
    # wall seconds of the fit's phases (run.json summary "phases_s"): where the time outside the
    # step loop goes
    phases: dict[str, float] = {}
    t_mark = [t_start]

    def mark(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(phases.get(name, 0.0) + now - t_mark[0], 4)
        t_mark[0] = now

    warm = _import_in_background("torch._dynamo")
    if not isinstance(scene, Scene):
        scene = load_scene(scene)
    out_dir = Path(out_dir)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    backend = resolve_backend(backend, device)
    clean_leftovers(out_dir)  # temporaries of a killed run (never another live process's)

    ckpt = None
    if resume:
        ck_path = latest_checkpoint(out_dir)
        if ck_path is None:
            raise LabelsplatError("nothing to resume: no checkpoint in the run directory", path=out_dir,
                                  hint="run without --resume to start a new fit")
        ckpt = load_checkpoint(ck_path, device="cpu")
        stored = FitConfig.from_dict(ckpt["meta"]["config"])
        if cfg is not None and cfg.to_dict() != stored.to_dict():
            diff = sorted(k for k, v in cfg.to_dict().items() if stored.to_dict().get(k) != v)
            raise LabelsplatError(
                f"--resume with a configuration that differs from the run's ({', '.join(diff)})", path=ck_path,
                hint="resume with the same options, or start a new run with --overwrite",
            )
        cfg = stored
    else:
        if (out_dir / "run.json").exists() or latest_checkpoint(out_dir) is not None:
            raise LabelsplatError("the run directory already holds a fit", path=out_dir,
                                  hint="pass --resume to continue it or --overwrite to start again")
        if cfg is None:
            raise LabelsplatError("a new fit needs its configuration",
                                  hint="pass a FitConfig, e.g. labelsplat.config.fit_preset('tiny')")
    cfg.validate()

    scheme_name, K = scheme_classes(scene)
    if not cfg.semantics:
        K = 0
    palette_mode = cfg.semantic_target == "palette" and K > 0
    palette_np = scheme_palette(scheme_name) if cfg.semantic_target == "palette" else None
    if palette_np is not None and len(palette_np) != K and K > 0:
        raise LabelsplatError(f"the scheme's palette has {len(palette_np)} colours for {K} classes")
    palette_t = torch.as_tensor(palette_np, device=device) if palette_mode else None
    views = load_views(scene, cfg, K)
    if cfg.label_colour_weight is not None and K > 0:
        from .colour_weights import colour_label_weights

        cw = colour_label_weights([(im * 255.0 + 0.5).astype(np.uint8) for im in views.images], views.labels, K,
                                  masks=views.masks, floor=cfg.label_colour_weight,
                                  full_at=cfg.label_colour_full_at)
        views.confidences = cw if views.confidences is None else [a * b for a, b in zip(views.confidences, cw)]
    mark("load_views")
    norm = (Normalization.from_dict(ckpt["meta"]["normalization"]) if ckpt is not None
            else estimate_normalization(views.cameras, views.masks, scene.head_frame))
    notes = check_cameras(scene, views.cameras, views.masks, norm)
    cams_n = [norm.camera_to_norm(c) for c in views.cameras]
    sizes = {(c.width, c.height) for c in cams_n}
    batch_size = cfg.batch_size if len(sizes) == 1 else 1
    if batch_size > len(cams_n):
        batch_size = len(cams_n)

    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    if ckpt is None:
        model, init_source = _init_model(scene, views, cams_n, norm, cfg, K, device, palette_np)
    else:
        model = GaussianModel.from_state_dict(ckpt["model"], device)
        init_source = ckpt["meta"].get("init_source", "?")
        if model.num_classes != K:
            raise LabelsplatError(f"checkpoint has {model.num_classes} classes, the scene's scheme {K}", path=out_dir)
        if K > 0 and model.semantic_target != cfg.semantic_target:
            raise LabelsplatError(f"checkpoint's semantic head is {model.semantic_target!r}, the configuration "
                                  f"says {cfg.semantic_target!r}", path=out_dir)
    mark("init_model")
    if warm is not None:
        warm.join()
    optimizers = _make_optimizers(model, cfg)
    strategy = _strategy(cfg)
    strategy.check_sanity(model.params, optimizers)
    sstate = strategy.initialize_state(scene_scale=1.0)
    start_step = 0
    perm: torch.Tensor = torch.zeros(0, dtype=torch.int64)
    perm_pos = 0
    elapsed_before = 0.0
    if ckpt is not None:
        for k, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][k])
        for k, v in ckpt["strategy_state"].items():
            sstate[k] = v.to(device) if isinstance(v, torch.Tensor) else v
        if list(ckpt["meta"].get("frame_names", [])) != views.names:
            raise LabelsplatError("the checkpoint was fitted to other frames than this scene's", path=out_dir,
                                  hint="resume with the scene the run was started on")
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        gen.set_state(ckpt["rng"]["generator"])
        perm = ckpt["rng"]["perm"].clone()
        perm_pos = int(ckpt["rng"]["perm_pos"])
        start_step = int(ckpt["step"])
        elapsed_before = float(ckpt["meta"].get("elapsed_s", 0.0))

    meta_base = {
        "scene": str(Path(scene.root).resolve()), "label_scheme": scheme_name, "num_classes": K,
        "config": cfg.to_dict(), "seed": cfg.seed, "normalization": norm.to_dict(), "backend": backend,
        "device": str(device), "init_source": init_source, "frame_names": views.names, "versions": _versions(),
    }
    ensure_dir(out_dir)
    log_path = out_dir / "train_log.jsonl"
    if ckpt is not None and log_path.exists():  # drop lines written after the checkpoint
        def _before_ckpt(ln: str) -> bool:  # a line cut by a kill is not JSON: dropped too
            try:
                rec = json.loads(ln)
            except json.JSONDecodeError:
                return False
            return isinstance(rec, dict) and isinstance(rec.get("step", 0), int) and rec.get("step", 0) < start_step

        kept = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip() and _before_ckpt(ln)]
        atomic_write_text(log_path, "".join(ln + "\n" for ln in kept))
    elif ckpt is None:
        atomic_write_text(log_path, "")

    def save_ckpt(path: Path, step: int, elapsed: float) -> None:
        _save_torch(path, {
            "format": CKPT_FORMAT, "version": CKPT_VERSION, "step": step,
            "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "strategy_state": {k: (v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v)
                               for k, v in sstate.items()},
            "rng": {"torch": torch.get_rng_state(), "generator": gen.get_state(), "perm": perm.clone(),
                    "perm_pos": perm_pos,
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
            "meta": {**meta_base, "elapsed_s": elapsed, "schema_version": SCHEMA_VERSION},
            **({"label_noise": noise.state_dict()} if noise is not None else {}),
        })

    levels = _Levels(views, norm, device)
    levels.build([sc for _, sc in cfg.coarse_to_fine] + [1.0])  # all resolutions of the schedule, up front
    class_w = None
    if cfg.class_weights is not None and K > 0:
        if len(cfg.class_weights) != K:
            raise LabelsplatError(f"class_weights has {len(cfg.class_weights)} entries, the scheme has {K} classes")
        class_w = torch.tensor(cfg.class_weights, dtype=torch.float32, device=device)
    elif cfg.class_weights_by_concept is not None and K > 0:
        class_w = torch.tensor(concept_class_weights(scene.label_scheme, cfg.class_weights_by_concept),
                               dtype=torch.float32, device=device)
    render_sem_w, sem_loss_factor = semantic_grad_plan(cfg.semantic_grad_weight, backend, K)
    view_w = semantic_view_weights(scene, cfg) if K > 0 else None
    from .config import parse_label_noise, parse_semantic_loss

    gce_q = parse_semantic_loss(cfg.semantic_loss)
    noise_spec = parse_label_noise(cfg.label_noise) if K > 0 and not palette_mode else None
    noise = NoiseTransition(noise_spec, K, device) if noise_spec is not None else None
    if noise is not None and ckpt is not None:
        if "label_noise" not in ckpt:
            raise LabelsplatError("the checkpoint holds no label-noise transition state", path=out_dir,
                                  hint="resume with the run's own configuration")
        noise.load_state_dict(ckpt["label_noise"])
    end_step = cfg.steps if stop_after is None else min(cfg.steps, int(stop_after))
    V = len(cams_n)

    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(TextColumn("fit"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                       TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        task = bar.add_task("fit", total=cfg.steps, completed=start_step, stats="")
        bar.start()
    mark("setup")
    t_loop = time.perf_counter()
    last = {}
    defer_nan = device.type == "cuda"
    # On CUDA the random backgrounds of every step are drawn up front (their own generator,
    # indexed by step: resumable) and kept on the device; a per-step host->device copy would
    # synchronise the GPU queue. The CPU keeps its single generator stream.
    bg_table = None
    if device.type == "cuda" and cfg.random_background:
        g_bg = torch.Generator().manual_seed(int(cfg.seed) * 7919 + 17)
        bg_table = torch.rand(cfg.steps, batch_size, 3, generator=g_bg).to(device)
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    try:
        for step in range(start_step, end_step):
            scale = cfg.resolution_scale(step)
            lv = levels.get(scale)
            idx = []
            for _ in range(batch_size):
                if perm_pos >= len(perm):
                    perm = torch.randperm(V, generator=gen)
                    perm_pos = 0
                idx.append(int(perm[perm_pos]))
                perm_pos += 1
            if bg_table is not None:
                bg = bg_table[step]
            elif cfg.random_background:
                bg = torch.rand(batch_size, 3, generator=gen).to(device)
            else:
                bg = torch.zeros(batch_size, 3, device=device)
            frac = step / max(1, cfg.steps)
            optimizers["means"].param_groups[0]["lr"] = (
                cfg.means_lr * cfg.lr_scale * math.sqrt(batch_size) * cfg.means_lr_final_factor ** frac
            )
            active_sh = min(step // max(1, cfg.sh_degree_interval), cfg.sh_degree)
            cams = [lv["cameras"][i] for i in idx]
            cam_t = tuple(torch.stack([lv["cam_t"][i][j] for i in idx]) for j in range(3))
            img = torch.stack([lv["images"][i] for i in idx])
            m = torch.stack([lv["masks"][i] for i in idx])
            target = img * m[..., None] + bg[:, None, None, :] * (1 - m[..., None])
            out = render_model(model, cams, backend=backend, active_sh=active_sh, bg_rgb=bg, bg_logit=cfg.bg_logit,
                               semantic_grad_weight=render_sem_w, cam_tensors=cam_t)
            strategy.step_pre_backward(model.params, optimizers, sstate, step, out["info"])
            l_rgb = rgb_loss(out["rgb"], target, cfg.ssim_lambda)
            loss = l_rgb
            l_sem = torch.zeros((), device=device)
            lab = None
            if K > 0:
                lab = torch.stack([lv["labels"][i] for i in idx])
                if step >= cfg.sem_warmup:
                    conf = torch.stack([lv["confidences"][i] for i in idx]) if lv["confidences"] else None
                    if palette_mode:
                        l_sem = palette_loss(out["seg_rgb"], lab, palette_t, class_weights=class_w, confidence=conf)
                    else:
                        t_noise = None
                        if noise is not None:
                            noise.observe(out["logits"], lab)
                            t_noise = noise.for_loss(step, cfg.steps)
                        l_sem = semantic_loss(out["logits"], lab, class_weights=class_w,
                                              label_smoothing=cfg.label_smoothing, confidence=conf,
                                              gce_q=gce_q, transition=t_noise)
                        if noise is not None:
                            pen = noise.penalty(t_noise, step, cfg.steps)
                            if pen is not None:
                                l_sem = l_sem + pen
                    if view_w is not None:  # the batch's mean view weight scales its semantic loss
                        l_sem = l_sem * float(np.mean([view_w[i] for i in idx]))
                    loss = loss + (cfg.sem_weight * sem_loss_factor) * l_sem
            l_alpha = torch.zeros((), device=device)
            if cfg.alpha_weight > 0:
                l_alpha = alpha_loss(out["alpha"], m)
                loss = loss + cfg.alpha_weight * l_alpha
            # On CUDA the finiteness test is accumulated on the device and read only every
            # log_every / checkpoint_every steps and at the end (a host sync per step would stall
            # the GPU queue); checkpoints are written only after a clean read, so the last one on
            # disk is always finite. On the CPU it is read every step (no cost).
            if defer_nan:
                nonfinite = nonfinite | ~torch.isfinite(loss.detach())
                d1 = step + 1
                check = d1 % cfg.log_every == 0 or d1 % cfg.checkpoint_every == 0 or d1 >= end_step
            else:
                check = True
            if check and not bool(torch.isfinite(loss) & ~nonfinite if defer_nan else torch.isfinite(loss)):
                last_ck = latest_checkpoint(out_dir)
                raise LabelsplatError(
                    f"the loss became NaN/infinite {'by' if defer_nan else 'at'} step {step} (rgb {float(l_rgb.detach()):.4g}, semantic {float(l_sem.detach()):.4g}, "
                    f"alpha {float(l_alpha.detach()):.4g}); the fit stopped",
                    path=out_dir,
                    hint=(f"the last good checkpoint is {last_ck}; " if last_ck else "no checkpoint was written yet; ")
                    + "lower the learning rates (--preset) or check the input images/labels",
                )
            loss.backward()
            for opt in optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
            if noise is not None:
                noise.step(step, cfg.steps)
            strategy.step_post_backward(model.params, optimizers, sstate, step, out["info"], packed=False)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps or step == start_step:
                with torch.no_grad():
                    rec = {
                        "step": step, "loss": float(loss), "rgb_loss": float(l_rgb), "sem_loss": float(l_sem),
                        "alpha_loss": float(l_alpha), "psnr": psnr(out["rgb"].clamp(0, 1), target),
                        "label_acc": (None if lab is None else palette_accuracy(out["seg_rgb"].clamp(0, 1), lab, palette_t)
                                      if palette_mode else label_accuracy(out["logits"], lab)),
                        "n_gaussians": model.num_gaussians, "resolution_scale": scale, "active_sh": active_sh,
                        "time_s": round(elapsed_before + time.perf_counter() - t_loop, 4),
                    }
                if rec["label_acc"] is not None and not math.isfinite(rec["label_acc"]):
                    rec["label_acc"] = None
                last = rec
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")
                if bar is not None:
                    acc = "" if rec["label_acc"] is None else f" acc {rec['label_acc']:.3f}"
                    bar.update(task, completed=done,
                               stats=f"psnr {rec['psnr']:.2f}{acc} n {rec['n_gaussians']}")
            elif bar is not None:
                bar.update(task, completed=done)
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                ck_dir = out_dir / "ckpt"
                save_ckpt(ck_dir / f"step_{done:06d}.pt", done, elapsed_before + time.perf_counter() - t_loop)
                olds = sorted(ck_dir.glob("step_*.pt"))
                for old in olds[: max(0, len(olds) - cfg.keep_checkpoints)]:
                    old.unlink(missing_ok=True)
    finally:
        if bar is not None:
            bar.stop()
    elapsed = elapsed_before + time.perf_counter() - t_loop
    mark("loop")
    if stop_after is not None and end_step < cfg.steps:
        save_ckpt(out_dir / "ckpt" / f"step_{end_step:06d}.pt", end_step, elapsed)
        return FitResult(out_dir, model, norm, cfg, {"step": end_step, "stopped_early": True}, notes)

    # ---------------------------------------------------------------- final outputs
    full = levels.get(1.0)
    from .lift import lifted_logits, parse_semantic_lift, vote_semantics

    lift_prior = parse_semantic_lift(cfg.semantic_lift) if K > 0 and not palette_mode else None
    lift_summary = None
    if lift_prior is not None:
        t_lift = time.perf_counter()
        votes = vote_semantics(model, full["cameras"], full["labels"], K, backend=backend,
                               confidences=full["confidences"] or None, view_weights=view_w,
                               cam_tensors=full["cam_t"])
        with torch.no_grad():
            model.params["sem"].copy_(lifted_logits(votes, model.params["sem"], prior=lift_prior,
                                                    scale=cfg.bg_logit, class_weights=class_w))
        total = votes.sum(dim=-1)
        lift_summary = {"mode": cfg.semantic_lift, "time_s": round(time.perf_counter() - t_lift, 3),
                        "gaussians_without_votes": int((total <= 0).sum()),
                        "median_vote_weight": round(float(total.median()), 4)}
    mark("semantic_lift")
    model.n_views_seen = count_views_seen(model, full["cameras"], backend=backend, threshold=cfg.seen_threshold)
    mark("views_seen")
    summary: dict[str, Any] = {
        "steps": cfg.steps, "n_gaussians": model.num_gaussians, "fit_time_s": round(elapsed, 3),
        "total_time_s": round(time.perf_counter() - t_start, 3), "last_log": last,
    }
    if lift_summary is not None:
        summary["semantic_lift"] = lift_summary
    if noise is not None:
        from ..schemes import get_scheme

        summary["label_noise"] = noise.summary(list(get_scheme(scheme_name).classes))
        atomic_write_json(out_dir / "noise_transition.json", summary["label_noise"])
    if write_outputs:
        summary.update(write_run_outputs(out_dir, model, norm, full, views.names, backend, cfg, scheme_name))
    mark("outputs")
    save_ckpt(out_dir / "checkpoint.pt", cfg.steps, elapsed)
    mark("checkpoint")
    summary["phases_s"] = phases
    if write_outputs:
        atomic_write_json(out_dir / "run.json", {**meta_base, "summary": summary, "notes": notes,
                                                  "resumed_from_step": start_step if ckpt is not None else None})
    return FitResult(out_dir, model, norm, cfg, summary, notes)


@torch.no_grad()
def write_run_outputs(out_dir: Path, model: GaussianModel, norm: Normalization, level: dict, names: list[str],
                      backend: str, cfg: FitConfig, scheme_name: str) -> dict[str, Any]:
    """PLY + training-view renders (RGB, labels, confidence); returns render metrics at the training views.

    Palette runs also write ``renders/seg_rgb/`` (the rendered palette image) and take labels and
    confidence from ``extract_palette(..., method="nearest")``.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from .ply import save_ply

    save_ply(out_dir / "point_cloud.ply", model, norm)
    # PNG encoding (Pillow releases the GIL) runs on threads while the next view renders
    pool = ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1)))
    pending = []

    def queue_png(path, arr):
        pending.append(pool.submit(_write_png, path, arr, compress_level=1))

    rdir = out_dir / "renders"
    psnrs, accs = [], []
    K = model.num_classes
    try:
        for i, (cam, name) in enumerate(zip(level["cameras"], names)):
            out = render_model(model, [cam], backend=backend, bg_logit=cfg.bg_logit)
            m = level["masks"][i]
            target = level["images"][i] * m[..., None]
            psnrs.append(psnr(out["rgb"][0].clamp(0, 1), target))
            rgb = (out["rgb"][0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
            queue_png(rdir / "rgb" / f"{name}.png", rgb)
            if K > 0 and "seg_rgb" in out:
                from ..extract import extract_palette

                seg = out["seg_rgb"][0].clamp(0, 1)
                queue_png(rdir / "seg_rgb" / f"{name}.png", (seg * 255 + 0.5).to(torch.uint8).cpu().numpy())
                ex = extract_palette(seg[None], scheme_name, "nearest")
                queue_png(rdir / "labels" / f"{name}.png", ex.labels[0])
                queue_png(rdir / "confidence" / f"{name}.png", (ex.confidence[0] * 255 + 0.5).astype(np.uint8))
                valid = level["labels"][i].cpu().numpy() != 255
                accs.append(float((ex.labels[0] == level["labels"][i].cpu().numpy())[valid].mean()) if valid.any()
                            else float("nan"))
            elif K > 0:
                prob = torch.softmax(out["logits"][0], dim=-1)
                conf, lab = prob.max(dim=-1)
                queue_png(rdir / "labels" / f"{name}.png", lab.to(torch.uint8).cpu().numpy())
                queue_png(rdir / "confidence" / f"{name}.png", (conf * 255 + 0.5).to(torch.uint8).cpu().numpy())
                accs.append(label_accuracy(out["logits"], level["labels"][i][None]))
    finally:
        pool.shutdown(wait=True)
    for fut in pending:
        fut.result()  # re-raise a failed write
    res = {"train_view_psnr_fg": float(np.mean(psnrs))}
    if accs:
        res["train_view_label_acc_vs_input"] = float(np.nanmean(accs))
    return res
