"""Frames of a capture: decode a video (PyAV, no system ffmpeg) or list a photo folder, score
sharpness and pick sharp, evenly spread frames.

Sharpness is the variance of the Laplacian (``scipy.ndimage.laplace``) of the greyscale image
(0..255 scale) after resizing to the working resolution: blurry frames have little
high-frequency energy. Selection splits the sequence into ``n`` equal temporal bins and takes
the sharpest frame of each bin, so frames stay evenly spread and a blurred frame is replaced by
a sharp neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from ..errors import LabelsplatError
from ..io import IMAGE_EXTENSIONS, list_images, read_rgb

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".3gp", ".mts")
Progress = Callable[[int, int], None]


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the greyscale image (uint8 RGB (H, W, 3) or grey (H, W));
    higher = sharper."""
    from scipy.ndimage import laplace  # lazy: scipy.ndimage (~0.2 s), only for the sharpness score

    a = np.asarray(rgb)
    if a.ndim == 3:
        if a.shape[2] < 3:
            raise LabelsplatError(f"sharpness: expected (H, W, 3) RGB, got shape {a.shape}")
        g = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif a.ndim == 2:
        g = a.astype(np.float32)
    else:
        raise LabelsplatError(f"sharpness: expected an image (H, W[, 3]), got shape {a.shape}")
    return float(laplace(g).var())


def select_sharp(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices (sorted) of ``n`` frames: the sharpest of each of ``n`` equal temporal bins of
    ``len(scores)`` frames (all frames when there are at most ``n``). Ties go to the earliest."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    m = len(scores)
    if n <= 0:
        raise LabelsplatError(f"--frames must be positive, got {n}")
    if m <= n:
        return np.arange(m)
    edges = np.linspace(0, m, n + 1)
    out = []
    for k in range(n):
        a, b = int(round(edges[k])), int(round(edges[k + 1]))
        b = max(b, a + 1)
        out.append(a + int(np.argmax(scores[a:b])))
    return np.array(sorted(set(out)))


def resize_long_side(rgb: np.ndarray, resolution: int) -> np.ndarray:
    """Downscale so the long side is at most ``resolution`` px (Lanczos); never upscales."""
    h, w = rgb.shape[:2]
    if max(h, w) <= resolution:
        return rgb
    s = resolution / max(h, w)
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def apply_display_rotation(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate a frame for display by its container's display-matrix angle (degrees
    counterclockwise, a multiple of 90, as PyAV's ``VideoFrame.rotation``; phones store portrait
    video as landscape frames + -90)."""
    k = int(round(float(degrees or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def iter_video(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded frames of a video as uint8 RGB (H, W, 3), in order (PyAV), turned upright by the
    display rotation when the file has one (portrait phone videos)."""
    path = Path(path)
    try:
        import av  # lazy: optional dependency (the [capture] extra)
    except ImportError as exc:  # pragma: no cover - av is a dependency of the [capture] extra
        raise LabelsplatError("video input needs PyAV", hint="pip install 'labelsplat[capture]' (or pip install av)") from exc
    try:
        container = av.open(str(path))
    except Exception as exc:  # av raises several error types (InvalidDataError, FileNotFoundError, ...)
        raise LabelsplatError(
            f"cannot open the video ({type(exc).__name__}: {exc})", path=path,
            hint="check the file plays; re-encode it (e.g. to H.264 MP4) or extract frames into a folder and pass the folder",
        ) from exc
    try:
        if not container.streams.video:
            raise LabelsplatError("the file has no video stream", path=path,
                                  hint="pass a video file or a folder of photos")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield apply_display_rotation(frame.to_ndarray(format="rgb24"), getattr(frame, "rotation", 0))
        except LabelsplatError:
            raise
        except Exception as exc:
            raise LabelsplatError(
                f"the video cannot be decoded ({type(exc).__name__}: {exc})", path=path,
                hint="re-encode it (e.g. to H.264 MP4) or extract frames into a folder and pass the folder",
            ) from exc
    finally:
        container.close()


@dataclass
class Selected:
    """Selected frames: ``images`` uint8 RGB at the working resolution, ``source_index`` the
    frame number in the video (or index in the sorted photo list), ``source_name`` the photo's
    file name (None for video), ``sharpness`` each frame's score, ``total`` frames seen."""

    images: list[np.ndarray]
    source_index: list[int]
    source_name: list[str | None]
    sharpness: list[float]
    total: int


def select_video_frames(path: str | Path, n: int, resolution: int, *, min_frames: int = 3,
                        progress: Progress | None = None) -> Selected:
    """Decode ``path`` once (frames resized to ``resolution`` on the long side), score each and
    keep the sharpest of ``n`` temporal bins. Holds at most ~2n frames in memory at a time."""
    path = Path(path)
    # first pass: scores only (keep memory bounded for long videos); second pass: the chosen frames
    scores = []
    for k, rgb in enumerate(iter_video(path)):
        scores.append(sharpness(resize_long_side(rgb, resolution)))
        if progress is not None and k % 10 == 0:
            progress(k + 1, 0)
    if not scores:
        raise LabelsplatError("the video has no decodable frames", path=path,
                              hint="check the file plays; re-encode it or pass a folder of photos")
    if len(scores) < min_frames:
        raise LabelsplatError(
            f"the video has only {len(scores)} frame(s); at least {min_frames} are needed", path=path,
            hint="record a longer, slow orbit around the head (10-30 s)")
    idx = select_sharp(np.array(scores), n)
    want = set(int(i) for i in idx)
    images, got = [], []
    for k, rgb in enumerate(iter_video(path)):
        if k in want:
            images.append(resize_long_side(rgb, resolution))
            got.append(k)
    if len(got) != len(want):
        raise LabelsplatError("the video decoded differently on the second pass", path=path,
                              hint="re-encode it (e.g. to H.264 MP4) or extract frames into a folder")
    return Selected(images, got, [None] * len(got), [scores[k] for k in got], len(scores))


def select_photos(folder: str | Path, n: int, resolution: int, *, min_frames: int = 3) -> Selected:
    """Photos of ``folder`` (sorted by name): all of them when at most ``n``, else the sharpest
    of ``n`` bins in name order. Resized to ``resolution`` on the long side; all photos must
    have the same size (one camera)."""
    folder = Path(folder)
    paths = list_images(folder)
    if len(paths) < min_frames:
        raise LabelsplatError(
            f"found {len(paths)} image(s) ({', '.join(IMAGE_EXTENSIONS)}); at least {min_frames} are needed",
            path=folder, hint="put 20-80 overlapping photos taken around the head in the folder")
    imgs = [resize_long_side(read_rgb(p), resolution) for p in paths]
    shapes = sorted({im.shape for im in imgs})
    if len(shapes) > 1:
        raise LabelsplatError(f"the photos have different sizes {[s[:2] for s in shapes[:4]]}", path=folder,
                              hint="use photos from one camera at one resolution and orientation")
    scores = [sharpness(im) for im in imgs]
    idx = select_sharp(np.array(scores), n)
    return Selected([imgs[i] for i in idx], [int(i) for i in idx], [paths[i].name for i in idx],
                    [scores[i] for i in idx], len(paths))
