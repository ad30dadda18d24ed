"""Synthetic scenes on disk and in memory (the API the CLI and the pipeline use).

* :func:`synthesize_scene` / :func:`synthesize` write ``DIR/head_000/...`` scene directories in
  the canonical format (``transforms.json`` via :func:`labelsplat.scene.save_scene`, with
  ``images/``, ``labels/`` (noise model output), ``gt_labels/`` (exact), ``masks/`` (exact
  foreground, 0/255) and ``synth.json``).
* :func:`load_head` reads a scene's ``synth.json``; :func:`render_views` renders a head at any
  cameras in memory; :func:`render_like` re-renders a scene's head at given cameras on disk.

World = the head frame of docs/design.md (cm), recorded as ``head_frame`` (centre ``HEAD_CENTER``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import SCHEMA_VERSION
from ..errors import LabelsplatError
from ..io import atomic_dir, atomic_write_json, read_json, write_png
from ..scene import Camera, Frame, HeadFrame, Scene, load_scene, save_scene, yaw_pitch
from .head import HEAD_CENTER, HeadMesh, HeadParams, build_head, sample_head
from .noise import NoiseSpec, apply_noise, parse_noise, surface_patches
from .regions import SCHEME
from .render import TEXTURES, RenderResult, render_head
from .rigs import RigConfig, rig_cameras

SYNTH_JSON = "synth.json"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SynthConfig:
    """Settings of ``labelsplat synth`` (validated on construction)."""

    identities: int = 1
    views: int = 16
    rig: str = "facescape"
    resolution: int = 256
    noise: str = "none"
    seed: int = 0
    distance_jitter: float = 0.08
    focal_jitter: float = 0.08
    texture: str = "smooth"

    def __post_init__(self) -> None:
        if self.texture not in TEXTURES:
            raise LabelsplatError(f"unknown --texture {self.texture!r}", hint=f"choose one of {', '.join(TEXTURES)}")
        if int(self.identities) <= 0:
            raise LabelsplatError(f"--identities must be positive, got {self.identities}")
        RigConfig(self.rig, int(self.views), int(self.resolution))  # validates rig, views, resolution
        parse_noise(self.noise)

    @property
    def rig_config(self) -> RigConfig:
        return RigConfig(self.rig, int(self.views), int(self.resolution),
                         distance_jitter=self.distance_jitter, focal_jitter=self.focal_jitter)


def head_frame() -> HeadFrame:
    """The synthetic scenes' head frame: identity axes, centre ``HEAD_CENTER`` (cm)."""
    return HeadFrame(np.asarray(HEAD_CENTER), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))


def head_seed(seed: int, index: int) -> int:
    """The seed of identity ``index`` of a run with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index), 0x4EAD]).generate_state(1)[0] & 0x7FFFFFFF)


def render_views(head: HeadParams | HeadMesh, cameras: Sequence[Camera], *, noise: str | NoiseSpec = "none",
                 progress: Progress | None = None, texture: str = "smooth",
                 workers: int | None = None) -> list[RenderResult]:
    """Render a head at ``cameras`` (in memory): RGB, noisy + exact labels, depth, alpha, mask.

    Each result also carries its ``camera``, ``yaw``/``pitch`` (degrees) and a ``warning`` when
    the camera sees none of the head (its outputs are then all background). Noise is
    deterministic per (head seed, camera), so the same camera always gets the same labels.
    ``texture``: see :func:`labelsplat.synth.render.render_head`. ``workers`` threads render
    views concurrently (the rasteriser is compiled without the GIL; default: the CPU count, at
    most 16); the results are in camera order and identical for any count.
    """
    spec = noise if isinstance(noise, NoiseSpec) else parse_noise(noise)
    mesh = head if isinstance(head, HeadMesh) else build_head(head)
    hf = head_frame()
    patches = None if spec.is_none else surface_patches(mesh, spec.level, mesh.params.seed)

    def one(cam: Camera) -> RenderResult:
        res = render_head(mesh, cam, texture=texture)
        res.labels = apply_noise(res, mesh, cam, spec, mesh.params.seed, patches=patches, head_frame=hf)
        yaw, pitch = yaw_pitch(cam.center, hf)
        warn = None
        if not res.mask.any():
            warn = "the camera does not see the head (empty foreground)"
        elif res.mask[0].any():
            warn = "the top of the head is cut by the image border"
        res.yaw, res.pitch, res.warning = float(yaw), float(pitch), warn
        return res

    n = min(len(cameras), workers if workers is not None else min(16, os.cpu_count() or 1))
    if n <= 1:
        results = map(one, cameras)
        pool = None
    else:
        pool = ThreadPoolExecutor(n)
        results = pool.map(one, cameras)
    out = []
    try:
        for k, res in enumerate(results):
            out.append(res)
            if progress is not None:
                progress(k + 1, len(cameras))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def _write_views(root: Path, views: list[RenderResult], names: list[str]) -> list[Frame]:
    frames = []
    for name, v in zip(names, views):
        r = v
        write_png(root / "images" / f"{name}.png", r.rgb)
        write_png(root / "labels" / f"{name}.png", r.labels)
        write_png(root / "gt_labels" / f"{name}.png", r.gt_labels)
        write_png(root / "masks" / f"{name}.png", (r.mask.astype(np.uint8) * 255))
        frames.append(Frame(name=name, camera=v.camera, file_path=f"images/{name}.png",
                            label_path=f"labels/{name}.png", gt_label_path=f"gt_labels/{name}.png",
                            mask_path=f"masks/{name}.png",
                            extra={"yaw": round(v.yaw, 4), "pitch": round(v.pitch, 4)}))
    return frames


def _config_dict(config: SynthConfig) -> dict:
    d = asdict(config)
    if d.get("texture") == "smooth":  # the default is not recorded, so default outputs are unchanged
        d.pop("texture")
    return d


def _synth_doc(params: HeadParams, spec: NoiseSpec, extra: dict, texture: str = "smooth") -> dict:
    doc = {"schema_version": SCHEMA_VERSION, "generator": "labelsplat.synth", "label_scheme": SCHEME,
           "units": "cm", "head": params.to_dict(), "noise": spec.name, **extra}
    if texture != "smooth":  # recorded only when set, so default outputs are unchanged
        doc["texture"] = texture
    return doc


def synthesize_scene(out_dir: str | Path, config: SynthConfig, index: int = 0, *, overwrite: bool = False,
                     progress: Progress | None = None) -> tuple[Scene, list[str]]:
    """Write identity ``index`` of ``config`` as the scene directory ``out_dir`` (atomically).

    Returns the scene (as loaded back) and the per-view warnings (``"view_003: ..."``).
    """
    spec = parse_noise(config.noise)
    hseed = head_seed(config.seed, index)
    params = sample_head(hseed)
    cams, poses = rig_cameras(config.rig_config, hseed)
    views = render_views(params, cams, noise=spec, progress=progress, texture=config.texture)
    names = [f"view_{k:03d}" for k in range(len(views))]
    warnings = [f"{n}: {v.warning}" for n, v in zip(names, views) if v.warning]
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        frames = _write_views(tmp, views, names)
        scene = Scene(root=tmp, frames=frames, label_scheme=SCHEME, head_frame=head_frame(),
                      extra={"synthetic": True, "units": "cm"})
        save_scene(scene)
        atomic_write_json(tmp / SYNTH_JSON, _synth_doc(params, spec, {
            "config": _config_dict(config), "identity_index": int(index), "head_seed": hseed,
            "rig": config.rig, "poses": [[float(a), float(b)] for a, b in poses]}, texture=config.texture))
    return load_scene(out_dir), warnings


def synthesize(out: str | Path, config: SynthConfig, *, overwrite: bool = False,
               progress: Progress | None = None) -> list[tuple[Scene, list[str]]]:
    """Write ``config.identities`` scenes ``out/head_000``, ``out/head_001``, ..."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LabelsplatError("--out exists and is not a directory", path=out)
    existing = [out / f"head_{i:03d}" for i in range(config.identities) if (out / f"head_{i:03d}").exists()]
    if existing and not overwrite:
        raise LabelsplatError("the output already holds this scene", path=existing[0],
                              hint="pass --overwrite or choose another --out")
    results = []
    total = config.identities * config.views
    for i in range(config.identities):
        cb = None if progress is None else (lambda k, n, i=i: progress(i * config.views + k, total))
        results.append(synthesize_scene(out / f"head_{i:03d}", config, i, overwrite=overwrite, progress=cb))
    return results


def load_synth(scene_dir: str | Path) -> dict:
    """The parsed ``synth.json`` of a synthetic scene (a clear error if missing/unreadable)."""
    path = Path(scene_dir)
    if path.is_file():
        path = path.parent
    jp = path / SYNTH_JSON
    if not jp.exists():
        raise LabelsplatError("not a synthetic scene: synth.json is missing", path=jp,
                              hint="--like needs a scene written by `labelsplat synth`")
    doc = read_json(jp)
    if not isinstance(doc, dict) or "head" not in doc:
        raise LabelsplatError("synth.json has no 'head' parameters", path=jp)
    return doc


def load_head(scene_dir: str | Path) -> HeadParams:
    """The :class:`HeadParams` stored in a synthetic scene's ``synth.json``."""
    doc = load_synth(scene_dir)
    try:
        return HeadParams.from_dict(doc["head"])
    except LabelsplatError as exc:
        raise LabelsplatError(exc.message, path=Path(scene_dir) / SYNTH_JSON, hint=exc.hint) from exc


def render_like(scene_dir: str | Path, cameras: str | Path | Sequence[Camera], out: str | Path, *,
                noise: str | None = None, names: Sequence[str] | None = None, overwrite: bool = False,
                progress: Progress | None = None) -> tuple[Scene, list[str]]:
    """Re-render the head of ``scene_dir`` at ``cameras`` (a transforms.json / scene dir, or a
    list of cameras), in their order with their sizes and intrinsics, into ``out/<scene name>/``.

    ``noise`` defaults to the source scene's noise model; the texture is the source's
    (``synth.json`` ``texture``, default ``smooth``). Returns (scene, warnings).
    """
    scene_dir = Path(scene_dir)
    doc = load_synth(scene_dir)
    params = load_head(scene_dir)
    spec = parse_noise(noise if noise is not None else doc.get("noise", "none"))
    if isinstance(cameras, (str, Path)):
        cam_scene = load_scene(cameras)
        cams = cam_scene.cameras
        frame_names = [f.name for f in cam_scene.frames]
    else:
        cams = list(cameras)
        frame_names = list(names) if names is not None else [f"view_{k:03d}" for k in range(len(cams))]
    if not cams:
        raise LabelsplatError("no cameras given")
    name = scene_dir.resolve().name if scene_dir.is_dir() else scene_dir.resolve().parent.name
    target = Path(out) / name
    texture = str(doc.get("texture", "smooth"))
    views = render_views(params, cams, noise=spec, progress=progress, texture=texture)
    warnings = [f"{n}: {v.warning}" for n, v in zip(frame_names, views) if v.warning]
    with atomic_dir(target, overwrite=overwrite) as tmp:
        frames = _write_views(tmp, views, frame_names)
        scene = Scene(root=tmp, frames=frames, label_scheme=SCHEME, head_frame=head_frame(),
                      extra={"synthetic": True, "units": "cm"})
        save_scene(scene)
        atomic_write_json(tmp / SYNTH_JSON, _synth_doc(params, spec, {
            "like": str(scene_dir), "config": doc.get("config"), "head_seed": doc.get("head_seed")}, texture=texture))
    return load_scene(target), warnings


__all__ = ["SYNTH_JSON", "SynthConfig", "head_frame", "head_seed", "load_head", "load_synth",
           "render_like", "render_views", "synthesize", "synthesize_scene"]
