"""Render a synthetic head from any pinhole camera: RGB, exact labels, depth, alpha, mask.

Every pixel is sampled at its centre (docs/design.md pixel convention) by the z-buffer rasteriser in
:mod:`labelsplat.synth.raster`; the label of a pixel is the class of the nearest triangle hit by
the ray through the pixel centre (no anti-aliasing) and background (class 0) elsewhere. The RGB
is Lambert + ambient shading of per-triangle albedos with a smooth 3D texture, lit by the
head's light (fixed in the head frame, so all views are consistent), over a per-view background
(gradient + blurred random texture) that depends only on (head seed, camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import LabelsplatError
from ..scene import Camera
from ..schemes import get_scheme
from .head import HeadMesh, HeadParams, build_head
from .noise import camera_key
from .raster import rasterize, shade_pixels
from .regions import SCHEME


@dataclass
class RenderResult:
    """One rendered view. rgb (H, W, 3) uint8; labels / gt_labels (H, W) uint8 class ids
    (``labels`` = the noise model's output, equal to ``gt_labels`` without noise); depth (H, W)
    float32 camera z in cm (inf = background); alpha (H, W) float32 in {0, 1}; mask (H, W)
    bool foreground; tri_id (H, W) int32 index into the head mesh's faces (-1 = background).
    ``camera``, ``yaw``, ``pitch`` (degrees, docs/design.md) and ``warning`` (e.g. the camera does
    not see the head) are filled by :func:`labelsplat.synth.render_views`."""

    rgb: np.ndarray
    labels: np.ndarray
    gt_labels: np.ndarray
    depth: np.ndarray
    alpha: np.ndarray
    mask: np.ndarray
    tri_id: np.ndarray
    camera: Camera | None = None
    yaw: float | None = None
    pitch: float | None = None
    warning: str | None = None


def background_image(seed: int, view_index: int, width: int, height: int) -> np.ndarray:
    """A varied background (H, W, 3) float in [0, 1]: a linear gradient between two random
    colours plus a blurred random texture; deterministic per (seed, view_index)."""
    rng = np.random.default_rng([int(seed), int(view_index), 0xB6])
    c0, c1 = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    ang = rng.uniform(0, 2 * np.pi)
    xs = ((np.arange(width) + 0.5) / width - 0.5) * np.cos(ang)
    ys = ((np.arange(height) + 0.5) / height - 0.5) * np.sin(ang)
    t = np.clip(ys[:, None] + xs[None, :] + 0.5, 0.0, 1.0)[..., None].astype(np.float32)
    img = c0.astype(np.float32) * (1 - t) + c1.astype(np.float32) * t
    for cells, amp in ((int(rng.integers(3, 7)), 0.18), (int(rng.integers(10, 24)), 0.08)):
        small = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
        layer = np.stack([np.asarray(Image.fromarray(small[..., k], mode="F").resize((width, height), Image.BICUBIC))
                          for k in range(3)], axis=-1)
        img = img + amp * layer
    return np.clip(img, 0.0, 1.0).astype(np.float64)


def _check_camera(camera: Camera) -> None:
    if not isinstance(camera, Camera):
        raise LabelsplatError(f"expected a labelsplat.scene.Camera, got {type(camera).__name__}")
    if camera.width <= 0 or camera.height <= 0:
        raise LabelsplatError(f"camera size must be positive, got {camera.width}x{camera.height}")


def rasterize_head(head: HeadMesh, camera: Camera):
    """(tri_id, depth, bary) of the head seen by ``camera`` (see :func:`raster.rasterize`)."""
    _check_camera(camera)
    uv, z = camera.project(head.vertices)
    return rasterize(uv, z, head.faces, camera.width, camera.height)


def shade(head: HeadMesh, camera: Camera, tri_id: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Foreground colours (H, W, 3) in [0, 1] (0 where empty): albedo x smooth texture x
    (ambient + diffuse * max(0, n.l) + 0.15 * n.v), normals facing the camera (two-sided)."""
    p = head.params
    light = np.asarray(p.light_dir, dtype=np.float64)
    light = light / max(float(np.linalg.norm(light)), 1e-12)
    return shade_pixels(tri_id, bary, head.faces, head.normals, head.vertices, head.colors, head.vertex_noise,
                        camera.center, light, p.ambient, p.diffuse)


TEXTURES = ("smooth", "procedural")


def procedural_texture(points: np.ndarray, seed: int, *, cells=(2.0, 1.0, 0.5), weights=(0.5, 0.3, 0.2)) -> np.ndarray:
    """A high-frequency 3D value-noise texture in [-1, 1] at surface ``points`` (N, 3) (head frame,
    cm): octaves of lattice noise with cell sizes ``cells`` (cm; 0.5 cm is ~3.5 px at 256 px
    framing 36 cm) and smoothstep interpolation. Fixed to the surface (the same point gets the
    same value in every view), so structure-from-motion finds many consistent features on it.
    Deterministic per ``seed``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    rng = np.random.default_rng([int(seed), 0x7E7])
    out = np.zeros(len(pts))
    for k, (cell, w) in enumerate(zip(cells, weights)):
        table = rng.uniform(-1.0, 1.0, 4096)
        offset = rng.uniform(0.0, 64.0, 3)
        q = pts / float(cell) + offset
        i0 = np.floor(q).astype(np.int64)
        f = q - i0
        f = f * f * (3.0 - 2.0 * f)
        acc = np.zeros(len(pts))
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    h = ((i0[:, 0] + dx) * 73856093) ^ ((i0[:, 1] + dy) * 19349663) ^ ((i0[:, 2] + dz) * 83492791)
                    val = table[np.mod(h, 4096)]
                    wx = f[:, 0] if dx else 1.0 - f[:, 0]
                    wy = f[:, 1] if dy else 1.0 - f[:, 1]
                    wz = f[:, 2] if dz else 1.0 - f[:, 2]
                    acc += wx * wy * wz * val
        out += w * acc
    return np.clip(out / max(sum(weights), 1e-12) * 1.6, -1.0, 1.0)


def render_head(head: HeadParams | HeadMesh, camera: Camera, *, view_index: int | None = None,
                triangle_labels: np.ndarray | None = None, texture: str = "smooth",
                texture_amplitude: float = 0.45) -> RenderResult:
    """Render one view of a head.

    ``head``: parameters (from ``synth.json``) or an already built mesh. ``view_index`` picks
    the background (default: a stable hash of the camera, so a camera always gets the same
    image wherever it appears). ``triangle_labels`` (F,) optionally replaces the per-triangle classes (the
    3D-consistent part of the noise models); ``gt_labels`` always use the true classes.
    ``texture``: ``smooth`` (default, the head's own low-frequency texture) or ``procedural``
    (additionally multiplies the albedo by ``1 + texture_amplitude * procedural_texture(p)`` at
    each pixel's 3D surface point ``p``: high-frequency detail for structure-from-motion tests;
    labels, depth and masks are unchanged).
    Deterministic: the same inputs give bit-identical outputs.
    """
    if texture not in TEXTURES:
        raise LabelsplatError(f"unknown texture {texture!r}", hint=f"choose one of {', '.join(TEXTURES)}")
    mesh = head if isinstance(head, HeadMesh) else build_head(head)
    tri_id, depth, bary = rasterize_head(mesh, camera)
    bg = get_scheme(SCHEME).index("background")
    fg = tri_id >= 0
    gt = np.full(tri_id.shape, bg, dtype=np.uint8)
    gt[fg] = mesh.labels[tri_id[fg]]
    if triangle_labels is not None:
        tl = np.asarray(triangle_labels)
        if tl.shape != mesh.labels.shape:
            raise LabelsplatError(f"triangle_labels has shape {tl.shape}, expected {mesh.labels.shape}")
        labels = np.full(tri_id.shape, bg, dtype=np.uint8)
        labels[fg] = tl[tri_id[fg]]
    else:
        labels = gt.copy()
    color = shade(mesh, camera, tri_id, bary)
    if texture == "procedural" and fg.any():
        tri = tri_id[fg]
        b = bary[fg].astype(np.float64)
        pts = np.einsum("nk,nkd->nd", b, mesh.vertices[mesh.faces[tri]])
        tex = procedural_texture(pts, mesh.params.seed)
        color = color.copy()
        color[fg] = np.clip(color[fg] * (1.0 + float(texture_amplitude) * tex)[:, None], 0.0, 1.0)
    key = camera_key(camera) if view_index is None else int(view_index)
    back = background_image(mesh.params.seed, key, camera.width, camera.height)
    img = np.where(fg[..., None], color, back)
    rgb = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return RenderResult(rgb=rgb, labels=labels, gt_labels=gt, depth=depth.astype(np.float32),
                        alpha=fg.astype(np.float32), mask=fg, tri_id=tri_id, camera=camera)
