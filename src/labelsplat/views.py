"""Novel viewpoint sampling around a scene's head frame (docs/design.md conventions).

A sampled view is a pinhole camera that looks at the head centre from a direction given by
(yaw, pitch) in the head frame, at a distance and with a focal length drawn relative to the
input cameras, rotated about its viewing axis by ``roll``:

* yaw, pitch (degrees) follow :func:`labelsplat.scene.yaw_pitch`: direction from the head
  centre to the camera in head axes (x = subject's left, y = up, z = forward) is
  ``(cos p sin y, sin p, cos p cos y)``; yaw 0 = frontal, +90 = the subject's left profile,
  pitch + = from above. Pitch is clipped to +-85 degrees (the head's up would be parallel to
  the viewing direction at +-90).
* roll (degrees): the camera's image-up vector is the head's up (projected orthogonally to the
  viewing direction) rotated by ``roll`` about the camera's backward axis (right-hand rule),
  so a positive roll tilts the camera counter-clockwise and the head appears rotated clockwise.
* distance and focal length are factors of the inputs' medians (distance from the head centre;
  ``fx`` rescaled to the output width, so the field of view is kept); the principal point is the
  image centre (``cx = width / 2``, pixel-centre convention of docs/design.md).
* ``c2w`` is OpenGL/nerfstudio camera-to-world in the source scene's world frame and units.

Coverage: by default (``beyond_coverage=False``) a pose is kept only within the inputs' yaw
range (the shortest circular arc holding every input yaw) and pitch range, both widened by
``coverage_margin_deg`` (15). Views outside it cannot be labelled honestly (nobody saw those
surfaces); ``beyond_coverage=True`` keeps them and flags them (``SampledView.beyond_coverage``).

Head check: the head is a sphere of ``head_radius`` at the head centre (or a point cloud, e.g.
the fitted Gaussians' means). A view is rejected when the head covers less than
``min_head_fraction`` of the image or less than ``min_head_inside`` of the head's silhouette
lies inside the image. Sampling continues until ``n`` views are accepted or ``max_tries``
candidates were drawn (then :class:`LabelsplatError` with the rejection counts).

Everything is seeded (``numpy.random.default_rng(seed)``) and deterministic.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from .errors import LabelsplatError
from .scene import Camera, HeadFrame, is_extreme, yaw_pitch

PITCH_LIMIT_DEG = 85.0


@dataclass(frozen=True)
class Dist:
    """A 1-D distribution: ``uniform`` on [low, high], ``normal`` (mean, std) truncated to
    [low, high] by rejection, or ``fixed`` (always ``mean``)."""

    kind: Literal["uniform", "normal", "fixed"] = "uniform"
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    std: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "normal", "fixed"):
            raise LabelsplatError(f"distribution kind must be uniform|normal|fixed, got {self.kind!r}")
        vals = (self.low, self.high, self.mean, self.std)
        if not all(math.isfinite(v) for v in vals):
            raise LabelsplatError(f"distribution parameters must be finite, got {vals}")
        if self.kind != "fixed" and self.high < self.low:
            raise LabelsplatError(f"distribution range is empty: low {self.low} > high {self.high}")
        if self.kind == "normal" and self.std < 0:
            raise LabelsplatError(f"normal distribution needs std >= 0, got {self.std}")

    @classmethod
    def uniform(cls, low: float, high: float) -> "Dist":
        return cls("uniform", float(low), float(high))

    @classmethod
    def normal(cls, mean: float, std: float, low: float = -math.inf, high: float = math.inf) -> "Dist":
        lo = -1e9 if low == -math.inf else float(low)
        hi = 1e9 if high == math.inf else float(high)
        return cls("normal", lo, hi, float(mean), float(std))

    @classmethod
    def fixed(cls, value: float) -> "Dist":
        return cls("fixed", float(value), float(value), float(value), 0.0)

    def sample(self, rng: np.random.Generator, size: int, *, offset: np.ndarray | float = 0.0) -> np.ndarray:
        """``size`` draws (float64). ``offset`` (e.g. an input pose) is added to normal/fixed draws."""
        if self.kind == "fixed":
            return np.full(size, self.mean, dtype=np.float64) + offset
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, size) + offset
        out = rng.normal(self.mean, self.std, size)
        if self.std > 0:
            bad = (out < self.low) | (out > self.high)
            for _ in range(100):
                if not bad.any():
                    break
                out[bad] = rng.normal(self.mean, self.std, int(bad.sum()))
                bad = (out < self.low) | (out > self.high)
        return np.clip(out, self.low, self.high) + offset


@dataclass(frozen=True)
class ViewSamplerConfig:
    """How novel views are drawn. See the module docstring for the conventions.

    ``mode``: ``"angles"`` draws yaw/pitch from ``yaw``/``pitch`` directly; ``"around_inputs"``
    picks a random input camera and adds ``yaw``/``pitch`` draws (normal jitter) to its pose
    and multiplies its distance/focal by the ``distance``/``focal`` draws.
    ``extreme_fraction``: if set, exactly ``round(n * extreme_fraction)`` accepted views are
    extreme (|yaw| >= 60 or |pitch| >= 30) and the rest are not (quotas filled in draw order).
    ``distance``/``focal``: factors of the inputs' median distance / focal length.
    """

    preset: str = "custom"  # the named preset these settings started from (extreme | uniform | input-like)
    mode: Literal["angles", "around_inputs"] = "angles"  # angles: yaw/pitch drawn directly | around_inputs: jitter
    yaw: Dist = Dist.uniform(-180.0, 180.0)  # yaw draws in degrees (around_inputs: added to an input's)
    pitch: Dist = Dist.uniform(-60.0, 60.0)  # pitch draws in degrees (around_inputs: added to an input's)
    roll: Dist = Dist.uniform(-20.0, 20.0)  # roll draws in degrees about the viewing axis
    distance: Dist = Dist.uniform(0.9, 1.1)  # distance as a factor of the inputs' median distance
    focal: Dist = Dist.fixed(1.0)  # focal length as a factor of the inputs' median focal length
    extreme_fraction: float | None = None  # exactly this fraction of the views is extreme (none: as drawn)
    coverage_margin_deg: float = 15.0  # widening of the inputs' yaw/pitch coverage in degrees
    min_head_fraction: float = 0.05  # reject views where the head covers less of the image
    min_head_inside: float = 0.75  # reject views with less of the head's silhouette inside the image
    max_tries: int | None = None  # candidates drawn at most (none: max(2000, 200 * n))

    def __post_init__(self) -> None:
        if self.mode not in ("angles", "around_inputs"):
            raise LabelsplatError(f"sampler mode must be 'angles' or 'around_inputs', got {self.mode!r}")
        if self.extreme_fraction is not None and not 0.0 <= self.extreme_fraction <= 1.0:
            raise LabelsplatError(f"extreme_fraction must be in [0, 1], got {self.extreme_fraction}")
        if not 0.0 <= self.min_head_fraction <= 1.0 or not 0.0 <= self.min_head_inside <= 1.0:
            raise LabelsplatError("min_head_fraction and min_head_inside must be in [0, 1]")
        if self.coverage_margin_deg < 0:
            raise LabelsplatError(f"coverage_margin_deg must be >= 0, got {self.coverage_margin_deg}")
        if self.max_tries is not None and self.max_tries < 1:
            raise LabelsplatError(f"max_tries must be >= 1, got {self.max_tries}")
        for name in ("distance", "focal"):
            d: Dist = getattr(self, name)
            lo = d.mean if d.kind == "fixed" else d.low
            if lo <= 0:
                raise LabelsplatError(f"{name} factors must be positive, got a distribution reaching {lo}")

    def to_dict(self) -> dict:
        return asdict(self)


#: Named presets. ``extreme``: every view extreme, yaw/pitch uniform over the allowed range;
#: ``uniform``: yaw/pitch uniform (in angle) over the allowed range; ``input-like``: jitter
#: around the input cameras (yaw sd 10, pitch sd 5 degrees, distance sd 5 %).
PRESETS: dict[str, ViewSamplerConfig] = {
    "extreme": ViewSamplerConfig(preset="extreme", extreme_fraction=1.0),
    "uniform": ViewSamplerConfig(preset="uniform"),
    "input-like": ViewSamplerConfig(
        preset="input-like",
        mode="around_inputs",
        yaw=Dist.normal(0.0, 10.0, -30.0, 30.0),
        pitch=Dist.normal(0.0, 5.0, -15.0, 15.0),
        distance=Dist.normal(1.0, 0.05, 0.8, 1.2),
        focal=Dist.fixed(1.0),
    ),
}


def sampler_config(preset: str = "extreme", **overrides) -> ViewSamplerConfig:
    """A preset's config with fields overridden (``sampler_config("extreme", min_head_fraction=0.1)``)."""
    if preset not in PRESETS:
        raise LabelsplatError(f"unknown view sampler preset {preset!r}; known: {', '.join(PRESETS)}")
    try:
        return replace(PRESETS[preset], **overrides)
    except TypeError as exc:
        raise LabelsplatError(f"invalid view sampler option: {exc}") from exc


@dataclass
class SampledView:
    """One accepted novel view. Angles in degrees; ``distance`` in scene units;
    ``head_fraction`` = fraction of the image covered by the head."""

    camera: Camera
    yaw: float
    pitch: float
    roll: float
    distance: float = 0.0
    beyond_coverage: bool = False
    head_fraction: float = 0.0

    @property
    def extreme(self) -> bool:
        return is_extreme(self.yaw, self.pitch)

    def to_dict(self) -> dict:
        return {
            "yaw": self.yaw, "pitch": self.pitch, "roll": self.roll, "distance": self.distance,
            "beyond_coverage": self.beyond_coverage, "head_fraction": self.head_fraction,
            "extreme": self.extreme, "camera": self.camera.to_dict(),
        }


@dataclass(frozen=True)
class Coverage:
    """Yaw arc (centre +- half width) and pitch interval covered by the inputs, margin included."""

    yaw_center: float
    yaw_half_width: float
    pitch_low: float
    pitch_high: float

    def contains(self, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
        dy = np.abs(_wrap180(np.asarray(yaw, dtype=np.float64) - self.yaw_center))
        pitch = np.asarray(pitch, dtype=np.float64)
        return (dy <= self.yaw_half_width + 1e-9) & (pitch >= self.pitch_low - 1e-9) & (pitch <= self.pitch_high + 1e-9)

    def to_dict(self) -> dict:
        return asdict(self)


def _wrap180(a: np.ndarray) -> np.ndarray:
    return (np.asarray(a, dtype=np.float64) + 180.0) % 360.0 - 180.0


def input_coverage(yaws: np.ndarray, pitches: np.ndarray, margin_deg: float = 15.0) -> Coverage:
    """Coverage of input poses: the shortest circular yaw arc holding every yaw, and the pitch
    range, each widened by ``margin_deg`` (pitch clipped to +-90; an arc wider than 360 = all)."""
    yaws = _wrap180(np.asarray(yaws, dtype=np.float64).reshape(-1))
    pitches = np.asarray(pitches, dtype=np.float64).reshape(-1)
    if yaws.size == 0:
        raise LabelsplatError("coverage needs at least one input camera")
    s = np.sort(yaws)
    gaps = np.diff(np.concatenate([s, [s[0] + 360.0]]))
    k = int(np.argmax(gaps))  # the largest gap is the uncovered arc: from s[k] to s[k+1]
    start = s[(k + 1) % s.size]
    width = 360.0 - gaps[k]
    center = float(_wrap180(start + width / 2.0))
    half = min(180.0, width / 2.0 + margin_deg)
    return Coverage(center, float(half), float(max(-90.0, pitches.min() - margin_deg)),
                    float(min(90.0, pitches.max() + margin_deg)))


def direction_from_angles(yaw_deg, pitch_deg) -> np.ndarray:
    """Unit directions (N, 3) in head axes (x left, y up, z forward) for yaw/pitch in degrees."""
    y = np.radians(np.asarray(yaw_deg, dtype=np.float64).reshape(-1))
    p = np.radians(np.asarray(pitch_deg, dtype=np.float64).reshape(-1))
    return np.stack([np.cos(p) * np.sin(y), np.sin(p), np.cos(p) * np.cos(y)], axis=1)


def camera_from_pose(head: HeadFrame, yaw: float, pitch: float, roll: float, distance: float,
                     focal: float, width: int, height: int) -> Camera:
    """The camera at (yaw, pitch, distance) from the head centre, looking at it, rolled by
    ``roll`` degrees (module docstring), with ``fx = fy = focal`` and the principal point at
    the image centre. ``c2w`` in OpenGL convention, world frame of ``head``."""
    if distance <= 0:
        raise LabelsplatError(f"camera distance must be positive, got {distance}")
    pitch = float(np.clip(pitch, -PITCH_LIMIT_DEG, PITCH_LIMIT_DEG))
    d_world = direction_from_angles(yaw, pitch)[0] @ head.rotation  # head axes -> world
    center = head.center + distance * d_world
    back = d_world / np.linalg.norm(d_world)  # camera +z (OpenGL) points away from the target
    up0 = head.up - back * (head.up @ back)
    up0 /= np.linalg.norm(up0)
    right0 = np.cross(up0, back)
    r = math.radians(roll)
    right = math.cos(r) * right0 + math.sin(r) * up0
    up = -math.sin(r) * right0 + math.cos(r) * up0
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, back, center
    return Camera(focal, focal, width / 2.0, height / 2.0, int(width), int(height), c2w)


# ----------------------------------------------------------------------------- head checks
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def head_coverage_sphere(camera: Camera, center: np.ndarray, radius: float, grid: int = 64) -> tuple[float, float]:
    """(fraction of the image covered by the sphere, fraction of its silhouette inside the image).

    Coverage: ray-sphere tests through a ``grid`` x ``grid`` lattice of pixel positions spread
    over the image. Inside: 256 points of the silhouette (rim) circle projected into the image.
    A camera inside the sphere gives (0, 0).
    """
    o = camera.center
    c = np.asarray(center, dtype=np.float64)
    to_c = c - o
    dist = float(np.linalg.norm(to_c))
    if dist <= radius:
        return 0.0, 0.0
    # lattice of pixel positions, rays through them (OpenCV camera axes -> world)
    us = (np.arange(grid) + 0.5) * camera.width / grid
    vs = (np.arange(grid) + 0.5) * camera.height / grid
    uu, vv = np.meshgrid(us, vs)
    d_cam = np.stack([(uu - camera.cx) / camera.fx, (vv - camera.cy) / camera.fy, np.ones_like(uu)], -1)
    d = d_cam.reshape(-1, 3) @ camera.c2w_opencv[:3, :3].T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    t = d @ to_c
    closest2 = dist * dist - t * t
    hit = (t > 0) & (closest2 <= radius * radius)
    frac = float(hit.mean())
    # rim: circle on the sphere where view rays are tangent
    u = -to_c / dist  # unit from centre towards camera
    rim_c = c + (radius * radius / dist) * u
    rim_r = radius * math.sqrt(max(0.0, 1.0 - (radius / dist) ** 2))
    a = np.cross(u, [1.0, 0.0, 0.0])
    if np.linalg.norm(a) < 1e-6:
        a = np.cross(u, [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    circ = _unit_circle(256)
    rim = rim_c + rim_r * (circ[:, :1] * a + circ[:, 1:] * b)
    uv, z = camera.project(rim)
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    return frac, float(inside.mean())


def head_coverage_points(camera: Camera, points: np.ndarray, grid: int = 64) -> tuple[float, float]:
    """(fraction of image cells hit, fraction of points inside the image) for a point cloud.

    The image is divided into ``grid`` x ``grid`` cells; a cell is covered when a projected
    point (in front of the camera) falls into it; enclosed empty cells are filled (binary
    hole filling), so a dense cloud such as fitted Gaussian means gives the silhouette area.
    Points behind the camera count as outside.
    """
    from scipy.ndimage import binary_fill_holes  # lazy: scipy.ndimage (~0.2 s), only for head-coverage points

    uv, z = camera.project(points)
    front = z > 0
    inside = front & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    if not inside.any():
        return 0.0, 0.0
    gi = np.minimum((uv[inside, 1] * grid / camera.height).astype(np.int64), grid - 1)
    gj = np.minimum((uv[inside, 0] * grid / camera.width).astype(np.int64), grid - 1)
    occ = np.zeros((grid, grid), dtype=bool)
    occ[gi, gj] = True
    occ = binary_fill_holes(occ)
    return float(occ.mean()), float(inside.mean())


# ----------------------------------------------------------------------------- sampling
def _median_pose(cams: list[Camera], head: HeadFrame):
    yp = np.array([yaw_pitch(c.center, head) for c in cams], dtype=np.float64).reshape(-1, 2)
    dist = np.array([np.linalg.norm(c.center - head.center) for c in cams], dtype=np.float64)
    return yp[:, 0], yp[:, 1], dist


def _output_size(cams: list[Camera], width: int | None, height: int | None) -> tuple[int, int]:
    sizes = [(c.width, c.height) for c in cams]
    values, counts = np.unique(np.array(sizes), axis=0, return_counts=True)
    w0, h0 = (int(v) for v in values[int(np.argmax(counts))])
    if width is None and height is None:
        return w0, h0
    if width is None:
        width = round(w0 * height / h0)
    if height is None:
        height = round(h0 * width / w0)
    if width < 1 or height < 1:
        raise LabelsplatError(f"output size must be positive, got {width}x{height}")
    return int(width), int(height)


@dataclass
class _Inputs:
    """What the input cameras fix for the sampler: their poses around the head (``yaw``, ``pitch``,
    ``dist``), their focal lengths rescaled to the output ``width``, the medians, and the head's
    stand-in (``head_points``, else a sphere of ``head_radius``)."""

    yaw: np.ndarray
    pitch: np.ndarray
    dist: np.ndarray
    focal: np.ndarray
    med_dist: float
    med_focal: float
    width: int
    height: int
    head: HeadFrame
    head_points: np.ndarray | None
    head_radius: float | None

    def head_coverage(self, cam: Camera) -> tuple[float, float]:
        if self.head_points is not None:
            return head_coverage_points(cam, self.head_points)
        return head_coverage_sphere(cam, self.head.center, float(self.head_radius))


def _sampler_inputs(cams: list[Camera], head: HeadFrame, width: int | None, height: int | None,
                    head_radius: float | None, head_points: np.ndarray | None) -> _Inputs:
    if head_radius is not None and not (math.isfinite(head_radius) and head_radius > 0):
        raise LabelsplatError(f"head_radius must be a positive number, got {head_radius}")
    if head_points is not None:
        head_points = np.asarray(head_points, dtype=np.float64)
        if head_points.ndim != 2 or head_points.shape[1] != 3 or head_points.shape[0] == 0:
            raise LabelsplatError(f"head_points must be a non-empty (N, 3) array, got shape {head_points.shape}")
    in_yaw, in_pitch, in_dist = _median_pose(cams, head)
    if np.any(in_dist <= 0):
        raise LabelsplatError("an input camera sits at the head centre; check the head frame")
    W, H = _output_size(cams, width, height)
    in_focal = np.array([c.fx * W / c.width for c in cams], dtype=np.float64)
    med_dist, med_focal = float(np.median(in_dist)), float(np.median(in_focal))
    if head_points is None and head_radius is None:
        half_angle = math.atan(0.25 * min(W, H) / med_focal)  # sphere spans half the shorter side
        head_radius = med_dist * math.sin(half_angle)
    return _Inputs(in_yaw, in_pitch, in_dist, in_focal, med_dist, med_focal, W, H, head, head_points, head_radius)


def _draw(config: ViewSamplerConfig, rng: np.random.Generator, m: int, inp: _Inputs):
    """``m`` candidate poses: (yaw, pitch, distance, focal, roll), pitch clipped to the limit."""
    if config.mode == "around_inputs":
        src = rng.integers(0, len(inp.yaw), m)
        yaw = _wrap180(config.yaw.sample(rng, m, offset=inp.yaw[src]))
        pitch = config.pitch.sample(rng, m, offset=inp.pitch[src])
        dist = inp.dist[src] * config.distance.sample(rng, m)
        focal = inp.focal[src] * config.focal.sample(rng, m)
    else:
        yaw = _wrap180(config.yaw.sample(rng, m))
        pitch = config.pitch.sample(rng, m)
        dist = inp.med_dist * config.distance.sample(rng, m)
        focal = inp.med_focal * config.focal.sample(rng, m)
    roll = config.roll.sample(rng, m)
    pitch = np.clip(pitch, -PITCH_LIMIT_DEG, PITCH_LIMIT_DEG)
    return yaw, pitch, dist, focal, roll


def _too_few_views(accepted: int, n: int, tries: int, reasons: dict[str, int], cover: Coverage) -> LabelsplatError:
    counts = ", ".join(f"{k}: {v}" for k, v in reasons.items() if v)
    return LabelsplatError(
        f"view sampling accepted only {accepted} of {n} views after {tries} candidates "
        f"(rejected - {counts or 'none'}); input coverage: yaw {cover.yaw_center:.0f} +- "
        f"{cover.yaw_half_width:.0f} deg, pitch {cover.pitch_low:.0f}..{cover.pitch_high:.0f} deg",
        hint="allow views beyond the inputs' coverage (--beyond-coverage), use another sampler preset (--sampler), "
        "lower --sampler-set min_head_fraction=... / min_head_inside=..., or raise --sampler-set max_tries=...",
    )


def sample_views(
    input_cameras: list[Camera],
    head: HeadFrame,
    n: int,
    config: ViewSamplerConfig | str = "extreme",
    *,
    seed: int = 0,
    width: int | None = None,
    height: int | None = None,
    beyond_coverage: bool = False,
    head_radius: float | None = None,
    head_points: np.ndarray | None = None,
) -> list[SampledView]:
    """Draw ``n`` accepted novel views around ``head`` (see the module docstring).

    ``input_cameras`` define the coverage, the median distance and the median focal length (each
    ``fx`` rescaled to the output width). ``width``/``height`` default to the most common input
    size (one given: the other keeps its aspect). The head is ``head_points`` (N, 3) if given,
    else a sphere of ``head_radius``; with neither, the radius is set so the sphere spans half the
    shorter image side of a median input camera (a stated assumption; pass the real size).
    Returns the views in acceptance order; raises :class:`LabelsplatError` if fewer than ``n``
    are accepted within ``config.max_tries`` candidates.
    """
    if isinstance(config, str):
        config = sampler_config(config)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise LabelsplatError(f"the number of novel views must be a positive integer, got {n!r}")
    n = int(n)
    cams = list(input_cameras)
    if not cams:
        raise LabelsplatError("view sampling needs the input cameras (got none)")
    inp = _sampler_inputs(cams, head, width, height, head_radius, head_points)
    cover = input_coverage(inp.yaw, inp.pitch, config.coverage_margin_deg)
    max_tries = config.max_tries if config.max_tries is not None else max(2000, 200 * n)
    if config.extreme_fraction is None:
        quota = None
    else:
        n_ext = int(round(n * config.extreme_fraction))
        quota = {True: n_ext, False: n - n_ext}

    rng = np.random.default_rng(seed)
    accepted: list[SampledView] = []
    reasons = {"outside_coverage": 0, "extreme_quota": 0, "head_too_small": 0, "head_cut_off": 0}
    tries = 0
    batch = max(64, 4 * n)
    while len(accepted) < n and tries < max_tries:
        m = min(batch, max_tries - tries)
        yaw, pitch, dist, focal, roll = _draw(config, rng, m, inp)
        inside_cov = cover.contains(yaw, pitch)
        for i in range(m):
            tries += 1
            if not inside_cov[i] and not beyond_coverage:
                reasons["outside_coverage"] += 1
                continue
            ext = bool(is_extreme(yaw[i], pitch[i]))
            if quota is not None and quota[ext] <= 0:
                reasons["extreme_quota"] += 1
                continue
            cam = camera_from_pose(head, yaw[i], pitch[i], roll[i], dist[i], focal[i], inp.width, inp.height)
            frac, inside = inp.head_coverage(cam)
            if frac < config.min_head_fraction:
                reasons["head_too_small"] += 1
                continue
            if inside < config.min_head_inside:
                reasons["head_cut_off"] += 1
                continue
            if quota is not None:
                quota[ext] -= 1
            accepted.append(SampledView(cam, float(yaw[i]), float(pitch[i]), float(roll[i]), float(dist[i]),
                                        bool(not inside_cov[i]), frac))
            if len(accepted) == n:
                break
    if len(accepted) < n:
        raise _too_few_views(len(accepted), n, tries, reasons, cover)
    return accepted


# ----------------------------------------------------------------------------- fixed poses
def preset_camera(cams: list[Camera], head: HeadFrame, yaw: float, pitch: float = 0.0, *,
                  width: int | None = None, height: int | None = None) -> Camera:
    """The camera at (yaw, pitch) around the head at the inputs' mean distance from the head
    centre, with their median field of view and most common size (or ``width`` / ``height``):
    the orbit's frames and the viewer's yaw presets."""
    if not cams:
        raise LabelsplatError("a fixed pose needs the input cameras (none given)")
    w, h = _output_size(cams, width, height)
    dist = float(np.mean([np.linalg.norm(c.center - head.center) for c in cams]))
    focal = float(np.median([c.fx / c.width for c in cams])) * w
    return camera_from_pose(head, yaw, pitch, 0.0, dist, focal, w, h)


def orbit_yaws(n: int) -> np.ndarray:
    """``n`` yaws (degrees) once around the head from the front, towards the subject's left,
    wrapped to (-180, 180]."""
    if int(n) < 1:
        raise LabelsplatError(f"--orbit needs at least one frame, got {n}")
    y = np.arange(int(n), dtype=np.float64) * 360.0 / int(n)
    return np.where(y > 180.0, y - 360.0, y)


def orbit_cameras(cams: list[Camera], head: HeadFrame, n: int, *, pitch: float = 0.0,
                  width: int | None = None, height: int | None = None) -> list[Camera]:
    """``n`` cameras once around the head (:func:`orbit_yaws`) at ``pitch`` (:func:`preset_camera`)."""
    return [preset_camera(cams, head, float(y), pitch, width=width, height=height) for y in orbit_yaws(n)]


__all__ = [
    "Dist", "ViewSamplerConfig", "PRESETS", "sampler_config", "SampledView", "Coverage", "input_coverage",
    "direction_from_angles", "camera_from_pose", "head_coverage_sphere", "head_coverage_points", "sample_views",
    "preset_camera", "orbit_yaws", "orbit_cameras",
]
