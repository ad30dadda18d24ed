"""Initial-parser noise models: what a per-view face parser would output, from exact labels.

Models: ``none`` (labels = ground truth) and ``simulated:low|medium|high``. The errors grow
with the view's |yaw| and |pitch| through a severity ``s`` (piecewise linear in |yaw| with
knots per level, plus a pitch term) and come in two kinds:

* **3D-consistent** (defined on the head's surface, so they repeat across neighbouring views):
  per head, a set of surface patches (balls on the mesh around part boundaries: ear, lip
  corners, nose wings, brow tails, eye corners, hairline, jaw/neck, collar) each relabelled
  to a confusable class (ear -> hair/skin, lip -> skin, nose -> skin, skin -> nose, brow ->
  skin, eye -> skin, hair <-> skin, neck <-> skin, cloth -> neck). A patch is active in every
  view whose yaw lies in the patch's pose range (on the patch's side, beyond a threshold
  |yaw| drawn per patch), and is applied by relabelling mesh triangles before rasterising.
* **per-view 2D** (independent per view, deterministic per (seed, view)): a smooth boundary
  warp, blob dropouts (a blob takes the dominant label around it), and class confusions real
  parsers make at profile: left/right swaps, ear -> hair/skin/background, lips -> skin, nose
  spilling into skin, hair bleeding into background.

The severity knots (``SEVERITY``) were calibrated once with ``benchmarks/noise_calibration.py``
(facescape rig, 256x256, several identities; numbers in docs/synth.md) and are not re-tuned to
flatter any method.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import LabelsplatError
from ..scene import Camera, HeadFrame, yaw_pitch
from ..schemes import get_scheme
from .regions import SCHEME

NOISE_MODELS = ("none", "simulated:low", "simulated:medium", "simulated:high")
LEVELS = ("low", "medium", "high")

# Severity as a function of |yaw|: piecewise linear through knots at 0, 15, 45, 75, 90, 180 deg
# with values (0.7 v15, v15, v45, v75, 1.08 v75, 1.19 v75) from the per-level bin-centre values
# (v15, v45, v75) below; the pitch term adds PITCH_GAIN * max(0, |pitch| - 10) / 20.
YAW_KNOTS = (0.0, 15.0, 45.0, 75.0, 90.0, 180.0)
SEVERITY: dict[str, tuple[float, float, float]] = {
    "low": (0.3129, 0.4140, 0.5271),
    "medium": (0.5668, 0.7285, 0.9807),
    "high": (0.8142, 1.2037, 1.6809),
}
PITCH_GAIN = 0.10
# number of 3D surface patches per head, per level
PATCHES = {"low": 6, "medium": 10, "high": 14}


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed ``--noise`` value: ``level`` is None for ``none``."""

    name: str
    level: str | None

    @property
    def is_none(self) -> bool:
        return self.level is None


def parse_noise(spec: str) -> NoiseSpec:
    """``none`` | ``simulated:low|medium|high`` (also accepts the bare level names)."""
    s = str(spec).strip().lower()
    if s in ("none", ""):
        return NoiseSpec("none", None)
    if s in LEVELS:
        s = "simulated:" + s
    if s not in NOISE_MODELS:
        raise LabelsplatError(f"unknown noise model '{spec}'", hint=f"choose one of {', '.join(NOISE_MODELS)}")
    return NoiseSpec(s, s.split(":", 1)[1])


def severity_knots(level: str) -> tuple[float, ...]:
    """Severity values at ``YAW_KNOTS`` for a level."""
    v15, v45, v75 = SEVERITY[level]
    return (0.7 * v15, v15, v45, v75, 1.08 * v75, 1.19 * v75)


def severity(level: str, yaw_deg: float, pitch_deg: float) -> float:
    """Error severity (>= 0) of a view for a noise level."""
    if level not in SEVERITY:
        raise LabelsplatError(f"unknown noise level '{level}'")
    s = float(np.interp(abs(yaw_deg), YAW_KNOTS, severity_knots(level)))
    return s + PITCH_GAIN * max(0.0, abs(pitch_deg) - 10.0) / 20.0


def camera_key(camera: Camera) -> int:
    """A stable integer key of a camera (pose + intrinsics rounded to 1e-6): the per-view seed."""
    vals = np.round(np.concatenate([camera.c2w[:3].ravel(), [camera.fx, camera.fy, camera.cx, camera.cy,
                                                              camera.width, camera.height]]), 6)
    h = hashlib.sha256(np.ascontiguousarray(vals + 0.0).tobytes()).digest()
    return int.from_bytes(h[:4], "little")


# ----------------------------------------------------------------------------- 3D patches
@dataclass(frozen=True)
class SurfacePatch:
    """A ball on the head surface relabelled ``source classes -> target`` in a pose range."""

    center: tuple[float, float, float]
    radius: float
    sources: tuple[int, ...]
    target: int
    side: int              # +1: active for yaw > 0 (subject's left side), -1: yaw < 0, 0: both
    min_abs_yaw: float     # active when |yaw| >= this (and on the patch's side)


def _patch_templates() -> list[tuple[str, tuple[str, ...], str]]:
    """(anchor part, source classes, target class) of the patch kinds; a patch is centred on a
    random triangle of its anchor part and acts on the side of the head it lies on."""
    return [
        ("ear", ("l_ear", "r_ear"), "hair"),
        ("ear", ("l_ear", "r_ear"), "skin"),
        ("u_lip", ("u_lip", "l_lip"), "skin"),
        ("l_lip", ("u_lip", "l_lip"), "skin"),
        ("nose", ("nose",), "skin"),
        ("nose", ("skin",), "nose"),
        ("brow", ("l_brow", "r_brow"), "skin"),
        ("eye", ("l_eye", "r_eye"), "skin"),
        ("hair", ("skin",), "hair"),
        ("hair", ("hair",), "skin"),
        ("neck", ("neck",), "skin"),
        ("neck", ("skin",), "neck"),
        ("cloth", ("cloth",), "neck"),
        ("ear", ("l_ear", "r_ear", "skin"), "hair"),
    ]


def surface_patches(mesh, level: str, seed: int) -> list[SurfacePatch]:
    """The head's 3D-consistent error patches for a level (deterministic per seed)."""
    s = get_scheme(SCHEME)
    rng = np.random.default_rng([int(seed), 0x3D, LEVELS.index(level)])
    cent = mesh.vertices[mesh.faces].mean(axis=1)
    lab = mesh.labels
    templates = _patch_templates()
    out = []
    sev_hi = SEVERITY[level][2]
    order = rng.permutation(len(templates))
    for k in range(PATCHES[level]):
        anchor, sources, target = templates[order[k % len(templates)]]
        names = {"ear": ("l_ear", "r_ear"), "brow": ("l_brow", "r_brow"), "eye": ("l_eye", "r_eye")}.get(anchor, (anchor,))
        cand = np.nonzero(np.isin(lab, [s.index(n) for n in names]))[0]
        if cand.size == 0:
            continue
        c = cent[cand[rng.integers(cand.size)]]
        side = 1 if c[0] > 0.4 else (-1 if c[0] < -0.4 else 0)
        radius = float(rng.uniform(0.8, 2.0) * (0.7 + 0.5 * sev_hi))
        min_yaw = float(rng.uniform(25.0, 80.0))
        out.append(SurfacePatch(tuple(float(x) for x in c), radius, tuple(s.index(n) for n in sources),
                                s.index(target), side, min_yaw))
    return out


def patched_triangle_labels(mesh, patches: list[SurfacePatch], yaw_deg: float) -> np.ndarray | None:
    """Triangle labels with the patches active at ``yaw_deg`` applied (None if none is active)."""
    active = [p for p in patches
              if abs(yaw_deg) >= p.min_abs_yaw and (p.side == 0 or p.side * yaw_deg > 0)]
    if not active:
        return None
    cent = mesh.vertices[mesh.faces].mean(axis=1)
    lab = mesh.labels.copy()
    for p in active:
        near = np.linalg.norm(cent - np.asarray(p.center), axis=1) <= p.radius
        m = near & np.isin(mesh.labels, p.sources)
        lab[m] = p.target
    return lab


# ----------------------------------------------------------------------------- 2D errors
def _smooth_field(rng, h, w, cells, channels):
    small = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    return np.stack([np.asarray(Image.fromarray(small[..., k], mode="F").resize((w, h), Image.BICUBIC))
                     for k in range(channels)], axis=-1)


def _warp(labels, rng, amp_px):
    h, w = labels.shape
    if amp_px <= 0.05:
        return labels
    d = _smooth_field(rng, h, w, int(rng.integers(4, 8)), 2) * amp_px
    yy, xx = np.mgrid[0:h, 0:w]
    ys = np.clip(np.round(yy + d[..., 1]).astype(np.int64), 0, h - 1)
    xs = np.clip(np.round(xx + d[..., 0]).astype(np.int64), 0, w - 1)
    return labels[ys, xs]


def _dilate_into(labels, src, into, radius, rng=None, keep_frac=1.0):
    from scipy import ndimage  # lazy: scipy.ndimage (~0.2 s), only for noise regions

    if radius <= 0:
        return labels
    m = labels == src
    if not m.any():
        return labels
    grown = ndimage.binary_dilation(m, iterations=int(radius)) & np.isin(labels, into)
    if keep_frac < 1.0 and rng is not None:
        h, w = labels.shape
        f = _smooth_field(rng, h, w, 5, 1)[..., 0]
        grown &= f > (1.0 - 2.0 * keep_frac)
    out = labels.copy()
    out[grown] = src
    return out


def _convert_part(labels: np.ndarray, mask: np.ndarray, target: int, q: float, rng) -> None:
    """In place: relabel a smooth random part (about a fraction ``q``) of ``mask`` to ``target``."""
    q = float(min(max(q, 0.0), 1.0))
    if q <= 0.0 or not mask.any():
        return
    h, w = labels.shape
    f = _smooth_field(rng, h, w, 6, 1)[..., 0]
    thr = np.quantile(f[mask], 1.0 - q) if q < 1.0 else -np.inf
    labels[mask & (f >= thr)] = target


def _touches(a: np.ndarray, b: np.ndarray) -> bool:
    from scipy import ndimage  # lazy: scipy.ndimage (~0.2 s), only for noise regions

    return bool(a.any() and (ndimage.binary_dilation(a, iterations=2) & b).any())


def _blobs(labels, rng, n, scale):
    h, w = labels.shape
    out = labels.copy()
    bg = 0
    fg = np.argwhere(labels != bg)
    if fg.shape[0] == 0:
        return out
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n):
        cy, cx = fg[rng.integers(fg.shape[0])]
        ry, rx = rng.uniform(0.02, 0.06, 2) * scale
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        ring = (((yy - cy) / (ry * 1.6)) ** 2 + ((xx - cx) / (rx * 1.6)) ** 2 <= 1.0) & ~inside
        own = labels[cy, cx]
        vals = labels[ring]
        vals = vals[vals != own]
        if vals.size == 0:
            continue
        out[inside] = np.bincount(vals).argmax()
    return out


def noisy_labels_2d(labels: np.ndarray, sev: float, rng: np.random.Generator) -> np.ndarray:
    """Per-view 2D parser errors at severity ``sev`` applied to a label map (H, W) uint8."""
    s = get_scheme(SCHEME)
    L = s.index
    h, w = labels.shape
    scale = float(min(h, w))
    out = labels.copy()
    # class confusions: whole-map left/right swaps are rare events; the others convert a
    # smooth random part (expected fraction ~q) of a class, so their effect varies little per view
    if rng.random() < 0.25 * min(1.0, max(0.0, sev - 0.4)):
        out = s.flip_permutation()[out]
    for ear in ("l_ear", "r_ear"):
        m = out == L(ear)
        targets = ["hair", "skin"]
        if _touches(m, out == L("background")):  # at the silhouette it may vanish into background
            targets.append("background")
        _convert_part(out, m, L(targets[rng.integers(len(targets))]), 0.35 * sev, rng)
    for lip in ("u_lip", "l_lip"):
        _convert_part(out, out == L(lip), L("skin"), 0.2 * sev, rng)
    for part in ("l_brow", "r_brow", "l_eye", "r_eye"):
        _convert_part(out, out == L(part), L("skin"), 0.12 * sev, rng)
    out = _dilate_into(out, L("nose"), [L("skin")], round(sev * scale / 80), rng, 0.6)
    out = _dilate_into(out, L("hair"), [L("background")], round(sev * scale / 50), rng, 0.6)
    # blob dropouts
    n = int(rng.poisson(2.5 * sev))
    out = _blobs(out, rng, n, scale)
    # boundary warp
    out = _warp(out, rng, sev * scale / 110.0)
    return out


def apply_noise(render, mesh, camera: Camera, spec: NoiseSpec, seed: int, *, patches=None,
                head_frame: HeadFrame | None = None) -> np.ndarray:
    """The noise model's labels (H, W) uint8 for one rendered view (``render.gt_labels`` plus
    ``render.tri_id``). ``patches``: precomputed :func:`surface_patches` (else computed)."""
    if spec.is_none:
        return render.gt_labels.copy()
    head = head_frame or HeadFrame(mesh.center, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    yaw, pitch = yaw_pitch(camera.center, head)
    if patches is None:
        patches = surface_patches(mesh, spec.level, seed)
    base = render.gt_labels
    tl = patched_triangle_labels(mesh, patches, yaw)
    if tl is not None:
        fg = render.tri_id >= 0
        base = base.copy()
        base[fg] = tl[render.tri_id[fg]]
    rng = np.random.default_rng([int(seed), camera_key(camera), LEVELS.index(spec.level), 0x2D])
    sev = severity(spec.level, yaw, pitch)
    return noisy_labels_2d(base, sev, rng).astype(np.uint8)


__all__ = [
    "LEVELS", "NOISE_MODELS", "NoiseSpec", "SurfacePatch", "apply_noise", "camera_key", "noisy_labels_2d",
    "parse_noise", "patched_triangle_labels", "severity", "surface_patches",
]
