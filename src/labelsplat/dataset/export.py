"""Writing refined views as a dataset in the docs/design.md layout (what ``train`` reads).

``OUT/`` holds::

    images/<name>.png       uint8 RGB render
    labels/<name>.png       uint8 class ids in the scheme's order (255 = ignore)
    overlays/<name>.jpg     labels blended over the image (for inspection)
    confidence/<name>.png   uint8 = round(confidence * 255)
    rejected/<name>.jpg     overlay of each rejected view (inspection only)
    transforms.json         canonical scene of the accepted views' cameras (labelsplat.scene)
    manifest.json           schema_version, label_scheme, config, seed, versions, views[...]
    CelebAMask-HQ-mask-anno/<k>/<idx:05d>_<class>.png   optional (celebamask_layout=True)

Each manifest view: ``name, image, label, overlay, confidence, source_scene, yaw, pitch,
mean_confidence, accepted, reason, split, camera`` plus the caller's extra ``meta`` keys.
Rejected views are listed with their reason; their files are not in images/ or labels/.

``mean_confidence`` is the caller's ``meta["mean_confidence"]`` if given (e.g. from the
post-processing report), else the mean confidence over the view's foreground (labels neither
background nor 255).

The directory is built in a temporary sibling and renamed on success
(:func:`labelsplat.io.atomic_dir`): an exception inside the ``with`` block leaves no output.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__
from ..errors import LabelsplatError
from ..io import IGNORE_INDEX, atomic_dir, atomic_write_json, read_json, read_label, write_png
from ..scene import Camera, Frame, HeadFrame, Scene, load_scene, save_scene
from ..scene.paths import check_name
from ..schemes import convert_labels, get_scheme, overlay

MANIFEST = "manifest.json"
CELEBAMASK_DIR = "CelebAMask-HQ-mask-anno"
CELEBAMASK_PER_FOLDER = 2000  # the official layout: 2000 masks' images per numbered folder


def versions() -> dict[str, str]:
    """Versions of the software that wrote a file (no heavy imports)."""
    out = {"labelsplat": __version__, "python": sys.version.split()[0], "numpy": np.__version__}
    for pkg in ("torch", "gsplat"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def assign_splits(scene_names, val_fraction: float, seed: int = 0) -> dict[str, str]:
    """Identity-level split: ``{scene_name: "train"|"val"}``; every view of a scene shares it.

    The distinct names are sorted, shuffled with ``seed`` and the first
    ``round(val_fraction * n)`` go to ``val`` — at least one when ``val_fraction > 0`` and there
    are >= 2 scenes, never all of them when ``val_fraction < 1`` (one scene: always ``train``
    unless ``val_fraction == 1``).
    """
    if not 0.0 <= float(val_fraction) <= 1.0:
        raise LabelsplatError(f"val_fraction must be in [0, 1], got {val_fraction}")
    names = sorted({str(n) for n in scene_names})
    n = len(names)
    if n == 0:
        return {}
    k = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        k = max(1, k)
    if val_fraction < 1:
        k = min(k, n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = {names[i] for i in order[:k]}
    return {name: ("val" if name in val else "train") for name in names}


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class DatasetWriter:
    """Context manager writing a dataset directory atomically (module docstring).

    ``scheme``: the labels' scheme (name or :class:`~labelsplat.schemes.LabelScheme`).
    ``head_frame``: written at the top of transforms.json (optional). ``config`` / ``seed``:
    recorded in the manifest. ``val_fraction``: identity-level split by ``source_scene`` at
    close (a view's ``meta["split"]`` wins). ``celebamask_layout``: also write CelebAMask-HQ
    per-class binary masks (official class names/order, via ``convert_labels`` to the
    ``celebamask-hq`` scheme; ``celebamask_lr`` is passed as its ``dst_lr``: None keeps the names
    at face value, no left/right swap). ``allow_empty``: accept a dataset with no accepted view
    (otherwise an error, and nothing is written).
    """

    def __init__(
        self,
        out_dir: str | Path,
        scheme="celebamask19-zll",
        *,
        overwrite: bool = False,
        celebamask_layout: bool = False,
        celebamask_lr: str | None = None,
        head_frame: HeadFrame | None = None,
        config: dict | None = None,
        seed: int | None = None,
        val_fraction: float = 0.0,
        allow_empty: bool = False,
        overlay_alpha: float = 0.5,
        workers: int | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.scheme = get_scheme(scheme)
        self.overwrite = overwrite
        self.celebamask_layout = celebamask_layout
        self.celebamask_lr = celebamask_lr
        self.head_frame = head_frame
        self.config = dict(config or {})
        self.seed = seed
        if not 0.0 <= float(val_fraction) <= 1.0:
            raise LabelsplatError(f"val_fraction must be in [0, 1], got {val_fraction}")
        self.val_fraction = float(val_fraction)
        self.allow_empty = allow_empty
        self.overlay_alpha = overlay_alpha
        # image encoding (PNG/JPEG in Pillow releases the GIL) runs on a thread pool
        self.workers = max(1, min(8, os.cpu_count() or 1) if workers is None else int(workers))
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._ctx = None
        self._tmp: Path | None = None
        self._views: list[dict] = []
        self._frames: list[Frame] = []
        self._names: set[str] = set()
        self._camhq_count = 0
        self._camhq_index: list[dict] = []
        self.path: Path | None = None

    # -- context management
    def __enter__(self) -> "DatasetWriter":
        if self._ctx is not None:
            raise LabelsplatError("DatasetWriter is already open")
        self._ctx = atomic_dir(self.out_dir, overwrite=self.overwrite)
        self._tmp = self._ctx.__enter__()
        for sub in ("images", "labels", "overlays", "confidence"):
            (self._tmp / sub).mkdir()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dataset-writer")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        ctx = self._ctx
        try:
            if exc_type is None:
                try:
                    self._drain()
                    self._finish()
                except BaseException as err:
                    ctx.__exit__(type(err), err, err.__traceback__)
                    raise
                ctx.__exit__(None, None, None)
                self.path = self.out_dir
                return False
            self._drain(cancel=True)
            ctx.__exit__(exc_type, exc, tb)
            return False
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, []
            self._ctx, self._tmp = None, None

    def _drain(self, cancel: bool = False) -> None:
        """Wait for the queued image writes; re-raise the first failure (unless cancelling)."""
        pending, self._pending = self._pending, []
        first = None
        for fut in pending:
            if cancel:
                fut.cancel()
            try:
                fut.result()
            except BaseException as err:  # noqa: BLE001 - re-raised below
                first = first or err
        if first is not None and not cancel:
            raise first

    def _write_image(self, path: Path, arr, fmt: str) -> None:
        """Queue one image write inside the temporary dataset directory. The directory becomes
        visible only by its final rename, so files are written directly (no per-file fsync);
        PNGs use zlib level 1 (about 3x faster than Pillow's default, ~10 % larger). ``arr``
        is an array or a function returning one (computed on the writer's thread, e.g. an
        overlay blend)."""
        make = arr if callable(arr) else (lambda a=arr: a)

        def job() -> None:
            kw = {"compress_level": 1} if fmt == "PNG" else {"quality": 90}
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                Image.fromarray(np.ascontiguousarray(make())).save(fh, format=fmt, **kw)

        if self._pool is None:
            job()
        else:
            self._pending.append(self._pool.submit(job))
            if len(self._pending) > 64 * self.workers:  # bound the queued images' memory
                self._drain()

    def _require_open(self) -> Path:
        if self._tmp is None or self._ctx is None:
            raise LabelsplatError("DatasetWriter must be used as a context manager (`with DatasetWriter(...) as w:`)")
        return self._tmp

    def _check_name(self, name: str) -> None:
        check_name(name, what="view name")
        if name in self._names:
            raise LabelsplatError(f"duplicate view name {name!r} in the dataset")

    # -- adding views
    def add_view(self, name: str, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray | None,
                 camera: Camera, meta: dict | None = None) -> dict:
        """Add one rendered view. ``rgb`` uint8 (H, W, 3); ``labels`` uint8 (H, W) in the writer's
        scheme (255 = ignore); ``confidence`` float (H, W) in [0, 1] or None; ``camera`` the
        rendered camera (same size). ``meta``: ``source_scene``, ``yaw``, ``pitch``,
        ``accepted`` (default True), ``reason``, ``split``, ``mean_confidence`` and any other
        JSON-able keys (stored in the manifest entry). Returns the manifest entry."""
        tmp = self._require_open()
        self._check_name(name)
        meta = dict(meta or {})
        rgb = np.asarray(rgb)
        lab = np.asarray(labels)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise LabelsplatError(f"view {name!r}: rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
        if lab.shape != rgb.shape[:2] or lab.dtype != np.uint8:
            raise LabelsplatError(f"view {name!r}: labels must be uint8 {rgb.shape[:2]}, got {lab.dtype} {lab.shape}")
        bad = (lab >= self.scheme.num_classes) & (lab != IGNORE_INDEX)
        if bad.any():
            raise LabelsplatError(f"view {name!r}: label ids {np.unique(lab[bad])[:10].tolist()} outside scheme "
                                  f"{self.scheme.name!r}")
        if not isinstance(camera, Camera):
            raise LabelsplatError(f"view {name!r}: camera must be a labelsplat.scene.Camera")
        if (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            raise LabelsplatError(f"view {name!r}: camera is {camera.width}x{camera.height} but the image is "
                                  f"{rgb.shape[1]}x{rgb.shape[0]}")
        conf = None
        if confidence is not None:
            conf = np.asarray(confidence)
            if not np.issubdtype(conf.dtype, np.floating):
                conf = conf.astype(np.float64)
            if conf.shape != lab.shape:
                raise LabelsplatError(f"view {name!r}: confidence shape {conf.shape} differs from labels {lab.shape}")
            if not np.isfinite(conf).all() or conf.min(initial=0.0) < -1e-6 or conf.max(initial=0.0) > 1 + 1e-6:
                raise LabelsplatError(f"view {name!r}: confidence must be finite and in [0, 1]")
        accepted = bool(meta.pop("accepted", True))
        reason = meta.pop("reason", None)
        mean_conf = _finite(meta.pop("mean_confidence", None))
        if mean_conf is None and conf is not None:
            bg = self.scheme.index("background") if "background" in self.scheme.concepts else 0
            fg = (lab != bg) & (lab != IGNORE_INDEX)
            mean_conf = float(conf[fg].mean()) if fg.any() else None
        # the overlay blend and the confidence quantisation run on the writer's threads (copies
        # taken here: the caller may reuse its buffers)
        rgb_c, lab_c = np.array(rgb, copy=True), np.array(lab, copy=True)
        ov = lambda: overlay(rgb_c, lab_c, self.scheme, alpha=self.overlay_alpha)  # noqa: E731
        entry: dict[str, Any] = {"name": name}
        if accepted:
            self._write_image(tmp / "images" / f"{name}.png", rgb_c, "PNG")
            self._write_image(tmp / "labels" / f"{name}.png", lab_c, "PNG")
            self._write_image(tmp / "overlays" / f"{name}.jpg", ov, "JPEG")
            entry.update(image=f"images/{name}.png", label=f"labels/{name}.png", overlay=f"overlays/{name}.jpg")
            if conf is not None:
                conf_c = np.array(conf, copy=True)
                self._write_image(tmp / "confidence" / f"{name}.png",
                                  lambda: np.clip(np.rint(conf_c * 255.0), 0, 255).astype(np.uint8), "PNG")
                entry["confidence"] = f"confidence/{name}.png"
            if self.celebamask_layout:
                entry["celebamask_index"] = self._write_celebamask(tmp, name, lab)
        else:
            self._write_image(tmp / "rejected" / f"{name}.jpg", ov, "JPEG")
            entry["rejected_overlay"] = f"rejected/{name}.jpg"
        self._record(entry, camera, meta, accepted, reason, mean_conf)
        return entry

    def add_rejected(self, name: str, camera: Camera, reason: str, meta: dict | None = None) -> dict:
        """List a view that was rejected before rendering/extraction (no files at all)."""
        self._require_open()
        self._check_name(name)
        meta = dict(meta or {})
        meta.pop("accepted", None)
        meta.pop("reason", None)
        mean_conf = _finite(meta.pop("mean_confidence", None))
        entry: dict[str, Any] = {"name": name}
        self._record(entry, camera, meta, False, reason, mean_conf)
        return entry

    def _record(self, entry: dict, camera: Camera, meta: dict, accepted: bool, reason, mean_conf) -> None:
        if not accepted and not reason:
            raise LabelsplatError(f"view {entry['name']!r} is rejected without a reason")
        entry.update(
            source_scene=meta.pop("source_scene", None),
            yaw=_finite(meta.pop("yaw", None)),
            pitch=_finite(meta.pop("pitch", None)),
            mean_confidence=mean_conf,
            accepted=accepted,
            reason=None if accepted else str(reason),
            split=meta.pop("split", None),
            camera=camera.to_dict(),
        )
        for k, v in meta.items():
            if k in entry:
                raise LabelsplatError(f"view {entry['name']!r}: meta key {k!r} clashes with a manifest field")
            entry[k] = v
        self._names.add(entry["name"])
        self._views.append(entry)
        if accepted:
            extra = {k: entry[k] for k in ("source_scene", "yaw", "pitch") if entry[k] is not None}
            if "confidence" in entry:
                extra["confidence_path"] = entry["confidence"]
            if "head_frame" in meta and isinstance(meta["head_frame"], dict):
                extra["head_frame"] = meta["head_frame"]
            self._frames.append(Frame(entry["name"], camera, file_path=entry["image"], label_path=entry["label"],
                                      extra=extra))

    def _write_celebamask(self, tmp: Path, name: str, lab: np.ndarray) -> int:
        dst = get_scheme("celebamask-hq")
        conv = convert_labels(lab, self.scheme, dst, dst_lr=self.celebamask_lr)
        idx = self._camhq_count
        self._camhq_count += 1
        folder = tmp / CELEBAMASK_DIR / str(idx // CELEBAMASK_PER_FOLDER)
        present = np.unique(conv)
        for k in present.tolist():
            if k == IGNORE_INDEX or dst.concepts[k] == "background":
                continue
            write_png(folder / f"{idx:05d}_{dst.classes[k]}.png", np.where(conv == k, 255, 0).astype(np.uint8))
        self._camhq_index.append({"index": idx, "name": name})
        return idx

    def _merge_view(self, src_dir: Path, name: str, files: dict, camera: Camera, meta: dict) -> None:
        """Copy one view's files from an existing dataset (used by :func:`merge_datasets`)."""
        tmp = self._require_open()
        self._check_name(name)
        accepted = bool(meta.pop("accepted", True))
        reason = meta.pop("reason", None)
        mean_conf = _finite(meta.pop("mean_confidence", None))
        entry: dict[str, Any] = {"name": name}
        dirs = {"image": ("images", ".png"), "label": ("labels", ".png"), "overlay": ("overlays", ".jpg"),
                "confidence": ("confidence", ".png"), "rejected_overlay": ("rejected", ".jpg")}
        for key, rel in files.items():
            if rel is None:
                continue
            src = src_dir / rel
            if not src.is_file():
                raise LabelsplatError(f"view {name!r}: file listed in the manifest is missing", path=src)
            sub, ext = dirs[key]
            dst = tmp / sub / f"{name}{ext}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:  # a hard link costs nothing and the files are never rewritten in place
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            entry[key] = f"{sub}/{name}{ext}"
        if accepted:
            for key in ("image", "label"):
                if key not in entry:
                    raise LabelsplatError(f"accepted view {name!r} has no {key} file", path=src_dir / MANIFEST)
            if self.celebamask_layout:
                lab = read_label(src_dir / files["label"], self.scheme.num_classes)
                entry["celebamask_index"] = self._write_celebamask(tmp, name, lab)
        self._record(entry, camera, meta, accepted, reason, mean_conf)

    # -- closing
    def _finish(self) -> None:
        tmp = self._require_open()
        if not self._views and not self.allow_empty:
            raise LabelsplatError("no views were added to the dataset", path=self.out_dir,
                                  hint="check the sampler and rendering steps")
        n_acc = sum(v["accepted"] for v in self._views)
        if n_acc == 0 and not self.allow_empty:
            reasons: dict[str, int] = {}
            for v in self._views:
                reasons[v["reason"]] = reasons.get(v["reason"], 0) + 1
            summary = "; ".join(f"{r} ({c})" for r, c in list(reasons.items())[:5])
            raise LabelsplatError(f"all {len(self._views)} views were rejected: {summary}", path=self.out_dir,
                                  hint="lower the post-processing thresholds (--pp-set min_view_confidence=...) or check the fit")
        splits = assign_splits([v["source_scene"] or "" for v in self._views], self.val_fraction, self.seed or 0)
        for v in self._views:
            if v["split"] is None:
                v["split"] = splits[v["source_scene"] or ""]
        for f in self._frames:
            entry = next(v for v in self._views if v["name"] == f.name)
            f.extra["split"] = entry["split"]
        if self._frames:
            save_scene(Scene(tmp, self._frames, label_scheme=self.scheme.name, head_frame=self.head_frame), tmp)
        if self.celebamask_layout:
            atomic_write_json(tmp / CELEBAMASK_DIR / "index.json", {
                "scheme": "celebamask-hq", "source_scheme": self.scheme.name, "dst_lr": self.celebamask_lr,
                "views": self._camhq_index,
            })
        manifest = {
            "label_scheme": self.scheme.name,
            "config": self.config,
            "seed": self.seed,
            "versions": versions(),
            "head_frame": None if self.head_frame is None else self.head_frame.to_dict(),
            "counts": {"views": len(self._views), "accepted": n_acc, "rejected": len(self._views) - n_acc},
            "celebamask_layout": CELEBAMASK_DIR if self.celebamask_layout else None,
            "views": self._views,
        }
        atomic_write_json(tmp / MANIFEST, manifest)


def _same_head(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(np.allclose(a[k], b[k], atol=1e-9) for k in ("center", "up", "forward"))


def merge_datasets(dirs, out: str | Path, *, overwrite: bool = False, val_fraction: float | None = None,
                   seed: int | None = None, celebamask_layout: bool | None = None) -> Path:
    """Merge datasets written by :class:`DatasetWriter` into one at ``out`` (atomic).

    All inputs must share ``label_scheme``. A view name that occurs twice is renamed
    ``<source_scene or dataset dir name>__<name>`` (an error if that collides too). Accepted
    views' files are copied; each transforms.json frame keeps its source's ``head_frame``
    (per frame when the sources differ). ``val_fraction`` re-splits by identity over all
    scenes (default: keep each view's split); ``celebamask_layout`` defaults to on when every
    input has it (masks are rewritten with new indices).
    """
    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise LabelsplatError("merge_datasets needs at least one dataset directory")
    manifests = []
    for d in dirs:
        if not (d / MANIFEST).exists():
            raise LabelsplatError("not a dataset directory (no manifest.json)", path=d)
        m = read_json(d / MANIFEST)
        if not isinstance(m, dict) or not isinstance(m.get("views"), list) or "label_scheme" not in m:
            raise LabelsplatError("manifest.json needs 'label_scheme' and a 'views' list", path=d / MANIFEST)
        manifests.append(m)
    schemes = {m["label_scheme"] for m in manifests}
    if len(schemes) != 1:
        raise LabelsplatError(f"cannot merge datasets with different label schemes: {sorted(schemes)}",
                              hint="convert the labels first (`labelsplat labels convert`)")
    heads = [m.get("head_frame") for m in manifests]
    common_head = heads[0] if all(_same_head(heads[0], h) for h in heads) else None
    if celebamask_layout is None:
        celebamask_layout = all(m.get("celebamask_layout") for m in manifests)
    seed_out = seed if seed is not None else manifests[0].get("seed")
    config = {"merged_from": [str(d) for d in dirs], "configs": [m.get("config") for m in manifests]}
    counts: dict[str, int] = {}
    for m in manifests:
        for v in m["views"]:
            counts[v["name"]] = counts.get(v["name"], 0) + 1

    with DatasetWriter(out, schemes.pop(), overwrite=overwrite, celebamask_layout=celebamask_layout,
                       head_frame=None if common_head is None else HeadFrame.from_dict(common_head),
                       config=config, seed=seed_out, val_fraction=val_fraction or 0.0) as w:
        for d, m, head in zip(dirs, manifests, heads):
            try:
                scene_frames = {f.name: f for f in load_scene(d).frames} if (d / "transforms.json").exists() else {}
            except LabelsplatError:
                scene_frames = {}
            for v in m["views"]:
                v = dict(v)
                orig = v.pop("name")
                name = orig if counts[orig] == 1 else f"{v.get('source_scene') or d.name}__{orig}"
                cam_d = v.pop("camera", None)
                if orig in scene_frames:
                    cam = scene_frames[orig].camera
                elif isinstance(cam_d, dict):
                    cam = Camera(cam_d["fl_x"], cam_d["fl_y"], cam_d["cx"], cam_d["cy"], cam_d["w"], cam_d["h"],
                                 np.asarray(cam_d["transform_matrix"]))
                else:
                    raise LabelsplatError(f"view {name!r} has no camera in manifest or transforms.json", path=d)
                files = {k: v.pop(k, None) for k in ("image", "label", "overlay", "confidence", "rejected_overlay")}
                v.pop("celebamask_index", None)
                if val_fraction is not None:
                    v.pop("split", None)
                if common_head is None and head is not None:
                    v.setdefault("head_frame", head)
                w._merge_view(d, name, files, cam, v)
    return Path(out)




__all__ = ["DatasetWriter", "assign_splits", "merge_datasets", "versions", "MANIFEST", "CELEBAMASK_DIR"]
