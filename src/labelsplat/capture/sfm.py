"""Structure from motion with pycolmap (COLMAP 4, CPU): SIFT features, sequential or exhaustive
matching, incremental mapping; the largest model is written as a binary COLMAP model.

All frames share one camera (``CameraMode.SINGLE``, model ``SIMPLE_RADIAL`` by default: one
focal length, principal point, one radial coefficient — a phone's video). COLMAP poses are
world-to-camera, OpenCV axes; the importer (:mod:`labelsplat.scene.importers.colmap`) converts
them to the scene's camera-to-world OpenGL convention and undistorts to pinhole.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import LabelsplatError

MATCHERS = ("auto", "sequential", "exhaustive")


@dataclass(frozen=True)
class SfmConfig:
    """pycolmap settings. ``matcher``: ``sequential`` (video: each frame with its ``overlap``
    neighbours), ``exhaustive`` (photos: all pairs), ``auto`` = sequential for video, exhaustive
    for photos. ``max_features`` per image; ``num_threads`` -1 = all cores; ``seed`` seeds the
    mapper's RANSAC."""

    matcher: str = "auto"
    overlap: int = 10
    max_features: int = 8192
    camera_model: str = "SIMPLE_RADIAL"
    num_threads: int = -1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise LabelsplatError(f"unknown --matcher {self.matcher!r}", hint=f"choose one of {', '.join(MATCHERS)}")
        if int(self.overlap) < 1:
            raise LabelsplatError(f"overlap must be >= 1, got {self.overlap}")


@dataclass
class SfmResult:
    """``model_dir``: the largest model (binary); ``registered`` / ``total`` images;
    ``num_points``; ``num_models`` found; ``timings`` in seconds per stage."""

    model_dir: Path
    registered: int
    total: int
    num_points: int
    num_models: int
    timings: dict
    registered_names: list[str] = None  # type: ignore[assignment]


def _import_pycolmap():
    try:  # lazy: optional dependency (the [capture] extra)
        import pycolmap
    except ImportError as exc:
        raise LabelsplatError("capture needs pycolmap", hint="pip install 'labelsplat[capture]' (or pip install pycolmap)") from exc
    return pycolmap


def run_sfm(image_dir: str | Path, image_names: Sequence[str], work_dir: str | Path, config: SfmConfig, *,
            video: bool, verbose: bool = False) -> SfmResult:
    """Run feature extraction, matching and incremental mapping on ``image_names`` in
    ``image_dir``; the database goes to ``work_dir/database.db`` and the largest model to
    ``work_dir/sparse`` (replacing earlier ones). Errors when no model could be built."""
    pycolmap = _import_pycolmap()
    if not verbose:
        pycolmap.logging.minloglevel = 2  # COLMAP's INFO/WARNING lines (glog) off; errors still shown
    image_dir, work_dir = Path(image_dir), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    db = work_dir / "database.db"
    if db.exists():
        db.unlink()
    timings = {}
    t = time.perf_counter()
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = config.camera_model
    ext = pycolmap.FeatureExtractionOptions()
    ext.use_gpu = False
    ext.num_threads = int(config.num_threads)
    ext.sift.max_num_features = int(config.max_features)
    pycolmap.extract_features(db, image_dir, image_names=list(image_names), camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, extraction_options=ext, device=pycolmap.Device.cpu)
    timings["features"] = time.perf_counter() - t
    t = time.perf_counter()
    match = pycolmap.FeatureMatchingOptions()
    match.use_gpu = False
    match.num_threads = int(config.num_threads)
    matcher = config.matcher if config.matcher != "auto" else ("sequential" if video else "exhaustive")
    if matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = int(config.overlap)
        pairing.loop_detection = False  # needs a vocabulary tree file (a download)
        pycolmap.match_sequential(db, matching_options=match, pairing_options=pairing, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(db, matching_options=match, device=pycolmap.Device.cpu)
    timings["matching"] = time.perf_counter() - t
    t = time.perf_counter()
    opts = pycolmap.IncrementalPipelineOptions()
    opts.random_seed = int(config.seed)
    opts.num_threads = int(config.num_threads)
    opts.min_model_size = 3
    out_all = work_dir / "mapper"
    if out_all.exists():
        shutil.rmtree(out_all)
    out_all.mkdir()
    models = pycolmap.incremental_mapping(db, image_dir, out_all, options=opts)
    timings["mapping"] = time.perf_counter() - t
    total = len(image_names)
    if not models:
        raise LabelsplatError(
            f"structure from motion registered no images (0 of {total}): too few matching features between frames",
            path=image_dir,
            hint="film a slower orbit with more overlap between frames, in even light, with a textured "
                 "background; try --frames 80 or --matcher exhaustive")
    best = max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))
    model_dir = work_dir / "sparse"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir()
    best.write_binary(str(model_dir))
    shutil.rmtree(out_all, ignore_errors=True)
    names = sorted(img.name for img in best.images.values() if img.has_pose)
    return SfmResult(model_dir, int(best.num_reg_images()), total, int(best.num_points3D()), len(models), timings, names)
