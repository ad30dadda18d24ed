"""Label schemes as data, conversions between them, flips and visualisation helpers.

A :class:`LabelScheme` lists class names in index order, an RGB palette, the left/right
partner pairs and what "left" means (``lr_convention``):

- ``"subject"``: ``l_eye`` is the subject's own left eye (on the image's *right* in a frontal
  view). The project's own labels (synthetic GT, models trained here) use this.
- ``"image"``: ``l_eye`` is the eye on the image's left.
- ``"unknown"``: not documented by the source; names are taken at face value and a
  conversion between an unknown and a known convention does **not** swap (pass
  ``src_lr``/``dst_lr`` once ``labelsplat labels check-lr`` has measured it).

Label value 255 (:data:`IGNORE_INDEX`) means "ignore / unknown" in every scheme; every
function here keeps it.

Conversions go through *concepts*: each class has a canonical concept name (one of
:data:`CONCEPTS`, e.g. ``l_brow``). For third-party schemes whose class names are someone's
re-interpretation, the concept records the data's provenance (see each scheme's
``description``): facer's CelebAMask-HQ class ``rr`` holds the pixels of CelebAMask-HQ's
``l_ear`` masks, so its concept is ``l_ear``; LaPa index 2 is LaPa's own "left eyebrow"
(facer calls it ``rb``), so its concept is ``l_brow``. Side-specific concepts are read in the
scheme's ``lr_convention``. A concept the destination lacks goes through :data:`MERGES`
(documented choice) or becomes 255 when there is no honest counterpart.

Everything is vectorised with 256-entry lookup tables; arrays are uint8 class ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import LabelsplatError

IGNORE_INDEX = 255
#: Colour used for ignore (255) pixels by :func:`colorize` (no built-in palette uses it).
IGNORE_COLOR: tuple[int, int, int] = (255, 255, 255)
LR_CONVENTIONS = ("subject", "image", "unknown")

#: Canonical concepts (the union of the built-in schemes' meanings).
CONCEPTS: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
    "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
_SIDE_SWAP = {"l_brow": "r_brow", "r_brow": "l_brow", "l_eye": "r_eye", "r_eye": "l_eye",
              "l_ear": "r_ear", "r_ear": "l_ear"}

#: What a concept becomes when the destination scheme has no class for it:
#: concept -> (fallback concept or None for 255, reason). Used only when the destination lacks
#: the concept itself. These are labelsplat's choices, documented in docs/usage/labels_and_metrics.md.
MERGES: dict[str, tuple[str | None, str]] = {
    "eye_g": (None, "eyeglasses cover eye, brow and skin pixels; the class beneath is unknown -> ignore"),
    "l_ear": ("skin", "LaPa's skin includes the ears (FaRL's LaPa loader names class 1 'face_lr_rr')"),
    "r_ear": ("skin", "LaPa's skin includes the ears (FaRL's LaPa loader names class 1 'face_lr_rr')"),
    "ear_r": (None, "an earring hides ear or background; the class beneath is unknown -> ignore"),
    "neck": ("background", "LaPa labels only facial parts and hair: the neck is outside them (background)"),
    "neck_l": ("background", "a necklace lies on the neck/clothes, both background in LaPa"),
    "cloth": ("background", "clothes are outside LaPa's face classes (background)"),
    "hat": ("background", "a hat is neither skin nor hair in LaPa (background)"),
}


def _check_rgb(color: Any, where: str) -> tuple[int, int, int]:
    c = tuple(int(v) for v in color)
    if len(c) != 3 or any(v < 0 or v > 255 for v in c):
        raise LabelsplatError(f"{where}: a palette colour must be 3 integers in 0..255, got {color!r}")
    return c  # type: ignore[return-value]


@dataclass(frozen=True)
class LabelScheme:
    """A label scheme: class names in index order, palette, flip pairs, lr convention.

    ``concepts`` (optional, defaults to ``classes``) gives the canonical concept of each class
    (see the module docstring); conversions use it.
    """

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    lr_convention: str
    ignore_index: int = IGNORE_INDEX
    description: str = ""
    source: str = ""
    concepts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"label scheme {self.name!r}"
        classes = tuple(str(c) for c in self.classes)
        object.__setattr__(self, "classes", classes)
        k = len(classes)
        if k == 0 or k > 255:
            raise LabelsplatError(f"{where}: needs 1..255 classes, got {k}")
        if len(set(classes)) != k:
            raise LabelsplatError(f"{where}: duplicate class names {classes}")
        palette = tuple(_check_rgb(c, where) for c in self.palette)
        if len(palette) != k:
            raise LabelsplatError(f"{where}: {len(palette)} palette colours for {k} classes")
        if len(set(palette)) != k:
            raise LabelsplatError(f"{where}: palette colours must be distinct")
        object.__setattr__(self, "palette", palette)
        pairs = tuple((int(a), int(b)) for a, b in self.flip_pairs)
        seen: set[int] = set()
        for a, b in pairs:
            if not (0 <= a < k and 0 <= b < k) or a == b or a in seen or b in seen:
                raise LabelsplatError(f"{where}: invalid flip pair ({a}, {b}) for {k} classes")
            seen.update((a, b))
        object.__setattr__(self, "flip_pairs", pairs)
        if self.lr_convention not in LR_CONVENTIONS:
            raise LabelsplatError(f"{where}: lr_convention must be one of {LR_CONVENTIONS}, got {self.lr_convention!r}")
        if self.ignore_index != IGNORE_INDEX:
            raise LabelsplatError(f"{where}: ignore_index must be {IGNORE_INDEX} (project-wide convention)")
        concepts = tuple(str(c) for c in self.concepts) if self.concepts else classes
        if len(concepts) != k:
            raise LabelsplatError(f"{where}: {len(concepts)} concepts for {k} classes")
        if len(set(concepts)) != k:
            raise LabelsplatError(f"{where}: duplicate concepts {concepts}")
        object.__setattr__(self, "concepts", concepts)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        """Index of a class by its name, else by its concept (``lapa11.index("skin") == 1``).

        Beware with third-party sided names: ``lapa11.index("lb") == 3`` (facer's name) but
        ``lapa11.index("l_brow") == 2`` (LaPa's own "left eyebrow", which facer calls ``rb``).
        :meth:`concept_index` looks up concepts only.
        """
        if name in self.classes:
            return self.classes.index(name)
        if name in self.concepts:
            return self.concepts.index(name)
        raise LabelsplatError(f"label scheme {self.name!r} has no class {name!r}; classes: {', '.join(self.classes)}")

    def concept_index(self, concept: str) -> int:
        """Index of the class whose canonical concept (see :data:`CONCEPTS`) is ``concept``."""
        if concept in self.concepts:
            return self.concepts.index(concept)
        raise LabelsplatError(
            f"label scheme {self.name!r} has no class meaning {concept!r}; meanings: {', '.join(self.concepts)}"
        )

    def palette_array(self) -> np.ndarray:
        """(K, 3) uint8 RGB palette."""
        return np.asarray(self.palette, dtype=np.uint8).reshape(-1, 3)

    def flip_permutation(self) -> np.ndarray:
        """(256,) uint8 lookup table: identity except left/right partners swapped (255 stays 255)."""
        lut = np.arange(256, dtype=np.uint8)
        for a, b in self.flip_pairs:
            lut[a], lut[b] = b, a
        return lut

    def to_dict(self) -> dict:
        return {
            "name": self.name, "classes": list(self.classes), "concepts": list(self.concepts),
            "palette": [list(c) for c in self.palette], "flip_pairs": [list(p) for p in self.flip_pairs],
            "lr_convention": self.lr_convention, "ignore_index": self.ignore_index,
            "description": self.description, "source": self.source,
        }


def _pairs(concepts: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for left, right in (("l_brow", "r_brow"), ("l_eye", "r_eye"), ("l_ear", "r_ear")):
        if left in concepts and right in concepts:
            out.append((concepts.index(left), concepts.index(right)))
    return tuple(out)


# ----------------------------------------------------------------------------- built-ins
# face-parsing.PyTorch (zllrunning) draws with `part_colors` in OpenCV BGR order and paints
# class 0 white; here: its colours converted to RGB, background black (white marks 255).
_ZLL_BGR = [
    (255, 85, 0), (255, 170, 0), (255, 0, 85), (255, 0, 170), (0, 255, 0), (85, 255, 0),
    (170, 255, 0), (0, 255, 85), (0, 255, 170), (0, 0, 255), (85, 0, 255), (170, 0, 255),
    (0, 85, 255), (0, 170, 255), (255, 255, 0), (255, 255, 85), (255, 255, 170), (255, 0, 255),
]
_ZLL_CLASSES = CONCEPTS
_ZLL_PALETTE = ((0, 0, 0),) + tuple((r, g, b) for b, g, r in _ZLL_BGR)

# CelebAMask-HQ's own colour list (Data_preprocessing/g_color.py), index order of its masks.
_CAMHQ_CLASSES = ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow",
                  "l_ear", "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l",
                  "neck", "cloth")
_CAMHQ_PALETTE = ((0, 0, 0), (204, 0, 0), (76, 153, 0), (204, 204, 0), (51, 51, 255), (204, 0, 204),
                  (0, 255, 255), (255, 204, 204), (102, 51, 0), (255, 0, 0), (102, 204, 0),
                  (255, 255, 0), (0, 0, 153), (0, 0, 204), (255, 51, 153), (0, 204, 204), (0, 51, 0),
                  (255, 153, 51), (0, 204, 0))
_CAMHQ_COLOR = dict(zip(_CAMHQ_CLASSES, _CAMHQ_PALETTE))

# facer / FaRL `celebm` (farl/celebm/448): names as facer prints them; concepts from FaRL's
# CelebAMask-HQ loader, which stacks the part masks in the order
# neck, skin, cloth, l_ear, r_ear, l_brow, r_brow, l_eye, r_eye, nose, mouth, l_lip, u_lip, hair,
# eye_g, hat, ear_r, neck_l -> names neck, face, cloth, rr, lr, rb, lb, re, le, nose, imouth,
# llip, ulip, hair, eyeg, hat, earr, neck_l.
_FACER_CELEBM_CLASSES = ("background", "neck", "face", "cloth", "rr", "lr", "rb", "lb", "re", "le",
                         "nose", "imouth", "llip", "ulip", "hair", "eyeg", "hat", "earr", "neck_l")
_FACER_CELEBM_CONCEPTS = ("background", "neck", "skin", "cloth", "l_ear", "r_ear", "l_brow", "r_brow",
                          "l_eye", "r_eye", "nose", "mouth", "l_lip", "u_lip", "hair", "eye_g", "hat",
                          "ear_r", "neck_l")

# LaPa (JDAI-CV/lapa-dataset README): 0 background, 1 skin, 2 left eyebrow, 3 right eyebrow,
# 4 left eye, 5 right eye, 6 nose, 7 upper lip, 8 inner mouth, 9 lower lip, 10 hair.
# facer's `farl/lapa/448` names the same indices as below (LaPa's "left eyebrow" = facer's rb);
# FaRL's training loader (farl/datasets/lapa.py) names them background, face_lr_rr, lb, rb, le, re,
# nose, ul, im, ll, hair: its skin class holds the ears, and its l/r disagree with facer's.
_LAPA_CLASSES = ("background", "face", "rb", "lb", "re", "le", "nose", "ulip", "imouth", "llip", "hair")
_LAPA_CONCEPTS = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "u_lip", "mouth",
                  "l_lip", "hair")

BUILTIN_SCHEMES: tuple[LabelScheme, ...] = (
    LabelScheme(
        name="celebamask19-zll",
        classes=_ZLL_CLASSES,
        palette=_ZLL_PALETTE,
        flip_pairs=_pairs(_ZLL_CLASSES),
        lr_convention="subject",
        description=(
            "CelebAMask-HQ's 19 classes in face-parsing.PyTorch (BiSeNet) order; the project's own labels "
            "(synthetic ground truth, models trained here) use it with l_ = the subject's left."
        ),
        source="https://github.com/zllrunning/face-parsing.PyTorch (class order; palette = its BGR part_colors as RGB)",
    ),
    LabelScheme(
        name="celebamask-hq",
        classes=_CAMHQ_CLASSES,
        palette=_CAMHQ_PALETTE,
        flip_pairs=_pairs(_CAMHQ_CLASSES),
        lr_convention="unknown",
        description=(
            "Official CelebAMask-HQ mask order (background + skin, nose, eye_g, l_eye, r_eye, l_brow, r_brow, "
            "l_ear, r_ear, mouth, u_lip, l_lip, hair, hat, ear_r, neck_l, neck, cloth). Left/right meaning is "
            "not documented; FaRL/facer rename l_brow -> rb and l_ear -> rr, which suggests the image's left."
        ),
        source="https://github.com/switchablenorms/CelebAMask-HQ (Data_preprocessing: label_list, color_list)",
    ),
    LabelScheme(
        name="celebamask-hq-facer",
        classes=_FACER_CELEBM_CLASSES,
        concepts=_FACER_CELEBM_CONCEPTS,
        palette=tuple(_CAMHQ_COLOR[c] for c in _FACER_CELEBM_CONCEPTS),
        flip_pairs=_pairs(_FACER_CELEBM_CONCEPTS),
        lr_convention="unknown",
        description=(
            "facer's `farl/celebm/448` output order (CelebAMask-HQ). Class names are facer's; class 'rr' holds "
            "CelebAMask-HQ's l_ear masks, 'rb' its l_brow, 're' its l_eye (FaRL's loader), so conversions to "
            "other CelebAMask-HQ orders are lossless by provenance. facer's names suggest CelebAMask-HQ's l_ "
            "is the image's left; unverified. Palette: CelebAMask-HQ colours by class meaning."
        ),
        source="https://github.com/FacePerceiver/facer (face_parsing/farl.py label_names); FaRL CelebAMask-HQ loader",
    ),
    LabelScheme(
        name="lapa11",
        classes=_LAPA_CLASSES,
        concepts=_LAPA_CONCEPTS,
        palette=tuple(_CAMHQ_COLOR[c] for c in _LAPA_CONCEPTS),
        flip_pairs=_pairs(_LAPA_CONCEPTS),
        lr_convention="unknown",
        description=(
            "LaPa's 11 classes in FaRL/facer order (`farl/lapa/448`), class names as facer prints them; class 1 "
            "(face) includes the ears (FaRL's training code calls it 'face_lr_rr'). Index 2 is LaPa's 'left "
            "eyebrow': facer's model names it 'rb' (suggesting LaPa's left is the image's left) while FaRL's own "
            "LaPa loader names it 'lb', so the convention is 'unknown' until `labels check-lr` measures it. "
            "Palette: CelebAMask-HQ colours by class meaning."
        ),
        source=("https://github.com/JDAI-CV/lapa-dataset (label ids); https://github.com/FacePerceiver/facer (names); "
                "https://github.com/FacePerceiver/FaRL farl/datasets/lapa.py (face_lr_rr)"),
    ),
)

_REGISTRY: dict[str, LabelScheme] = {s.name: s for s in BUILTIN_SCHEMES}


def list_schemes() -> list[str]:
    """Names of the registered schemes (built-ins first, in registration order)."""
    return list(_REGISTRY)


def get_scheme(name: str | LabelScheme) -> LabelScheme:
    """The scheme called ``name`` (a :class:`LabelScheme` passes through)."""
    if isinstance(name, LabelScheme):
        return name
    try:
        return _REGISTRY[str(name)]
    except KeyError:
        raise LabelsplatError(
            f"unknown label scheme {name!r}; known schemes: {', '.join(_REGISTRY)}",
            hint="choose one of the known schemes (`labelsplat labels schemes` lists them)",
        ) from None


def register_scheme(scheme: LabelScheme, *, overwrite: bool = False) -> LabelScheme:
    """Add a scheme to the registry (refuses to replace an existing name unless ``overwrite``)."""
    if not isinstance(scheme, LabelScheme):
        raise TypeError(f"register_scheme expects a LabelScheme, got {type(scheme).__name__}")
    if scheme.name in _REGISTRY and not overwrite and _REGISTRY[scheme.name] != scheme:
        raise LabelsplatError(f"a label scheme named {scheme.name!r} is already registered")
    _REGISTRY[scheme.name] = scheme
    return scheme


# ----------------------------------------------------------------------------- conversion
def _resolve_lr(scheme: LabelScheme, override: str | None, which: str) -> str:
    lr = scheme.lr_convention if override is None else override
    if lr not in LR_CONVENTIONS:
        raise LabelsplatError(f"{which} left/right convention must be one of {LR_CONVENTIONS}, got {lr!r}")
    return lr


def lr_swap_needed(src: str | LabelScheme, dst: str | LabelScheme, *, src_lr: str | None = None,
                   dst_lr: str | None = None) -> bool:
    """True when both conventions are known and differ ("subject" vs "image")."""
    a = _resolve_lr(get_scheme(src), src_lr, "source")
    b = _resolve_lr(get_scheme(dst), dst_lr, "destination")
    return "unknown" not in (a, b) and a != b


def conversion_report(src: str | LabelScheme, dst: str | LabelScheme, *, src_lr: str | None = None,
                      dst_lr: str | None = None) -> list[dict]:
    """One row per source class: ``{"src_index", "src_class", "dst_index" (255 = ignore),
    "dst_class", "kind": "exact"|"swapped"|"merged"|"ignored", "reason"}``."""
    s, d = get_scheme(src), get_scheme(dst)
    swap = lr_swap_needed(s, d, src_lr=src_lr, dst_lr=dst_lr)
    rows = []
    for i, (cls, concept) in enumerate(zip(s.classes, s.concepts)):
        kind, reason = "exact", ""
        if swap and concept in _SIDE_SWAP:
            concept = _SIDE_SWAP[concept]
            kind, reason = "swapped", "left/right conventions differ (subject vs image): partner class"
        if concept in d.concepts:
            j = d.concepts.index(concept)
        else:
            target, why = MERGES.get(concept, (None, "no counterpart in the destination scheme -> ignore"))
            if target is not None and target in d.concepts:
                j, kind, reason = d.concepts.index(target), "merged", why
            else:
                j, kind, reason = IGNORE_INDEX, "ignored", why
        rows.append({"src_index": i, "src_class": cls, "dst_index": j,
                     "dst_class": d.classes[j] if j != IGNORE_INDEX else "ignore(255)",
                     "kind": kind, "reason": reason})
    return rows


def conversion_table(src: str | LabelScheme, dst: str | LabelScheme, *, src_lr: str | None = None,
                     dst_lr: str | None = None) -> np.ndarray:
    """(256,) uint8 lookup table mapping source ids to destination ids (255 -> 255; ids outside
    the source scheme also map to 255, but :func:`convert_labels` rejects them first)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for row in conversion_report(src, dst, src_lr=src_lr, dst_lr=dst_lr):
        lut[row["src_index"]] = row["dst_index"]
    return lut


def _check_ids(labels: np.ndarray, scheme: LabelScheme, what: str = "labels") -> None:
    if labels.size == 0:
        return
    if labels.dtype.kind not in "iub":
        raise LabelsplatError(f"{what} must be integer class ids, got dtype {labels.dtype}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or (hi >= scheme.num_classes and hi != IGNORE_INDEX) or hi > IGNORE_INDEX:
        bad = np.unique(labels[((labels >= scheme.num_classes) & (labels != IGNORE_INDEX)) | (labels < 0)])
        raise LabelsplatError(
            f"{what} hold ids {bad[:10].tolist()} outside scheme {scheme.name!r} "
            f"({scheme.num_classes} classes, 255 = ignore)",
            hint="check the source scheme (--from / --scheme)",
        )


def convert_labels(labels: np.ndarray, src: str | LabelScheme, dst: str | LabelScheme, *,
                   src_lr: str | None = None, dst_lr: str | None = None) -> np.ndarray:
    """Convert a label array of any shape from scheme ``src`` to ``dst`` by class meaning.

    255 stays 255; ids outside ``src`` raise :class:`LabelsplatError`. ``src_lr``/``dst_lr``
    override the schemes' ``lr_convention``; left/right classes are swapped only when both are
    known and differ. Returns uint8.
    """
    s, d = get_scheme(src), get_scheme(dst)
    arr = np.asarray(labels)
    _check_ids(arr, s)
    return conversion_table(s, d, src_lr=src_lr, dst_lr=dst_lr)[arr.astype(np.intp, copy=False)]


# ----------------------------------------------------------------------------- flips, colours
def flip_labels(labels, scheme: str | LabelScheme):
    """Mirror labels horizontally (last axis) and swap the left/right partner classes.

    Works on numpy arrays (H, W) or (B, H, W) (uint8 or any integer type; the type is kept)
    and on torch integer tensors. 255 stays 255. The result describes the mirrored image in the
    same scheme and convention (a mirror turns the subject's left eye into a right one).
    """
    s = get_scheme(scheme)
    lut = s.flip_permutation()
    if type(labels).__module__.startswith("torch"):
        import torch  # lazy: torch (~1 s); every command uses the schemes, few need torch

        if labels.ndim < 2:
            raise LabelsplatError(f"flip_labels expects (H, W) or (B, H, W), got shape {tuple(labels.shape)}")
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise LabelsplatError(f"flip_labels expects integer class ids, got {labels.dtype}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > IGNORE_INDEX):
            raise LabelsplatError("flip_labels: class ids must be in 0..255")
        table = torch.as_tensor(lut.astype(np.int64), device=labels.device)
        out = table[torch.flip(labels, dims=(-1,)).long()]
        return out.to(labels.dtype)
    arr = np.asarray(labels)
    if arr.ndim < 2:
        raise LabelsplatError(f"flip_labels expects (H, W) or (B, H, W), got shape {arr.shape}")
    _check_ids(arr, s)
    return lut[arr[..., ::-1].astype(np.intp)].astype(arr.dtype)


def colorize(labels: np.ndarray, scheme: str | LabelScheme, *, ignore_color=IGNORE_COLOR) -> np.ndarray:
    """(..., H, W) class ids -> (..., H, W, 3) uint8 RGB with the scheme palette; 255 -> ``ignore_color``."""
    s = get_scheme(scheme)
    arr = np.asarray(labels)
    _check_ids(arr, s)
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: s.num_classes] = s.palette_array()
    table[IGNORE_INDEX] = _check_rgb(ignore_color, "ignore colour")
    return table[arr.astype(np.intp)]


def overlay(rgb: np.ndarray, labels: np.ndarray, scheme: str | LabelScheme, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised labels over an image: ``(1-alpha)*rgb + alpha*colour``; uint8 (H, W, 3).

    Ignore pixels (255) are left as the image.
    """
    img = np.asarray(rgb)
    lab = np.asarray(labels)
    if img.ndim != 3 or img.shape[2] != 3:
        raise LabelsplatError(f"overlay expects an RGB image (H, W, 3), got shape {img.shape}")
    if lab.shape != img.shape[:2]:
        raise LabelsplatError(f"overlay: labels {lab.shape} and image {img.shape[:2]} differ in size")
    if not 0.0 <= float(alpha) <= 1.0:
        raise LabelsplatError(f"overlay: alpha must be in [0, 1], got {alpha}")
    col = colorize(lab, scheme).astype(np.float32)
    base = img.astype(np.float32)
    a = np.where(lab[..., None] == IGNORE_INDEX, 0.0, float(alpha)).astype(np.float32)
    return np.clip(np.rint(base * (1.0 - a) + col * a), 0, 255).astype(np.uint8)


def palette_to_labels(rgb: np.ndarray, scheme: str | LabelScheme, *, ignore_color=IGNORE_COLOR) -> np.ndarray:
    """(H, W, 3) colour-coded labels -> (H, W) uint8 ids by the nearest palette colour (RGB
    Euclidean). ``ignore_color`` (white by default; ``None`` to disable) maps to 255."""
    s = get_scheme(scheme)
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3:
        raise LabelsplatError(f"palette_to_labels expects (H, W, 3) colours, got shape {img.shape}")
    flat = img.reshape(-1, 3).astype(np.int64)
    keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    uniq, inverse = np.unique(keys, return_inverse=True)
    colours = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
    pal = s.palette_array().astype(np.int64)
    ids = np.arange(s.num_classes, dtype=np.int64)
    if ignore_color is not None:
        pal = np.vstack([pal, np.asarray(_check_rgb(ignore_color, "ignore colour"), dtype=np.int64)])
        ids = np.append(ids, IGNORE_INDEX)
    d2 = ((colours[:, None, :] - pal[None, :, :]) ** 2).sum(-1)
    return ids[d2.argmin(axis=1)].astype(np.uint8)[inverse.reshape(-1)].reshape(img.shape[:2])


__all__ = [
    "CONCEPTS", "IGNORE_COLOR", "IGNORE_INDEX", "LR_CONVENTIONS", "MERGES", "BUILTIN_SCHEMES", "LabelScheme",
    "get_scheme", "list_schemes", "register_scheme", "convert_labels", "conversion_table",
    "conversion_report", "lr_swap_needed", "flip_labels", "colorize", "overlay", "palette_to_labels",
]
