"""The fit's data: training views at the base resolution, their resolution pyramid on the device,
the camera order, and what the fit reads about its labels (scheme, class and view weights).

* :func:`load_views` -> :class:`ViewData` (numpy, loaded once, frame order);
* :class:`ViewPyramid` -> one :class:`ViewLevel` per resolution scale (tensors on the device);
* :class:`CameraOrder` -> the random camera order (one permutation per epoch), checkpointable.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import LabelsplatError
from ..io import IGNORE_INDEX, read_label, read_rgb
from ..scene import Camera, Scene, yaw_pitch
from ..scene.paths import check_name
from ..schemes import get_scheme
from .colour_weights import colour_label_weights
from .config import FitConfig
from .init import foreground_mask
from .normalize import Normalization
from .render import camera_tensors


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


def resize_array(arr: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    """``arr`` (H,W[,C]) uint8/bool-as-uint8 resized to ``size`` = (w, h) (box filter, or nearest for ids)."""
    w, h = size
    if arr.shape[1] == w and arr.shape[0] == h:
        return arr
    img = Image.fromarray(arr)
    return np.asarray(img.resize((w, h), Image.NEAREST if nearest else Image.BOX))


def scaled_camera(cam: Camera, w: int, h: int) -> Camera:
    """``cam`` with its intrinsics scaled to a ``w`` x ``h`` image."""
    sx, sy = w / cam.width, h / cam.height
    return Camera(cam.fx * sx, cam.fy * sy, cam.cx * sx, cam.cy * sy, w, h, cam.c2w.copy())


def _read_sized(path: Path, cam: Camera, what: str) -> np.ndarray:
    """The first channel of a greyscale map that must have the camera's size."""
    arr = read_rgb(path)[..., 0]
    if arr.shape != (cam.height, cam.width):
        raise LabelsplatError(f"{what} size {arr.shape[1]}x{arr.shape[0]} differs from its image", path=path)
    return arr


def _read_frame(scene: Scene, idx: int, fr, num_classes: int):
    """(rgb, labels or None, label file or None, confidence or None, mask or None) at the frame's size."""
    json_path = Path(scene.root) / "transforms.json"
    check_name(fr.name, what=f"frame {idx}: 'name'", path=json_path)
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
        lab = read_label(scene.path(fr.label_path), num_classes, shape=(cam.height, cam.width),
                         palette=get_scheme(scene.label_scheme).palette_array())
        label_file = str(scene.path(fr.label_path))
    conf = None
    if num_classes > 0 and fr.extra.get("label_confidence_path"):
        conf = _read_sized(scene.path(fr.extra["label_confidence_path"]), cam, "confidence map")
    mask = None
    if fr.mask_path is not None:
        mask = _read_sized(scene.path(fr.mask_path), cam, "mask") > 127
    if mask is None and lab is None:
        if fr.label_path is not None:  # RGB-only fit: the labels still give the foreground
            mask = read_label(scene.path(fr.label_path), shape=(cam.height, cam.width)) != 0
        else:
            mask = np.ones((cam.height, cam.width), dtype=bool)  # no mask, no labels: all foreground
    return rgb, lab, label_file, conf, mask


def _load_frame(scene: Scene, cfg: FitConfig, num_classes: int, idx: int, fr) -> tuple:
    """One frame at the base resolution: (name, camera, image, labels, foreground, confidence, label file)."""
    rgb, lab, label_file, conf, mask = _read_frame(scene, idx, fr, num_classes)
    cam = fr.camera
    f = 1.0
    if cfg.max_resolution is not None and max(cam.width, cam.height) > cfg.max_resolution:
        f = cfg.max_resolution / max(cam.width, cam.height)
    w, h = max(1, round(cam.width * f)), max(1, round(cam.height * f))
    rgb = resize_array(rgb, (w, h), nearest=False)
    if lab is not None:
        lab = resize_array(lab, (w, h), nearest=True)
    if mask is not None:
        mask = resize_array(mask.astype(np.uint8) * 255, (w, h), nearest=False) > 127
    fg = foreground_mask(lab, mask, dilate_px=int(round(cfg.mask_dilate * max(w, h))))
    return (fr.name, scaled_camera(cam, w, h), rgb.astype(np.float32) / 255.0, lab, fg,
            None if conf is None else resize_array(conf, (w, h), nearest=False).astype(np.float32) / 255.0,
            label_file)


def load_views(scene: Scene, cfg: FitConfig, num_classes: int) -> ViewData:
    """Read every frame's image, label and mask, downscaled to ``cfg.max_resolution``.

    Raises :class:`LabelsplatError` naming the file for missing images/labels, sizes that
    disagree with the camera, label ids outside the scheme and per-frame scheme mismatches.
    A frame's optional ``label_confidence_path`` (greyscale PNG, 255 = full weight) weights
    its pixels in the semantic loss (a parser's confidence; frames without one weigh 1).
    """
    # frames are decoded and resized on threads (PNG decoding and resizing release the GIL);
    # results and the first error come in frame order
    workers = max(1, min(8, os.cpu_count() or 1, len(scene.frames)))
    with ThreadPoolExecutor(workers) as pool:
        rows = list(pool.map(lambda i, fr: _load_frame(scene, cfg, num_classes, i, fr),
                             range(len(scene.frames)), scene.frames))
    names, cams, imgs, labs, masks, confs = ([r[k] for r in rows] for k in range(6))
    lfiles = [r[6] for r in rows if r[6] is not None]
    _check_usable(scene, names, labs if num_classes > 0 else None, lfiles)
    any_conf = any(c is not None for c in confs)
    if any_conf:
        confs = [np.ones(m.shape, np.float32) if c is None else c for c, m in zip(confs, masks)]
    return ViewData(names, cams, imgs, labs if num_classes > 0 else None, masks, lfiles, confs if any_conf else None)


#: Fewer views than this fit, with a warning: the head is seen from too few sides to place its labels.
USEFUL_MIN_VIEWS = 6


def _check_usable(scene: Scene, names: list[str], labels: list[np.ndarray] | None, label_files: list[Path]) -> None:
    """At least 2 views, and (a joint fit) a usable label pixel (not 255 = ignore) in some view."""
    json_path = Path(scene.root) / "transforms.json"
    if len(names) < 2:
        raise LabelsplatError(f"the scene has {len(names)} view; a fit needs at least 2 (better {USEFUL_MIN_VIEWS} "
                              "or more around the head)", path=json_path,
                              hint="add views of the head from other directions")
    if labels is not None and not any(bool((lab != IGNORE_INDEX).any()) for lab in labels):
        shown = ", ".join(str(p) for p in label_files[:2]) + (", ..." if len(label_files) > 2 else "")
        raise LabelsplatError(f"no label map has a usable pixel: every pixel of the {len(labels)} label maps is "
                              f"255 (ignore) ({shown})", path=json_path,
                              hint="give label maps with class ids (`labelsplat parse` makes them), or fit colour "
                                   "only with --rgb-only")


def few_views_note(n_views: int) -> str | None:
    """The warning for a scene with fewer than :data:`USEFUL_MIN_VIEWS` views (None otherwise)."""
    if n_views >= USEFUL_MIN_VIEWS:
        return None
    return (f"only {n_views} views: a fit sees the head from few sides and its labels at novel views will be "
            f"poor (use {USEFUL_MIN_VIEWS} or more views around the head)")


def apply_colour_weights(views: ViewData, cfg: FitConfig, num_classes: int) -> None:
    """Multiply the views' label confidences by the colour plausibility of their labels
    (``cfg.label_colour_weight``, :mod:`.colour_weights`); nothing when it is off or K = 0."""
    if cfg.label_colour_weight is None or num_classes == 0:
        return
    cw = colour_label_weights([(im * 255.0 + 0.5).astype(np.uint8) for im in views.images], views.labels, num_classes,
                              masks=views.masks, floor=cfg.label_colour_weight, full_at=cfg.label_colour_full_at)
    views.confidences = cw if views.confidences is None else [a * b for a, b in zip(views.confidences, cw)]


@dataclass
class ViewLevel:
    """Every view at one resolution scale, on the fit's device (lists in frame order)."""

    cameras: list[Camera]  # normalised frame
    cam_t: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (viewmat, K, centre) per view
    images: list[torch.Tensor]  # (H,W,3) float32
    masks: list[torch.Tensor]  # (H,W) float32 in [0,1]
    labels: list[torch.Tensor] = field(default_factory=list)  # (H,W) int64; empty for an RGB-only fit
    confidences: list[torch.Tensor] = field(default_factory=list)  # (H,W) float32; empty without weights


class ViewPyramid:
    """Per-resolution-scale torch copies of the views (built on first use or by :meth:`build`, cached)."""

    def __init__(self, views: ViewData, norm: Normalization, device):
        self.views, self.norm, self.device = views, norm, device
        self.cache: dict[float, ViewLevel] = {}

    def _view(self, i: int, scale: float) -> dict:
        v = self.views
        cam = v.cameras[i]
        w, h = max(1, round(cam.width * scale)), max(1, round(cam.height * scale))
        cam_n = self.norm.camera_to_norm(scaled_camera(cam, w, h))
        # (viewmat, K, centre) on the device once, so a step copies nothing from the host
        rec: dict = {"cameras": cam_n, "cam_t": tuple(t[0] for t in camera_tensors([cam_n], self.device))}
        img = resize_array((v.images[i] * 255.0 + 0.5).astype(np.uint8), (w, h), nearest=False) if scale != 1.0 \
            else None
        img_t = torch.from_numpy(v.images[i] if img is None else img.astype(np.float32) / 255.0)
        rec["images"] = img_t.to(self.device)
        m = resize_array(v.masks[i].astype(np.uint8) * 255, (w, h), nearest=False).astype(np.float32) / 255.0
        rec["masks"] = torch.from_numpy(m).to(self.device)
        if v.confidences is not None:
            c = resize_array((v.confidences[i] * 255.0 + 0.5).astype(np.uint8), (w, h), nearest=False)
            rec["confidences"] = torch.from_numpy(c.astype(np.float32) / 255.0).to(self.device)
        if v.labels is not None:
            lab = resize_array(v.labels[i], (w, h), nearest=True)
            rec["labels"] = torch.from_numpy(lab.astype(np.int64)).to(self.device)
        return rec

    def build(self, scales) -> None:
        """Build the levels of ``scales`` now, the views of each on threads (PIL resizes release
        the GIL), so that the step loop never waits for a resolution switch."""
        todo = [sc for sc in dict.fromkeys(scales) if sc not in self.cache]
        if not todo:
            return
        n = len(self.views.cameras)
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            for sc in todo:
                self._store(sc, list(pool.map(lambda i, sc=sc: self._view(i, sc), range(n))))

    def _store(self, scale: float, recs: list[dict]) -> ViewLevel:
        lists = {k: [r[k] for r in recs if k in r]
                 for k in ("cameras", "cam_t", "images", "masks", "labels", "confidences")}
        level = self.cache[scale] = ViewLevel(**lists)
        return level

    def get(self, scale: float) -> ViewLevel:
        if scale in self.cache:
            return self.cache[scale]
        return self._store(scale, [self._view(i, scale) for i in range(len(self.views.cameras))])


class CameraOrder:
    """The order in which a fit visits its views: a fresh random permutation each epoch, drawn from
    :attr:`generator` (seeded; on the CPU it also draws the random backgrounds)."""

    def __init__(self, n_views: int, seed: int):
        self.n_views = int(n_views)
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.perm: torch.Tensor = torch.zeros(0, dtype=torch.int64)
        self.pos = 0

    def next(self, k: int) -> list[int]:
        """The next ``k`` view indices."""
        idx = []
        for _ in range(k):
            if self.pos >= len(self.perm):
                self.perm = torch.randperm(self.n_views, generator=self.generator)
                self.pos = 0
            idx.append(int(self.perm[self.pos]))
            self.pos += 1
        return idx


# ---------------------------------------------------------------------------- labels and weights
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


def scheme_classes(scene: Scene) -> tuple[str, int]:
    """(scheme name, number of classes) of the scene's label scheme (LabelsplatError naming transforms.json)."""
    try:
        sch = get_scheme(scene.label_scheme)
    except LabelsplatError as exc:
        raise LabelsplatError(exc.message, path=Path(scene.root) / "transforms.json", hint=exc.hint) from exc
    return sch.name, sch.num_classes


def concept_class_weights(scheme_name: str, by_concept) -> list[float]:
    """Per-class weights (K,) in the scheme's order from (concept, weight) pairs; others 1."""
    table = dict(by_concept)
    return [float(table.get(c, 1.0)) for c in get_scheme(scheme_name).concepts]


def class_weight_tensor(cfg: FitConfig, scheme_name: str, num_classes: int, device) -> torch.Tensor | None:
    """(K,) float32 class weights of the semantic loss: ``cfg.class_weights`` (in the scheme's order)
    or ``cfg.class_weights_by_concept``; None when neither is set or K = 0."""
    if cfg.class_weights is not None and num_classes > 0:
        if len(cfg.class_weights) != num_classes:
            raise LabelsplatError(f"class_weights has {len(cfg.class_weights)} entries, the scheme has "
                                  f"{num_classes} classes")
        return torch.tensor(cfg.class_weights, dtype=torch.float32, device=device)
    if cfg.class_weights_by_concept is not None and num_classes > 0:
        return torch.tensor(concept_class_weights(scheme_name, cfg.class_weights_by_concept),
                            dtype=torch.float32, device=device)
    return None


def semantic_view_weights(scene: Scene, cfg: FitConfig) -> list[float] | None:
    """Per-frame semantic-loss weights from ``cfg.label_view_weight`` (None when ``none``).

    The weight depends on each input camera's yaw in the scene's head frame (docs/design.md); with
    Adam a Gaussian seen only by low-weight views still learns, the weights only rebalance
    views that disagree about the same surface."""
    spec = cfg.parsed.label_view_weight
    if not spec.enabled:
        return None
    if scene.head_frame is None:
        raise LabelsplatError(f"label_view_weight={cfg.label_view_weight!r} needs the scene's head_frame",
                              path=Path(scene.root) / "transforms.json",
                              hint="give the scene a head frame (`labelsplat scene head-frame SCENE --from-cameras`, "
                                   "--from-landmarks or --set JSON) or use --fit-set label_view_weight=none")
    return [spec.weight(yaw_pitch(fr.camera.center, scene.head_frame)[0]) for fr in scene.frames]


__all__ = ["CameraOrder", "ViewData", "ViewLevel", "ViewPyramid", "apply_colour_weights", "check_cameras",
           "class_weight_tensor", "concept_class_weights", "load_views", "resize_array", "scaled_camera",
           "scheme_classes", "semantic_view_weights"]
