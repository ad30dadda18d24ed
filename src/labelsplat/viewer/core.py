"""The viewer without a browser: what is shown (:func:`render_view`), the cameras it snaps to, the
edit session (select, assign, undo, redo, save) and the saved views. :mod:`.server` wires these
to viser; everything here is plain functions and objects, tested directly."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import LabelsplatError
from ..io import atomic_write_json, ensure_dir, write_png
from ..scene import Camera, HeadFrame, load_scene
from ..schemes import colorize, get_scheme, overlay
from ..splat import FittedRun, GaussianModel, load_run, render_cameras
from ..splat.edits import Edit, EditFile, StoredEdits, apply_edits, brush_select, gaussian_labels, run_fingerprint
from ..splat.run import load_ply_run
from ..views import preset_camera

#: what the viewer can show
MODES = ("rgb", "labels", "overlay", "confidence", "highlight")
#: the yaw presets (degrees, head frame)
YAW_PRESETS = (-90.0, -45.0, 0.0, 45.0, 90.0)


@dataclass
class Source:
    """What the viewer shows: a run (with its scene's cameras and head frame) or a bare PLY
    (neither: free camera only). ``path``: the RUN directory or the PLY file."""

    run: FittedRun
    path: Path
    cameras: list[Camera] = field(default_factory=list)
    camera_names: list[str] = field(default_factory=list)
    head: HeadFrame | None = None

    @property
    def scheme(self):
        return get_scheme(self.run.label_scheme) if self.run.label_scheme else None

    @property
    def has_labels(self) -> bool:
        return self.run.num_classes > 0 and self.scheme is not None


def open_source(path: str | Path, device: str = "auto") -> Source:
    """A run directory (its scene gives the input cameras and the head frame, when it is still
    there) or a ``.ply`` file."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".ply":
        return Source(load_ply_run(path, device), path)
    if not path.is_dir():
        raise LabelsplatError("not a run directory or a .ply file", path=path,
                              hint="pass a fit run (labelsplat fit --out RUN) or a 3DGS .ply")
    run = load_run(path, device)
    src = Source(run, path)
    scene_dir = run.meta.get("scene")
    if scene_dir and Path(scene_dir).exists():
        scene = load_scene(scene_dir)
        src.cameras = list(scene.cameras)
        src.camera_names = [f.name for f in scene.frames]
        src.head = scene.head_frame
    stored = StoredEdits.from_dict(run.meta.get("label_edits"))
    if src.head is None and stored is not None:
        src.head = stored.head_frame
    return src


def default_save_dir(path: Path) -> Path:
    """A new folder beside RUN (or the PLY), never inside it: ``<name>-views``, ``<name>-views-2``, ..."""
    path = Path(path).resolve()
    stem = path.name if path.is_dir() else path.stem
    for i in range(1, 10000):
        cand = path.parent / (f"{stem}-views" if i == 1 else f"{stem}-views-{i}")
        if not cand.exists():
            return cand
    raise LabelsplatError("no free folder name for the saved views", path=path.parent, hint="pass --save-dir")


# ----------------------------------------------------------------------------- cameras
def camera_from_pose(c2w_opencv: np.ndarray, fov_y: float, width: int, height: int) -> Camera:
    """The viewer's camera (OpenCV camera-to-world, vertical field of view in radians) as a
    :class:`~labelsplat.scene.Camera` of ``width`` x ``height`` pixels."""
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return Camera.from_w2c_opencv(np.linalg.inv(c2w_opencv), f, f, width / 2.0, height / 2.0, int(width), int(height))


def pose_of(cam: Camera) -> tuple[np.ndarray, float]:
    """(OpenCV camera-to-world, vertical field of view in radians) of a camera."""
    return cam.c2w_opencv, 2.0 * math.atan(0.5 * cam.height / cam.fy)


def yaw_camera(src: Source, yaw: float, width: int | None = None, height: int | None = None) -> Camera:
    """The yaw preset camera (pitch 0, the inputs' mean distance) of a run with a head frame."""
    if src.head is None or not src.cameras:
        raise LabelsplatError("yaw presets need the run's scene (a bare PLY has no head frame)")
    return preset_camera(src.cameras, src.head, yaw, 0.0, width=width, height=height)


# ----------------------------------------------------------------------------- rendering
@dataclass
class ViewSettings:
    """How a view is shown: ``mode`` (:data:`MODES`), the highlighted class, hidden classes, the
    overlay's opacity."""

    mode: str = "rgb"
    highlight: str | None = None
    hidden: frozenset[str] = frozenset()
    overlay_alpha: float = 0.5


def _visible_run(run: FittedRun, hidden: frozenset[str]) -> FittedRun:
    """``run`` without the Gaussians of the ``hidden`` classes (a copy; the run itself unchanged)."""
    if not hidden or run.num_classes == 0:
        return run
    scheme = get_scheme(run.label_scheme)
    keep = ~np.isin(gaussian_labels(run.model), [scheme.index(c) for c in hidden])
    idx = torch.as_tensor(np.nonzero(keep)[0], device=run.model.device)
    m = run.model
    params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach()[idx]) for k, v in m.params.items()})
    nvs = None if m.n_views_seen is None else m.n_views_seen[idx]
    model = GaussianModel(params, m.sh_degree, m.num_classes, nvs, head=m.head, rasterize_mode=m.rasterize_mode)
    return FittedRun(model, run.norm, run.config, run.label_scheme, run.num_classes, run.meta, run.run_dir)


def view_images(run: FittedRun, camera: Camera, settings: ViewSettings | None = None) -> dict[str, np.ndarray]:
    """The render of ``camera`` as uint8 images: ``rgb``, and with labels ``labels`` (ids),
    ``labels_colour``, ``overlay``, ``confidence``."""
    settings = settings or ViewSettings()
    r = render_cameras(_visible_run(run, settings.hidden), [camera], batch_size=1)[0]
    rgb = np.clip(np.rint(r["rgb"] * 255.0), 0, 255).astype(np.uint8)
    out = {"rgb": rgb}
    if "labels" in r and run.label_scheme:
        out["labels"] = r["labels"]
        out["labels_colour"] = colorize(r["labels"], run.label_scheme)
        out["overlay"] = overlay(rgb, r["labels"], run.label_scheme, settings.overlay_alpha)
        conf = np.clip(np.rint(r["confidence"] * 255.0), 0, 255).astype(np.uint8)
        out["confidence"] = np.repeat(conf[..., None], 3, axis=2)
    return out


def compose(images: dict[str, np.ndarray], settings: ViewSettings, scheme_name: str | None) -> np.ndarray:
    """The (H, W, 3) uint8 image of ``settings.mode`` from :func:`view_images`' images."""
    mode = settings.mode
    if mode not in MODES:
        raise LabelsplatError(f"unknown view mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    if mode == "rgb" or "labels" not in images:
        return images["rgb"]
    if mode == "labels":
        return images["labels_colour"]
    if mode == "highlight" and settings.highlight:
        scheme = get_scheme(scheme_name)
        on = images["labels"] == scheme.index(settings.highlight)
        dim = (images["rgb"].astype(np.float32) * 0.35).astype(np.uint8)
        return np.where(on[..., None], images["overlay"], dim)
    return images["overlay" if mode in ("overlay", "highlight") else "confidence"]


def render_view(run: FittedRun, camera: Camera, settings: ViewSettings | None = None) -> np.ndarray:
    """The render callback: the (H, W, 3) uint8 image the viewer shows for ``camera``."""
    settings = settings or ViewSettings()
    return compose(view_images(run, camera, settings), settings, run.label_scheme or None)


def save_view(run: FittedRun, camera: Camera, save_dir: Path, settings: ViewSettings | None = None) -> list[Path]:
    """Write the view's RGB, label map (class ids), coloured labels and overlay as PNGs into
    ``save_dir`` (``view_NNN_*.png``, NNN the next free number); returns the files."""
    ensure_dir(save_dir)
    n = 1 + max((int(p.name.split("_")[1]) for p in Path(save_dir).glob("view_*_rgb.png")
                 if p.name.split("_")[1].isdigit()), default=0)
    images = view_images(run, camera, settings)
    written = []
    for key in ("rgb", "labels", "labels_colour", "overlay"):
        if key in images:
            written.append(write_png(Path(save_dir) / f"view_{n:03d}_{key}.png", images[key]))
    return written


# ----------------------------------------------------------------------------- editing
class EditSession:
    """3D label edits in the viewer: selections, assignments, undo / redo, the edits file.

    The run's features at the start are the base; the model always holds base + the applied
    edits, in order (so undo re-applies the rest from the base)."""

    def __init__(self, src: Source):
        if not src.has_labels:
            raise LabelsplatError("this model has no labels to edit")
        self.src = src
        self.run = src.run
        self.base = self.run.model.params["sem"].detach().clone()
        self.fingerprint = run_fingerprint(self.run.model)
        self.done: list[Edit] = []
        self.undone: list[Edit] = []

    def brush(self, camera: Camera, mask: np.ndarray) -> tuple[int, ...]:
        """Ids of the Gaussians that dominate the brushed pixels of ``camera`` (scene frame)."""
        return tuple(int(i) for i in brush_select(self.run.model, self.run.norm.camera_to_norm(camera), mask))

    def _rebuild(self) -> list[int]:
        """The base features with the applied edits; how many Gaussians each edit selected."""
        with torch.no_grad():
            self.run.model.params["sem"].copy_(self.base)
        return apply_edits(self.run.model, self.done, scheme=self.run.label_scheme, norm=self.run.norm,
                           head=self.src.head, scale=self.run.config.bg_logit)

    def assign(self, edit: Edit) -> int:
        """Apply ``edit``; returns how many Gaussians it changed the class of or selected."""
        self.done.append(edit)
        self.undone.clear()
        return self._rebuild()[-1]

    def undo(self) -> bool:
        if not self.done:
            return False
        self.undone.append(self.done.pop())
        self._rebuild()
        return True

    def redo(self) -> bool:
        if not self.undone:
            return False
        self.done.append(self.undone.pop())
        self._rebuild()
        return True

    def edit_file(self) -> EditFile:
        return EditFile(list(self.done), self.fingerprint, self.run.label_scheme)

    def save(self, path: Path) -> Path:
        """The edits so far as an edits file (``labelsplat edit RUN --edits FILE``)."""
        return atomic_write_json(path, self.edit_file().to_dict(), add_schema_version=False)


__all__ = ["EditSession", "MODES", "Source", "ViewSettings", "YAW_PRESETS", "camera_from_pose", "compose",
           "default_save_dir", "open_source", "pose_of", "render_view", "save_view", "view_images", "yaw_camera"]
