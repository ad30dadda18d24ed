"""A zero-download landmark parser for real photos: MediaPipe face mesh + selfie segmentation.

MediaPipe 0.10.21 (the ``[mediapipe]`` extra) ships its face detector, face-mesh (478 landmarks
with ``refine_landmarks=True``) and selfie-segmentation models *inside the wheel*, so this
parser needs no download and no weights file. It pins ``numpy<2`` and ``protobuf<5`` and pulls
``jax`` and ``opencv-contrib-python``: install it in a **separate environment**
(``pip install 'labelsplat[mediapipe]'``); labelsplat itself never imports ``cv2`` and imports
``mediapipe`` only inside the functions that need it.

What it labels (scheme ``celebamask19-zll``, subject's left/right):

* face-mesh polygons, painted in this order (later wins): ``skin`` (the face oval),
  ``nose`` (convex hull of MediaPipe's ``FACEMESH_NOSE`` points: bridge from the nasion down to
  the alae), ``l_brow``/``r_brow``, ``l_eye``/``r_eye`` (eyelid contours: the visible eye; the
  iris lies inside them), ``u_lip``/``l_lip`` (outer lip contour to inner contour) and
  ``mouth`` (inside the inner lip contour);
* selfie segmentation: pixels with person probability < 0.5 are ``background`` (0);
* person pixels outside the face oval are **255 (unknown)**: hair, ears, neck, clothes and hats
  are all "person" to the selfie model and the mesh does not cover them, so no honest class can
  be given. Downstream (the joint fit, metrics) treats 255 as ignore.

Left/right: MediaPipe's mesh indices are anatomical (``FACEMESH_LEFT_EYE`` holds landmark 263,
the subject's left outer eye corner, which appears on the image's right in a frontal photo; a
test checks this on scikit-image's astronaut photo). They map to the ``l_*`` classes of a
``subject``-convention scheme; other schemes get :func:`labelsplat.schemes.convert_labels`.

Coordinates: landmarks are returned in pixels in the docs/design.md pixel-centre convention (pixel
``(i, j)`` covers ``[i, i+1) x [j, j+1)``; MediaPipe's normalised ``x in [0, 1]`` spans the
image width, so ``x_px = x * W``, ``y_px = y * H``); ``z`` is MediaPipe's relative depth
(smaller = closer to the camera, origin near the head centre) scaled by ``W`` like ``x``.
Polygons are rasterised by testing pixel centres (``skimage.draw.polygon`` on ``(y - 0.5,
x - 0.5)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from skimage.draw import polygon

from ..errors import LabelsplatError
from ..io import IGNORE_INDEX, read_rgb, write_jpg, write_png
from ..schemes import convert_labels, get_scheme, overlay
from .folders import folder_images
from .model_info import ModelInfo

#: Native scheme of :func:`labels_from_landmarks` (its ``lr_convention`` is ``subject``).
NATIVE_SCHEME = "celebamask19-zll"
N_LANDMARKS = 478
N_LANDMARKS_NO_IRIS = 468
INSTALL_HINT = (
    "install the extra in a separate environment (MediaPipe pins numpy<2 and protobuf<5): "
    "python -m venv .venv-mp && .venv-mp/bin/pip install 'labelsplat[mediapipe]'  "
    "(or use the BiSeNet path: labelsplat parse INPUT --weights 79999_iter.pth)"
)
#: The landmark parser's entry in the model registry (:mod:`.registry`).
LANDMARK_INFO = ModelInfo(
    input_size=0,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    label_scheme=NATIVE_SCHEME,
    source="https://github.com/google-ai-edge/mediapipe (mediapipe==0.10.21 wheel: face_detection_short_range, "
           "face_landmark_with_attention, selfie_segmentation .tflite models inside the package)",
    license="Apache-2.0",
    description="Landmark parser: face-mesh polygons (skin, brows, eyes, nose, lips, mouth; subject's left) + "
                "selfie segmentation (background); other person pixels 255. Any input size (input_size 0: "
                "the image is passed as is, uint8 RGB); needs the [mediapipe] extra in its own environment",
)

# MediaPipe face-mesh index loops (from mediapipe/python/solutions/face_mesh_connections.py,
# Apache-2.0; ordered into polygons here: a test in the mediapipe environment checks that their
# edges are exactly the wheel's FACEMESH_* connection sets).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_IRIS = (474, 475, 476, 477)
RIGHT_IRIS = (469, 470, 471, 472)
# Eyebrows are two open chains each (lower: 276..285 / 46..55; upper: 300..336 / 70..107);
# the polygon is the lower chain followed by the upper one reversed.
LEFT_EYEBROW_CHAINS = ((276, 283, 282, 295, 285), (300, 293, 334, 296, 336))
RIGHT_EYEBROW_CHAINS = ((46, 53, 52, 65, 55), (70, 63, 105, 66, 107))
LEFT_EYEBROW = LEFT_EYEBROW_CHAINS[0] + LEFT_EYEBROW_CHAINS[1][::-1]
RIGHT_EYEBROW = RIGHT_EYEBROW_CHAINS[0] + RIGHT_EYEBROW_CHAINS[1][::-1]
# Lips: four chains from the right mouth corner (61 outer / 78 inner) to the left one (291 / 308).
LIPS_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_LIP = LIPS_UPPER_OUTER + LIPS_UPPER_INNER[::-1]
LOWER_LIP = LIPS_LOWER_OUTER + LIPS_LOWER_INNER[::-1]
MOUTH = LIPS_UPPER_INNER + LIPS_LOWER_INNER[::-1][1:-1]
#: Points of MediaPipe's FACEMESH_NOSE (ridge 168..2 and the alar outline); the nose region is their convex hull.
NOSE_POINTS = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115, 48, 64)

#: Painting order: (class name in NATIVE_SCHEME, polygon or None for the nose hull). Later wins.
PAINT_ORDER: tuple[tuple[str, tuple[int, ...] | None], ...] = (
    ("skin", FACE_OVAL),
    ("nose", None),
    ("l_brow", LEFT_EYEBROW),
    ("r_brow", RIGHT_EYEBROW),
    ("l_eye", LEFT_EYE),
    ("r_eye", RIGHT_EYE),
    ("u_lip", UPPER_LIP),
    ("l_lip", LOWER_LIP),
    ("mouth", MOUTH),
)


# ----------------------------------------------------------------------------- pure part
def rasterize_polygon(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask (H, W) of the pixels whose centres lie inside the polygon ``xy`` (N, 2).

    ``xy`` are continuous pixel coordinates (x right, y down) in the pixel-centre convention of
    docs/design.md (pixel ``(i, j)``'s centre is ``(i + 0.5, j + 0.5)``). Vertices outside the image
    are fine (the polygon is clipped).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) < 3:
        raise ValueError(f"polygon must be (N >= 3, 2), got {xy.shape}")
    H, W = int(shape[0]), int(shape[1])
    mask = np.zeros((H, W), dtype=bool)
    rr, cc = polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape=(H, W))
    mask[rr, cc] = True
    return mask


def _convex_hull(xy: np.ndarray) -> np.ndarray:
    """Vertices (M, 2) of the 2-D convex hull of ``xy`` (monotone chain; degenerate sets allowed)."""
    pts = np.unique(np.asarray(xy, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1])


def labels_from_landmarks(
    landmarks: np.ndarray | None,
    person_mask: np.ndarray | None,
    shape: tuple[int, int],
    scheme: str = NATIVE_SCHEME,
) -> np.ndarray:
    """Label map (H, W) uint8 from face-mesh landmarks and a person mask (pure, no MediaPipe).

    ``landmarks``: (468 or 478, 2 or 3) pixel coordinates (x, y[, z]) in the pixel-centre
    convention (see the module doc), or ``None`` when no face was found. ``person_mask``: (H, W)
    bool (True = person), or ``None`` when unknown. Rules: pixels outside the person mask are
    background; face polygons are painted on top (they win over the mask); every other pixel
    (person but not face, or everything when the mask is unknown) is 255. Without landmarks the
    face is unknown: person pixels are 255, the rest background (all 255 without a mask).
    The result is in ``scheme`` (converted from the native subject-convention
    ``celebamask19-zll`` with :func:`labelsplat.schemes.convert_labels`).
    """
    H, W = int(shape[0]), int(shape[1])
    if H <= 0 or W <= 0:
        raise ValueError(f"shape must be positive (H, W), got {shape}")
    native = get_scheme(NATIVE_SCHEME)
    out = np.full((H, W), IGNORE_INDEX, dtype=np.uint8)
    if person_mask is not None:
        pm = np.asarray(person_mask)
        if pm.shape != (H, W):
            raise ValueError(f"person_mask is {pm.shape}, expected {(H, W)}")
        out[~pm.astype(bool)] = native.index("background")
    if landmarks is not None:
        lm = np.asarray(landmarks, dtype=np.float64)
        if lm.ndim != 2 or lm.shape[0] not in (N_LANDMARKS, N_LANDMARKS_NO_IRIS) or lm.shape[1] not in (2, 3):
            raise ValueError(f"landmarks must be ({N_LANDMARKS} or {N_LANDMARKS_NO_IRIS}, 2|3), got {lm.shape}")
        if not np.all(np.isfinite(lm[:, :2])):
            raise ValueError("landmarks hold non-finite coordinates")
        xy = lm[:, :2]
        for name, poly in PAINT_ORDER:
            verts = _convex_hull(xy[list(NOSE_POINTS)]) if poly is None else xy[list(poly)]
            if len(verts) < 3:
                continue
            out[rasterize_polygon(verts, (H, W))] = native.index(name)
    s = get_scheme(scheme)
    if s.name == native.name:
        return out
    return convert_labels(out, native, s, src_lr="subject")


# ----------------------------------------------------------------------------- MediaPipe part
def _require_mediapipe():
    try:  # lazy: optional dependency (the [mediapipe] extra, its own environment)
        import mediapipe  # noqa: F401
        from mediapipe.python.solutions import face_mesh, selfie_segmentation  # noqa: F401
    except ImportError as e:
        raise LabelsplatError(f"the landmark parser needs the 'mediapipe' package ({e})", hint=INSTALL_HINT) from None
    return face_mesh, selfie_segmentation


def _check_rgb(rgb: Any) -> np.ndarray:
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


class _Models:
    """Lazily created MediaPipe solutions (reused across images; static image mode)."""

    def __init__(self, selfie_model: int = 0):
        self.selfie_model = int(selfie_model)
        self._mesh = None
        self._selfie = None

    def mesh(self):
        if self._mesh is None:
            face_mesh, _ = _require_mediapipe()
            self._mesh = face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                            min_detection_confidence=0.5)
        return self._mesh

    def selfie(self):
        if self._selfie is None:
            _, selfie_segmentation = _require_mediapipe()
            self._selfie = selfie_segmentation.SelfieSegmentation(model_selection=self.selfie_model)
        return self._selfie

    def close(self) -> None:
        for m in (self._mesh, self._selfie):
            if m is not None:
                m.close()
        self._mesh = self._selfie = None


_DEFAULT_MODELS: _Models | None = None


def _default_models() -> _Models:
    global _DEFAULT_MODELS
    if _DEFAULT_MODELS is None:
        _DEFAULT_MODELS = _Models()
    return _DEFAULT_MODELS


def detect_face_landmarks(rgb: np.ndarray, *, models: _Models | None = None) -> np.ndarray | None:
    """The 478 face-mesh landmarks of the most prominent face in a uint8 RGB image, or None.

    Returns (478, 3) float64: ``x, y`` in pixels (pixel-centre convention, ``x = x_norm * W``,
    ``y = y_norm * H``) and MediaPipe's relative depth ``z * W`` (smaller = nearer the camera).
    """
    img = _check_rgb(rgb)
    H, W = img.shape[:2]
    res = (models or _default_models()).mesh().process(img)
    if not res.multi_face_landmarks:
        return None
    lms = res.multi_face_landmarks[0].landmark
    arr = np.array([(p.x * W, p.y * H, p.z * W) for p in lms], dtype=np.float64)
    return arr


def selfie_probability(rgb: np.ndarray, *, models: _Models | None = None) -> np.ndarray:
    """Person probability (H, W) float32 in [0, 1] from MediaPipe selfie segmentation."""
    img = _check_rgb(rgb)
    res = (models or _default_models()).selfie().process(img)
    prob = np.asarray(res.segmentation_mask, dtype=np.float32)
    if prob.shape != img.shape[:2]:
        raise RuntimeError(f"selfie segmentation returned {prob.shape} for a {img.shape[:2]} image")
    return np.clip(prob, 0.0, 1.0)


def selfie_mask(rgb: np.ndarray, threshold: float = 0.5, *, models: _Models | None = None) -> np.ndarray:
    """Person mask (H, W) bool: selfie-segmentation probability >= ``threshold``."""
    return selfie_probability(rgb, models=models) >= float(threshold)


def landmark_labels(rgb: np.ndarray, scheme: str = NATIVE_SCHEME, *, models: _Models | None = None) -> np.ndarray:
    """Label map (H, W) uint8 of a uint8 RGB image in ``scheme`` (see the module doc).

    Detects the face mesh and the person mask and calls :func:`labels_from_landmarks`; with no
    face found, person pixels are 255 and the rest background.
    """
    img = _check_rgb(rgb)
    models = models or _default_models()
    lm = detect_face_landmarks(img, models=models)
    return labels_from_landmarks(lm, selfie_mask(img, models=models), img.shape[:2], scheme)


# ----------------------------------------------------------------------------- parser object
@dataclass
class LandmarkParser:
    """The landmark parser with the interface of :class:`labelsplat.parsers.infer.Parser`
    (``predict``, ``info``, ``model_name``, ``weights``), so ``parse_scene`` can run it.

    ``predict`` honours crop boxes by running the face mesh on the crop (small faces in large
    frames are found more reliably) and mapping the landmarks back; the selfie mask is computed
    on the full image. ``no_face`` counts images in which no face was found since creation.
    """

    info: Any
    models: _Models = field(default_factory=_Models)
    model_name: str = "mediapipe"
    weights: Path | None = None
    device: str = "cpu"
    no_face: int = 0
    n_images: int = 0

    @property
    def n_classes(self) -> int:
        return get_scheme(self.info.label_scheme).num_classes

    def detect(self, rgb: np.ndarray, box=None) -> np.ndarray | None:
        """Landmarks (478, 3) in full-image pixels, found inside ``box`` (a CropBox) if given."""
        img = _check_rgb(rgb)
        if box is None:
            return detect_face_landmarks(img, models=self.models)
        lm = detect_face_landmarks(img[box.y0 : box.y1, box.x0 : box.x1], models=self.models)
        if lm is not None:
            lm[:, 0] += box.x0
            lm[:, 1] += box.y0
        return lm

    def label(self, rgb: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        """Labels of ``rgb`` in ``info.label_scheme`` given its landmarks (or None)."""
        img = _check_rgb(rgb)
        return labels_from_landmarks(landmarks, selfie_mask(img, models=self.models), img.shape[:2],
                                     self.info.label_scheme)

    def predict(self, images: Sequence[np.ndarray], boxes=None, *, batch_size: int = 1) -> list[np.ndarray]:
        """Label maps (H, W) uint8 in ``info.label_scheme`` (``batch_size`` is ignored)."""
        if boxes is None:
            boxes = [None] * len(images)
        if len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        out = []
        for img, box in zip(images, boxes):
            lm = self.detect(img, box)
            self.n_images += 1
            self.no_face += lm is None
            out.append(self.label(img, lm))
        return out

    def close(self) -> None:
        self.models.close()


def load_landmark_parser(scheme: str | None = None, *, selfie_model: int = 0) -> LandmarkParser:
    """A :class:`LandmarkParser` writing labels in ``scheme`` (default ``celebamask19-zll``).

    Raises :class:`LabelsplatError` with the install hint when MediaPipe is not installed.
    ``selfie_model``: 0 = general (256x256), 1 = landscape (144x256).
    """
    _require_mediapipe()
    if selfie_model not in (0, 1):
        raise LabelsplatError(f"selfie model must be 0 (general) or 1 (landscape), got {selfie_model}")
    info = LANDMARK_INFO
    if scheme is not None:
        info = replace(info, label_scheme=get_scheme(scheme).name)
    return LandmarkParser(info=info, models=_Models(selfie_model))


@dataclass
class LandmarkFolderSummary:
    """What :func:`parse_folder_landmarks` did."""

    n_images: int
    outputs: list[Path]
    no_face: list[str]


def parse_folder_landmarks(parser: LandmarkParser, folder: str | Path, out: str | Path, *,
                           max_no_face_fraction: float = 0.5, progress=None) -> LandmarkFolderSummary:
    """Label every image of ``folder`` into ``out/<stem>.png`` (+ ``out/overlays/<stem>.jpg``).

    Landmarks are detected for all images first; if no face is found in more than
    ``max_no_face_fraction`` of them, a :class:`LabelsplatError` is raised before anything is
    written (the images are probably not face photos, or faces are too small / too turned for
    MediaPipe). Otherwise images without a face get labels that are 255 on person pixels and
    background elsewhere, and their names are returned in ``no_face``.
    """
    folder, out = Path(folder), Path(out)
    files = folder_images(folder, out)
    landmarks = []
    for f in files:
        landmarks.append(parser.detect(read_rgb(f)))
        if progress is not None:
            progress(1)
    no_face = [f.name for f, lm in zip(files, landmarks) if lm is None]
    if len(no_face) > max_no_face_fraction * len(files):
        raise LabelsplatError(
            f"MediaPipe found no face in {len(no_face)} of {len(files)} images (e.g. {', '.join(no_face[:3])})",
            path=folder,
            hint="the landmark parser needs visible faces, not in profile; for profiles or small "
                 "faces use BiSeNet: labelsplat parse INPUT --weights 79999_iter.pth --out DIR",
        )
    outputs = []
    for f, lm in zip(files, landmarks):
        img = read_rgb(f)
        lab = parser.label(img, lm)
        outputs.append(write_png(out / f"{f.stem}.png", lab))
        write_jpg(out / "overlays" / f"{f.stem}.jpg", overlay(img, lab, parser.info.label_scheme))
        if progress is not None:
            progress(1)
    parser.n_images += len(files)
    parser.no_face += len(no_face)
    return LandmarkFolderSummary(n_images=len(files), outputs=outputs, no_face=no_face)
