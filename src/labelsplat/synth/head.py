"""Synthetic heads: parameters (``synth.json``), sampling, and the labelled mesh.

A head is fully described by :class:`HeadParams` (a small JSON: seed, identity and expression
weights, appearance, hair, cloth, light). :func:`build_head` turns it into a
:class:`HeadMesh` in the head frame of docs/design.md (centimetres; x = subject's left, y = up,
z = out of the face; ``HEAD_CENTER`` is the head centre cameras look at): the ICT-FaceKit mesh
(without its rendering helpers) plus a procedural hair shell and a cloth collar, each triangle
carrying an exact ``celebamask19-zll`` class id and a base colour.
"""

from __future__ import annotations

import colorsys
import functools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import LabelsplatError
from ..schemes import get_scheme
from .asset import load_facekit
from .regions import DROP, SCHEME, triangle_labels

HEAD_CENTER = (0.0, 2.0, 1.0)  # cm, in the head frame: between the ears, at eye-ish height
PARAMS_VERSION = 1

# expressions sampled per head: name -> (probability of being active, max weight)
EXPRESSIONS: dict[str, tuple[float, float]] = {
    "jawOpen": (0.5, 0.55),
    "mouthSmile_L": (0.4, 0.7),
    "mouthSmile_R": (0.4, 0.7),
    "eyeBlink_L": (0.25, 0.35),
    "eyeBlink_R": (0.25, 0.35),
    "browInnerUp_L": (0.3, 0.8),
    "browInnerUp_R": (0.3, 0.8),
}

SKIN_TONES = ((0.96, 0.80, 0.69), (0.92, 0.72, 0.60), (0.86, 0.65, 0.52), (0.77, 0.56, 0.42),
              (0.64, 0.45, 0.32), (0.48, 0.32, 0.23), (0.36, 0.24, 0.17))
HAIR_COLORS = ((0.07, 0.06, 0.05), (0.20, 0.13, 0.08), (0.36, 0.23, 0.13), (0.74, 0.60, 0.36),
               (0.52, 0.24, 0.12), (0.62, 0.61, 0.60))
IRIS_COLORS = ((0.30, 0.18, 0.08), (0.20, 0.35, 0.55), (0.25, 0.40, 0.25), (0.12, 0.08, 0.05))


@dataclass
class HeadParams:
    """Everything that defines one synthetic head (serialised as ``synth.json``).

    Colours are RGB in [0, 1] (display space). Lengths are in cm. ``light_dir`` is a unit
    vector in the head frame pointing from the head towards the light.
    """

    seed: int
    identity: list[float]
    expression: dict[str, float]
    skin: list[float]
    lips: list[float]
    brows: list[float]
    hair_color: list[float]
    cloth_color: list[float]
    iris: list[float]
    texture_seed: int
    texture_amplitude: float
    hairline: float        # forehead hairline height y (cm)
    hair_length: float     # nape height y of the hair at the back (cm, lower = longer)
    hair_volume: float     # hair shell thickness (cm)
    collar_top: float      # y of the cloth collar's upper edge (cm)
    collar_flare: float    # how wide the cloth widens towards the shoulders (cm)
    light_dir: list[float]
    ambient: float
    diffuse: float
    hair_drape: float = 0.0    # long hair: how far a hair curtain hangs below ear-top level (cm; 0 = short)
    hair_front: float = 100.0  # azimuth (deg from the front) where the curtain starts at each side
    glasses: float = 0.0       # glasses frame tube radius (cm; 0 = no glasses)
    glasses_color: list[float] = field(default_factory=lambda: [0.08, 0.08, 0.08])
    version: int = PARAMS_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HeadParams":
        if not isinstance(d, dict):
            raise LabelsplatError("synth.json: expected a JSON object")
        names = {f for f in cls.__dataclass_fields__}
        optional = {"version", "hair_drape", "hair_front", "glasses", "glasses_color"}
        missing = [k for k in names if k not in d and k not in optional]
        if missing:
            raise LabelsplatError(f"synth.json: missing keys {sorted(missing)}")
        kw = {k: d[k] for k in names if k in d}
        try:
            p = cls(**kw)
            p.seed = int(p.seed)
            p.identity = [float(x) for x in p.identity]
            p.expression = {str(k): float(v) for k, v in p.expression.items()}
            for key in ("skin", "lips", "brows", "hair_color", "cloth_color", "iris", "light_dir", "glasses_color"):
                v = [float(x) for x in getattr(p, key)]
                if len(v) != 3:
                    raise ValueError(f"'{key}' must have 3 values")
                setattr(p, key, v)
            for key in ("texture_amplitude", "hairline", "hair_length", "hair_volume", "collar_top",
                        "collar_flare", "ambient", "diffuse", "hair_drape", "hair_front", "glasses"):
                setattr(p, key, float(getattr(p, key)))
            p.texture_seed = int(p.texture_seed)
        except (TypeError, ValueError, AttributeError) as exc:
            raise LabelsplatError(f"synth.json: bad value ({exc})") from exc
        kit = load_facekit()
        if len(p.identity) > kit.num_identity_modes:
            raise LabelsplatError(
                f"synth.json: {len(p.identity)} identity weights but the model has {kit.num_identity_modes} modes")
        for name in p.expression:
            kit.expression_index(name)
        if p.version != PARAMS_VERSION:
            raise LabelsplatError(f"synth.json: unsupported version {p.version} (expected {PARAMS_VERSION})")
        return p


def _jitter(rng: np.random.Generator, rgb, amount: float) -> list[float]:
    c = np.asarray(rgb, dtype=np.float64) * (1.0 + rng.uniform(-amount, amount)) + rng.uniform(-amount, amount, 3) * 0.3
    return [float(x) for x in np.clip(c, 0.0, 1.0)]


def sample_head(seed: int, *, identity_sigma: float = 0.8, num_identity: int = 50) -> HeadParams:
    """Draw a head from ``seed`` (deterministic: the same seed gives the same head)."""
    kit = load_facekit()
    rng = np.random.default_rng([int(seed), 0x5EED])
    k = min(int(num_identity), kit.num_identity_modes)
    identity = np.clip(rng.normal(0.0, identity_sigma, k), -2.5, 2.5)
    expression = {}
    for name, (prob, wmax) in EXPRESSIONS.items():
        if rng.random() < prob:
            expression[name] = round(float(rng.uniform(0.1, wmax)), 4)
    skin = _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 0.05)
    hair = _jitter(rng, HAIR_COLORS[rng.integers(len(HAIR_COLORS))], 0.08)
    lips = [float(x) for x in np.clip(np.asarray(skin) * np.array([0.86, 0.56, 0.56]) * rng.uniform(0.9, 1.05), 0, 1)]
    brows = [float(x) for x in np.clip(0.75 * np.asarray(hair) + 0.25 * np.asarray(skin) * 0.6, 0, 1)]
    h, s, v = rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.95)
    cloth = [float(x) for x in colorsys.hsv_to_rgb(h, s, v)]
    iris = _jitter(rng, IRIS_COLORS[rng.integers(len(IRIS_COLORS))], 0.1)
    az = rng.uniform(-math.pi / 2, math.pi / 2)
    el = rng.uniform(0.1, 0.9)
    light = [math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)]
    return HeadParams(
        seed=int(seed),
        identity=[round(float(x), 5) for x in identity],
        expression=expression,
        skin=skin, lips=lips, brows=brows, hair_color=hair, cloth_color=cloth, iris=iris,
        texture_seed=int(rng.integers(0, 2**31 - 1)),
        texture_amplitude=float(rng.uniform(0.04, 0.12)),
        hairline=float(rng.uniform(8.8, 11.0)),
        hair_length=float(rng.uniform(-7.0, -2.5)),
        hair_volume=float(rng.uniform(0.6, 2.2)),
        collar_top=float(rng.uniform(-15.0, -12.5)),
        collar_flare=float(rng.uniform(6.0, 12.0)),
        light_dir=[float(x) for x in light],
        ambient=float(rng.uniform(0.35, 0.55)),
        diffuse=float(rng.uniform(0.45, 0.7)),
        hair_drape=float(rng.uniform(6.0, 18.0)) if rng.random() < 0.45 else 0.0,
        hair_front=float(rng.uniform(80.0, 115.0)),
        glasses=float(rng.uniform(0.12, 0.28)) if rng.random() < 0.25 else 0.0,
        glasses_color=[float(x) for x in np.clip(rng.uniform(0.02, 0.6) * np.array([1.0, 0.95, 0.9])
                                                 + rng.uniform(-0.05, 0.05, 3), 0, 1)],
    )


@dataclass
class HeadMesh:
    """A renderable labelled mesh in the head frame (cm).

    vertices (N, 3) float64; faces (F, 3) int64; labels (F,) uint8 class ids;
    colors (F, 3) float64 base albedo per triangle; vertex_noise (N,) multiplicative texture
    offsets; normals (N, 3) unit vertex normals; part (F,) int8: 0 = ICT mesh, 1 = hair, 2 = cloth,
    3 = glasses.
    """

    vertices: np.ndarray
    faces: np.ndarray
    labels: np.ndarray
    colors: np.ndarray
    vertex_noise: np.ndarray
    normals: np.ndarray
    part: np.ndarray
    params: HeadParams
    base_face_index: np.ndarray = field(repr=False, default=None)  # (F,) index into the ICT faces, -1 procedural

    @property
    def center(self) -> np.ndarray:
        return np.asarray(HEAD_CENTER, dtype=np.float64)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (N, 3)."""
    v = vertices
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(norm, 1e-12)


def deformed_vertices(params: HeadParams) -> np.ndarray:
    """ICT mesh vertices (N, 3) for the head's identity and expression weights."""
    kit = load_facekit()
    v = kit.neutral.copy()
    w = np.asarray(params.identity, dtype=np.float32)
    if w.size:
        v += np.tensordot(w, kit.identity_modes[: w.size], axes=1).astype(np.float64)
    if params.expression:
        idx = [kit.expression_index(n) for n in params.expression]
        e = np.asarray([params.expression[n] for n in params.expression], dtype=np.float32)
        v += np.tensordot(e, kit.expression_modes[idx], axes=1).astype(np.float64)
    return v


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _hair_bottom(v: np.ndarray, hairline: float, nape: float) -> np.ndarray:
    """Lowest y of the hair as a function of the azimuth around the vertical axis.

    0 deg (front): the forehead hairline; ~70 deg: temples; ~100 deg: above the ear;
    ~140-180 deg: down to the nape height ``nape``.
    """
    az = np.degrees(np.abs(np.arctan2(v[:, 0], v[:, 2] - 1.0)))
    knots_a = np.array([0.0, 35.0, 65.0, 88.0, 112.0, 130.0, 150.0, 180.0])
    knots_y = np.array([hairline, hairline - 0.6, hairline - 2.5, 5.6, 5.2, max(nape + 4.0, 0.5), nape, nape])
    return np.interp(az, knots_a, knots_y)


def _hair_shell(v: np.ndarray, faces: np.ndarray, labels: np.ndarray, normals: np.ndarray, p: HeadParams):
    s = get_scheme(SCHEME)
    cent = v[faces].mean(axis=1)
    base_ok = np.isin(labels, [s.index("skin"), s.index("neck")])
    # never grow hair from the face's own features or the front of the neck
    bottom = _hair_bottom(cent, p.hairline, p.hair_length)
    sel = base_ok & (cent[:, 1] > bottom)
    hf = faces[sel]
    used = np.unique(hf)
    remap = -np.ones(v.shape[0], dtype=np.int64)
    remap[used] = np.arange(used.size)
    hv = v[used]
    above = hv[:, 1] - _hair_bottom(hv, p.hairline, p.hair_length)
    thick = 0.15 + (p.hair_volume - 0.15) * _smoothstep(above / 2.5)
    shell = hv + normals[used] * thick[:, None]
    return shell, remap[hf]


CURTAIN_TOP = 5.0  # cm: the long-hair curtain hangs from about the top of the ears


def _curtain(v: np.ndarray, faces: np.ndarray, labels: np.ndarray, p: HeadParams, n_phi: int = 72, n_y: int = 28):
    """Long hair: a curtain hanging straight down from the widest part of the head behind the
    azimuth ``hair_front`` (both sides, around the back), ``hair_drape`` cm below CURTAIN_TOP.

    Radius at each (azimuth, height) = the largest head radius at that azimuth between the
    curtain top and that height (hair falls straight from the widest point) + the hair volume
    + 0.3 cm, widening by up to 1.5 cm towards the tips, so it never cuts into the head or neck.
    """
    if p.hair_drape <= 0.0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    s = get_scheme(SCHEME)
    keep = np.isin(labels, [s.index(n) for n in ("skin", "neck", "l_ear", "r_ear")])
    pts = v[np.unique(faces[keep])]
    axis_z = 1.0
    phi = np.degrees(np.arctan2(pts[:, 0], pts[:, 2] - axis_z)) % 360.0
    rad = np.hypot(pts[:, 0], pts[:, 2] - axis_z)
    top, bottom = CURTAIN_TOP, CURTAIN_TOP - p.hair_drape
    front = float(np.clip(p.hair_front, 30.0, 170.0))
    phis = np.linspace(front, 360.0 - front, n_phi)
    ys = np.linspace(top, bottom, n_y)
    dphi = (phis[1] - phis[0]) * 0.75 + 2.0
    r = np.zeros((n_y, n_phi))
    for j, y in enumerate(ys):
        band = (pts[:, 1] <= top + 0.5) & (pts[:, 1] >= y - 0.5)
        if not band.any():
            continue
        for k, a in enumerate(phis):
            d = np.abs((phi[band] - a + 180.0) % 360.0 - 180.0)
            sel = d <= dphi
            if sel.any():
                r[j, k] = rad[band][sel].max()
    r = np.maximum.accumulate(r, axis=0)  # hair falls straight from the widest point above
    r[r == 0] = r.max() if r.max() > 0 else 8.0
    frac = (top - ys) / max(top - bottom, 1e-6)
    r = r + p.hair_volume + 0.3 + 1.5 * frac[:, None] ** 1.5
    a = np.radians(phis)[None, :]
    verts = np.stack([r * np.sin(a), np.broadcast_to(ys[:, None], r.shape), axis_z + r * np.cos(a)], axis=-1)
    verts = verts.reshape(-1, 3)
    tris = []
    for j in range(n_y - 1):
        for k in range(n_phi - 1):
            i00, i01, i10, i11 = j * n_phi + k, j * n_phi + k + 1, (j + 1) * n_phi + k, (j + 1) * n_phi + k + 1
            tris.append([i00, i10, i01])
            tris.append([i01, i10, i11])
    return verts, np.asarray(tris, dtype=np.int64)


def _tube(path: np.ndarray, radius: float, closed: bool, segments: int = 8):
    """A tube mesh (vertices, faces) of ``radius`` around a polyline (P, 3)."""
    P = path.shape[0]
    if closed:
        tang = np.roll(path, -1, axis=0) - np.roll(path, 1, axis=0)
    else:
        tang = np.gradient(path, axis=0)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-12)
    ref = np.where(np.abs(tang[:, 1:2]) < 0.9, np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
    n1 = np.cross(tang, ref)
    n1 /= np.maximum(np.linalg.norm(n1, axis=1, keepdims=True), 1e-12)
    n2 = np.cross(tang, n1)
    t = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    ring = np.cos(t)[None, :, None] * n1[:, None, :] + np.sin(t)[None, :, None] * n2[:, None, :]
    verts = (path[:, None, :] + radius * ring).reshape(-1, 3)
    tris = []
    rows = P if closed else P - 1
    for i in range(rows):
        j = (i + 1) % P
        for k in range(segments):
            kk = (k + 1) % segments
            a, b, c, d = i * segments + k, i * segments + kk, j * segments + k, j * segments + kk
            tris += [[a, c, b], [b, c, d]]
    return verts, np.asarray(tris, dtype=np.int64)


def _glasses(v: np.ndarray, faces: np.ndarray, labels: np.ndarray, p: HeadParams):
    """Glasses frame (no lenses: they are transparent): two elliptic rims in front of the eyes,
    a bridge over the nose and two temples back to the ears, each kept >= 0.35 cm + the tube
    radius off the head's surface. Returns (vertices, faces); empty without glasses."""
    if p.glasses <= 0.0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    kit = load_facekit()
    s = get_scheme(SCHEME)
    head = v[np.unique(faces[np.isin(labels, [s.index(n) for n in ("skin", "nose", "l_brow", "r_brow", "l_eye",
                                                                   "r_eye", "l_ear", "r_ear")])])]
    lm = v[kit.landmarks68]
    clear = 0.35 + p.glasses

    def push_forward(pts):
        out = pts.copy()
        for k, q in enumerate(pts):
            near = head[(np.abs(head[:, 0] - q[0]) < 0.7) & (np.abs(head[:, 1] - q[1]) < 0.7)]
            if near.shape[0]:
                out[k, 2] = max(q[2], near[:, 2].max() + clear)
        return out

    def push_out(pts, sign):
        out = pts.copy()
        for k, q in enumerate(pts):
            near = head[(np.abs(head[:, 1] - q[1]) < 0.7) & (np.abs(head[:, 2] - q[2]) < 0.7) & (head[:, 0] * sign > 0)]
            if near.shape[0]:
                out[k, 0] = sign * max(abs(q[0]), np.abs(near[:, 0]).max() + clear)
        return out

    parts = []
    t = np.linspace(0.0, 2 * math.pi, 40, endpoint=False)
    rims = {}
    for sign, ids in ((1.0, range(42, 48)), (-1.0, range(36, 42))):
        c = lm[list(ids)].mean(axis=0) + np.array([0.25 * sign, 0.15, 0.0])
        rim = np.stack([c[0] + 2.5 * np.cos(t), c[1] + 1.75 * np.sin(t), np.full_like(t, c[2] + 1.6)], axis=1)
        rim = push_forward(rim)
        rim[:, 2] = rim[:, 2].max() - 0.15 * (1 - np.cos(t) * sign) ** 2  # slight wrap towards the temples
        rim = push_forward(rim)
        rims[sign] = (rim, c)
        parts.append(_tube(rim, p.glasses, closed=True))
    # bridge between the inner tops of the rims
    li, ri = rims[1.0][0], rims[-1.0][0]
    a, b = ri[np.argmax(ri[:, 0] + 0.3 * ri[:, 1])], li[np.argmax(-li[:, 0] + 0.3 * li[:, 1])]
    u = np.linspace(0.0, 1.0, 9)[:, None]
    bridge = a * (1 - u) + b * u
    bridge[:, 1] += 0.35 * np.sin(np.pi * u[:, 0])
    parts.append(_tube(push_forward(bridge), p.glasses, closed=False))
    # temples from the outer rim ends back to above the ears
    for sign in (1.0, -1.0):
        rim, c = rims[sign]
        start = rim[np.argmax(sign * rim[:, 0])]
        ear = lm[16 if sign > 0 else 0]
        end = np.array([ear[0], ear[1] + 0.4, ear[2] - 4.5])
        u = np.linspace(0.0, 1.0, 16)[:, None]
        path = start * (1 - u) + end * u
        path = push_out(path, sign)
        parts.append(_tube(path, p.glasses, closed=False))
    verts, tris, off = [], [], 0
    for pv, pf in parts:
        verts.append(pv)
        tris.append(pf + off)
        off += pv.shape[0]
    return np.vstack(verts), np.vstack(tris)


def _collar(v: np.ndarray, labels: np.ndarray, faces: np.ndarray, p: HeadParams, segments: int = 64):
    """A cloth surface of revolution around the neck base, flaring to the shoulders, capped."""
    s = get_scheme(SCHEME)
    neck_v = np.unique(faces[labels == s.index("neck")])
    nv = v[neck_v]
    y_min = float(v[:, 1].min())
    top = p.collar_top
    band = nv[(nv[:, 1] <= top + 1.0) & (nv[:, 1] >= top - 1.0)]
    if band.shape[0] < 8:
        band = nv[nv[:, 1] <= top + 2.0]
    cx, cz = float(band[:, 0].mean()), float(band[:, 2].mean())
    ax = float(np.abs(band[:, 0] - cx).max())
    az = float(np.abs(band[:, 2] - cz).max())
    aspect = az / max(ax, 1e-6)
    below = nv[nv[:, 1] <= top + 0.5]
    ys = np.concatenate([np.linspace(top, y_min, 6), np.linspace(y_min - 1.0, y_min - 6.0, 4)])
    gap = 0.45
    rings = []
    r_prev = 0.0
    t = np.linspace(0.0, 2 * math.pi, segments, endpoint=False)
    for k, y in enumerate(ys):
        near = below[np.abs(below[:, 1] - y) <= 1.2]
        if near.shape[0]:
            need = np.sqrt(((near[:, 0] - cx)) ** 2 + ((near[:, 2] - cz) / aspect) ** 2).max() + gap
        else:
            need = r_prev
        frac = (top - y) / max(top - (y_min - 6.0), 1e-6)
        r = max(need, r_prev) + p.collar_flare * frac ** 1.6
        r_prev = max(need, r_prev)
        rings.append(np.stack([cx + r * np.cos(t), np.full_like(t, y), cz + r * aspect * np.sin(t)], axis=1))
    verts = np.concatenate(rings)
    tris = []
    for k in range(len(rings) - 1):
        a0, b0 = k * segments, (k + 1) * segments
        for i in range(segments):
            j = (i + 1) % segments
            tris.append([a0 + i, b0 + i, a0 + j])
            tris.append([a0 + j, b0 + i, b0 + j])
    # bottom cap
    c_idx = verts.shape[0]
    verts = np.vstack([verts, [[cx, ys[-1], cz]]])
    last = (len(rings) - 1) * segments
    for i in range(segments):
        tris.append([last + i, c_idx, last + (i + 1) % segments])
    return verts, np.asarray(tris, dtype=np.int64)


def _texture_noise(points: np.ndarray, seed: int, amplitude: float, n_waves: int = 8,
                   wavelength=(2.5, 9.0)) -> np.ndarray:
    rng = np.random.default_rng([seed, 7])
    dirs = rng.normal(size=(n_waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lam = rng.uniform(*wavelength, n_waves)
    phase = rng.uniform(0, 2 * math.pi, n_waves)
    amp = rng.uniform(0.5, 1.0, n_waves)
    arg = points @ (dirs * (2 * math.pi / lam)[:, None]).T + phase
    val = (np.sin(arg) * amp).sum(axis=1) / amp.sum()
    return amplitude * val * 2.0


def _triangle_colors(labels: np.ndarray, base_index: np.ndarray | None, p: HeadParams) -> np.ndarray:
    s = get_scheme(SCHEME)
    kit = load_facekit()
    skin = np.asarray(p.skin)
    table = {
        "skin": skin, "neck": skin * 0.98, "l_ear": skin * 0.97, "r_ear": skin * 0.97,
        "nose": skin * 1.0, "l_brow": np.asarray(p.brows), "r_brow": np.asarray(p.brows),
        "u_lip": np.asarray(p.lips), "l_lip": np.asarray(p.lips) * 1.04,
        "l_eye": np.array([0.90, 0.88, 0.85]), "r_eye": np.array([0.90, 0.88, 0.85]),
        "mouth": np.array([0.45, 0.12, 0.12]), "hair": np.asarray(p.hair_color),
        "cloth": np.asarray(p.cloth_color), "eye_g": np.asarray(p.glasses_color),
    }
    cols = np.tile(skin, (labels.shape[0], 1))
    for name, rgb in table.items():
        cols[labels == s.index(name)] = rgb
    if base_index is not None:
        ok = base_index >= 0
        m = np.full(labels.shape[0], -1)
        m[ok] = kit.face_material[base_index[ok]]
        cols[m == kit.material("M_Teeth")] = (0.92, 0.90, 0.82)
        cols[m == kit.material("M_GumsTongue")] = (0.75, 0.35, 0.35)
        ang = np.full(labels.shape[0], 180.0)
        ang[ok] = _iris_angle()[base_index[ok]]
        cols[ang < 24.0] = p.iris
        cols[ang < 9.0] = (0.03, 0.03, 0.03)
    return np.clip(cols, 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def _iris_angle() -> np.ndarray:
    """Per ICT triangle: angle (deg) between the triangle's direction from its eyeball centre and
    the eyeball's gaze (towards the eye opening's landmark centre); 180 off the eyeballs."""
    kit = load_facekit()
    V = kit.neutral
    cent = V[kit.faces].mean(axis=1)
    out = np.full(kit.faces.shape[0], 180.0)
    for side, lms in (("left", range(42, 48)), ("right", range(36, 42))):
        eb = kit.vertex_range("eyeball_" + side)
        c = V[eb].mean(axis=0)
        gaze = V[kit.landmarks68[list(lms)]].mean(axis=0) - c
        gaze /= np.linalg.norm(gaze)
        tri = eb[kit.faces].all(axis=1)
        d = cent[tri] - c
        cosang = (d @ gaze) / np.maximum(np.linalg.norm(d, axis=1), 1e-12)
        out[tri] = np.degrees(np.arccos(np.clip(cosang, -1, 1)))
    return out


@functools.lru_cache(maxsize=8)
def _build_cached(key: str) -> HeadMesh:
    return _build(HeadParams.from_dict(json.loads(key)))


def build_head(params: HeadParams) -> HeadMesh:
    """The labelled, coloured mesh of a head (cached for the last few parameter sets)."""
    return _build_cached(json.dumps(params.to_dict(), sort_keys=True))


def _build(p: HeadParams) -> HeadMesh:
    kit = load_facekit()
    s = get_scheme(SCHEME)
    tl = triangle_labels()
    keep = tl != DROP
    base_idx = np.nonzero(keep)[0]
    v = deformed_vertices(p)
    faces = kit.faces[keep]
    labels = tl[keep]
    normals = vertex_normals(v, faces)
    shell_v, shell_f = _hair_shell(v, faces, labels, normals, p)
    cur_v, cur_f = _curtain(v, faces, labels, p)
    shell_f = np.vstack([shell_f, cur_f + shell_v.shape[0]])
    shell_v = np.vstack([shell_v, cur_v])
    col_v, col_f = _collar(v, labels, faces, p)
    gl_v, gl_f = _glasses(v, faces, labels, p)
    n0, n1 = v.shape[0], v.shape[0] + shell_v.shape[0]
    n2 = n1 + col_v.shape[0]
    verts = np.vstack([v, shell_v, col_v, gl_v])
    all_faces = np.vstack([faces, shell_f + n0, col_f + n1, gl_f + n2])
    all_labels = np.concatenate([
        labels, np.full(shell_f.shape[0], s.index("hair"), np.uint8), np.full(col_f.shape[0], s.index("cloth"), np.uint8),
        np.full(gl_f.shape[0], s.index("eye_g"), np.uint8),
    ]).astype(np.uint8)
    part = np.concatenate([np.zeros(faces.shape[0], np.int8), np.ones(shell_f.shape[0], np.int8),
                           np.full(col_f.shape[0], 2, np.int8), np.full(gl_f.shape[0], 3, np.int8)])
    base = np.concatenate([base_idx, -np.ones(shell_f.shape[0] + col_f.shape[0] + gl_f.shape[0], np.int64)])
    colors = _triangle_colors(all_labels, base, p)
    # texture: smooth 3D noise on the neutral-ish positions (+ finer strands on hair)
    noise = _texture_noise(verts, p.texture_seed, p.texture_amplitude)
    hair_v = np.arange(n0, n1)
    noise[hair_v] += _texture_noise(verts[hair_v] * np.array([3.0, 0.4, 3.0]), p.texture_seed + 1, 0.12,
                                    n_waves=12, wavelength=(1.0, 3.0))
    all_normals = vertex_normals(verts, all_faces)
    return HeadMesh(vertices=verts, faces=all_faces, labels=all_labels, colors=colors, vertex_noise=noise,
                    normals=all_normals, part=part, params=p, base_face_index=base)
