"""A tiny procedural head scene for the fit tests (no dependency on labelsplat.synth).

An ellipsoid of coloured, labelled Gaussian blobs in mm-like units (centre (10, 20, 30),
radius ~90), rendered with the frozen naive rasteriser from a ring of cameras; the image
background is random texture, labels are the argmax of one-hot logits (0 = background).
Classes follow celebamask19-zll: 1 skin, 7 l_ear (+x, the subject's left), 8 r_ear,
10 nose (+z, forward), 17 hair (top).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from labelsplat.io import write_png
from labelsplat.scene import Frame, HeadFrame, Scene, look_at, save_scene

CENTER = np.array([10.0, 20.0, 30.0])
RADIUS = 90.0
K = 19
PALETTE = {1: (230, 180, 150), 7: (60, 160, 60), 8: (60, 60, 200), 10: (220, 60, 60), 17: (40, 30, 20)}


def head_gaussians(n: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = d * np.array([0.85, 1.0, 0.9])
    lab = np.ones(n, dtype=np.int64)
    lab[pts[:, 1] > 0.55] = 17
    lab[(pts[:, 2] > 0.6) & (np.abs(pts[:, 0]) < 0.3) & (np.abs(pts[:, 1]) < 0.4)] = 10
    # ears: protruding bumps on the sides
    ear_l = pts[:, 0] > 0.75
    ear_r = pts[:, 0] < -0.75
    pts[ear_l, 0] += 0.15
    pts[ear_r, 0] -= 0.15
    lab[ear_l & (np.abs(pts[:, 1]) < 0.3)] = 7
    lab[ear_r & (np.abs(pts[:, 1]) < 0.3)] = 8
    col = np.array([PALETTE[int(c)] for c in lab], dtype=np.float64) / 255.0
    col = np.clip(col + rng.normal(scale=0.03, size=col.shape), 0, 1)
    return pts, col, lab


def ring_cameras(n_views: int, res: int, *, yaw_span: float = 360.0, pitch_deg: float = 10.0):
    cams = []
    for i in range(n_views):
        yaw = np.deg2rad(-yaw_span / 2 + (i + 0.5) * yaw_span / n_views)
        pitch = np.deg2rad(pitch_deg * (1 if i % 2 else -1))
        d = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
        eye = CENTER + 4.0 * RADIUS * d
        cams.append(look_at(eye, CENTER, [0.0, 1.0, 0.0], 1.5 * res, 1.5 * res, res, res))
    return cams


@torch.no_grad()
def render_gt(cams, n: int = 500, seed: int = 0):
    """Per camera: rgb float (H,W,3) without background, alpha (H,W), labels uint8 (H,W)."""
    from labelsplat.splat.rasterize import rasterize

    pts, col, lab = head_gaussians(n, seed)
    means = torch.tensor(CENTER + RADIUS * pts, dtype=torch.float32)
    N = len(means)
    quats = torch.zeros(N, 4)
    quats[:, 0] = 1
    scales = torch.full((N, 3), 0.12 * RADIUS)
    opac = torch.full((N,), 0.95)
    onehot = torch.nn.functional.one_hot(torch.tensor(lab), K).float() * 10
    colors = torch.cat([torch.tensor(col, dtype=torch.float32), onehot], 1)
    out = []
    for cam in cams:
        vm = torch.tensor(cam.w2c_opencv, dtype=torch.float32)[None]
        Kt = torch.tensor(cam.K, dtype=torch.float32)[None]
        bg = torch.zeros(1, 3 + K)
        bg[0, 3] = 10.0
        r, a, _ = rasterize(means, quats, scales, opac, colors, vm, Kt, cam.width, cam.height,
                            backgrounds=bg, render_depth=False, backend="naive")
        out.append((r[0, ..., :3].clamp(0, 1).numpy(), a[0, ..., 0].numpy(), r[0, ..., 3:].argmax(-1).numpy().astype(np.uint8)))
    return out


def make_scene(root: Path, n_views: int = 8, res: int = 48, seed: int = 0, *, head_frame: bool = True,
               label_noise: float = 0.0) -> Path:
    """Write the scene to ``root``; returns ``root``. ``label_noise`` flips that fraction of
    foreground pixels to a random class (for quality checks)."""
    root = Path(root)
    cams = ring_cameras(n_views, res)
    rng = np.random.default_rng(seed + 1)
    frames = []
    for i, (cam, (rgb, alpha, lab)) in enumerate(zip(cams, render_gt(cams, seed=seed))):
        tex = rng.uniform(0.2, 0.9, size=(res // 8 + 1, res // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:res, :res]
        img = rgb + (1 - alpha[..., None]) * tex
        name = f"view_{i:02d}"
        write_png(root / "images" / f"{name}.png", (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
        write_png(root / "gt" / f"{name}.png", lab)
        noisy = lab.copy()
        if label_noise > 0:
            flip = (rng.random(lab.shape) < label_noise) & (lab > 0)
            noisy[flip] = rng.choice([1, 7, 8, 10, 17], size=int(flip.sum()))
        write_png(root / "labels" / f"{name}.png", noisy)
        frames.append(Frame(name=name, camera=cam, file_path=f"images/{name}.png", label_path=f"labels/{name}.png",
                            gt_label_path=f"gt/{name}.png"))
    hf = HeadFrame(CENTER, [0, 1, 0], [0, 0, 1]) if head_frame else None
    save_scene(Scene(root=root, frames=frames, label_scheme="celebamask19-zll", head_frame=hf), root)
    return root


_CACHE: dict[tuple, Path] = {}


def cached_scene(tmp_path_factory, **kwargs) -> Path:
    """One scene per parameter set per test session (shared by the fit test modules)."""
    key = tuple(sorted(kwargs.items()))
    if key not in _CACHE:
        root = tmp_path_factory.mktemp("fitscene")
        _CACHE[key] = make_scene(root, **kwargs)
    return _CACHE[key]
