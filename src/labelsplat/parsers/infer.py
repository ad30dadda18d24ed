"""Running a parser on images: weights + metadata -> label maps at the input resolution.

:func:`load_parser` loads BiSeNet weights (plain state dict, ``weights_only=True``) and
resolves the preprocessing: explicit arguments, else the weights' sidecar metadata
``<weights>.json`` (written by ``labelsplat train``), else the registry defaults (512,
ImageNet mean/std, ``celebamask19-zll``). :meth:`Parser.predict` crops (optional box per
image), preprocesses as face-parsing.PyTorch, runs the main head, upsamples the logits
bilinearly to the crop size, takes the argmax, and pastes the crop into a full-size map whose
outside is background. Labels are uint8 class ids in the parser's scheme.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..device import resolve_device
from ..errors import LabelsplatError
from ..io import read_json, read_rgb, write_jpg, write_png
from ..scene import load_scene, save_scene
from ..schemes import convert_labels, get_scheme, lr_swap_needed, overlay
from .folders import folder_images
from .model_info import ModelInfo
from .preprocess import DEFAULT_CROP_RADIUS_CM, CropBox, face_crop_box, preprocess, resize_labels, scene_units_per_cm
from .registry import get_model_info, scheme_num_classes

MAX_LOGIT_UPSAMPLE_PIXELS = 16_000_000


def metadata_path(weights: str | Path) -> Path:
    """The sidecar metadata file of a weights file: ``<weights>.json``."""
    return Path(str(weights) + ".json")


def read_weights_metadata(weights: str | Path) -> dict[str, Any] | None:
    """The sidecar metadata of ``weights`` if it exists (written by ``labelsplat train``)."""
    p = metadata_path(weights)
    if not p.is_file():
        # a symlinked weights file (experiment folders link their baseline) keeps its target's
        # metadata: without it the registry defaults (512 px) would silently replace the trained size
        target = metadata_path(Path(weights).resolve())
        if Path(weights).is_symlink() and target.is_file():
            p = target
        else:
            return None
    data = read_json(p)
    if not isinstance(data, dict):
        raise LabelsplatError("weights metadata must be a JSON object", path=p)
    return data


@dataclass
class Parser:
    """A loaded parser: the network (eval mode, on ``device``) and its resolved ``info``."""

    model: Any
    info: ModelInfo
    device: Any
    weights: Path | None = None
    model_name: str = "bisenet"

    @property
    def n_classes(self) -> int:
        return int(self.model.n_classes)

    def background_index(self) -> int:
        try:
            return int(get_scheme(self.info.label_scheme).index("background"))
        except Exception:
            return 0

    def predict(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[CropBox | None] | None = None,
        *,
        batch_size: int = 4,
    ) -> list[np.ndarray]:
        """Label maps (H, W) uint8 for uint8 RGB images (H, W, 3), in the parser's scheme.

        ``boxes[i]`` (or ``None``) is the crop of image ``i`` that is parsed; pixels outside
        it get the background class.
        """
        import torch  # lazy: torch (~1 s); landmark-parser runs use this module without it
        import torch.nn.functional as F

        if boxes is None:
            boxes = [None] * len(images)
        if len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        if batch_size < 1:
            raise LabelsplatError(f"--batch-size must be >= 1, got {batch_size}")
        S = self.info.input_size
        bg = self.background_index()
        results: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = list(range(start, min(start + batch_size, len(images))))
            crops, full_boxes = [], []
            for i in chunk:
                img = np.asarray(images[i])
                if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                    raise ValueError(f"image {i}: expected uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
                H, W = img.shape[:2]
                box = boxes[i] or CropBox(0, 0, W, H)
                if not (0 <= box.x0 < box.x1 <= W and 0 <= box.y0 < box.y1 <= H):
                    raise ValueError(f"image {i}: crop box {box.to_list()} outside the {W}x{H} image")
                full_boxes.append(box)
                crops.append(preprocess(img[box.y0 : box.y1, box.x0 : box.x1], S, self.info.mean, self.info.std))
            x = torch.stack(crops).to(self.device)
            with torch.inference_mode():
                logits = self.model(x)[0].float()
            for k, i in enumerate(chunk):
                H, W = np.asarray(images[i]).shape[:2]
                box = full_boxes[k]
                lg = logits[k : k + 1]
                if box.width * box.height <= MAX_LOGIT_UPSAMPLE_PIXELS:
                    lg = F.interpolate(lg, (box.height, box.width), mode="bilinear", align_corners=False)
                    lab = lg[0].argmax(0).to(torch.uint8).cpu().numpy()
                else:  # very large outputs: argmax at input size, nearest upsampling
                    lab = resize_labels(lg[0].argmax(0).to(torch.uint8).cpu().numpy(), (box.width, box.height))
                out = np.full((H, W), bg, dtype=np.uint8)
                out[box.y0 : box.y1, box.x0 : box.x1] = lab
                results.append(out)
        return results


def load_parser(
    weights: str | Path,
    *,
    scheme: str | None = None,
    input_size: int | None = None,
    device: str = "auto",
    model_name: str = "bisenet",
) -> Parser:
    """Load weights and resolve scheme / input size / normalisation (see module doc)."""
    from .bisenet import load_bisenet  # lazy: torch (~1 s); landmark-parser runs use this module without it

    weights = Path(weights)
    info = get_model_info(model_name)
    meta = read_weights_metadata(weights) or {}
    updates: dict[str, Any] = {}
    for key in ("input_size", "label_scheme"):
        if key in meta:
            updates[key] = meta[key]
    for key in ("mean", "std"):
        if key in meta:
            updates[key] = tuple(float(v) for v in meta[key])
    if scheme is not None:
        updates["label_scheme"] = scheme
    if input_size is not None:
        updates["input_size"] = int(input_size)
    info = replace(info, **updates)
    if not isinstance(info.input_size, int) or info.input_size < 32 or info.input_size % 32:
        raise LabelsplatError(f"input size must be a multiple of 32 (>= 32), got {info.input_size}")
    n_classes = scheme_num_classes(info.label_scheme)
    dev = resolve_device(device)
    model = load_bisenet(weights, n_classes=n_classes, device=dev)
    return Parser(model=model, info=info, device=dev, weights=weights, model_name=model_name)


# ----------------------------------------------------------------------------- folders and scenes
@dataclass
class ParseSummary:
    """What a ``parse`` run did (for the CLI's report and tests)."""

    n_images: int
    outputs: list[Path]
    cropped: int = 0
    converted_from: str | None = None
    converted_to: str | None = None
    lr_swapped: bool = False
    replaced_labels: int = 0


def parse_folder(parser: Parser, folder: str | Path, out: str | Path, *, batch_size: int = 4,
                 progress=None) -> ParseSummary:
    """Label every image in ``folder``: ``out/<stem>.png`` (uint8 ids, parser's scheme, input
    resolution) and ``out/overlays/<stem>.jpg``. The full image is parsed (no face crop)."""
    folder, out = Path(folder), Path(out)
    files = folder_images(folder, out)
    outputs = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        imgs = [read_rgb(f) for f in chunk]
        labs = parser.predict(imgs, batch_size=batch_size)
        for f, img, lab in zip(chunk, imgs, labs):
            outputs.append(write_png(out / f"{f.stem}.png", lab))
            write_jpg(out / "overlays" / f"{f.stem}.jpg", overlay(img, lab, parser.info.label_scheme))
        if progress is not None:
            progress(len(chunk))
    return ParseSummary(n_images=len(files), outputs=outputs)


def _label_stems(scene) -> list[str]:
    """The stem of each frame's label file ``labels/<stem>.png`` (the image's stem, or the frame name)."""
    stems = [Path(f.file_path).stem if f.file_path else f.name for f in scene.frames]
    return stems if len(set(stems)) == len(stems) else [f.name for f in scene.frames]


def check_scene_labels(scene_dir: str | Path, *, overwrite: bool = False, allow_outside: bool = False) -> int:
    """Refuse to parse into a scene whose labels would be replaced (a frame with a ``label_path``,
    or a ``labels/<stem>.png`` already there) unless ``overwrite``; returns how many would be."""
    scene = load_scene(scene_dir, allow_outside=allow_outside)
    there = [f.name for f, stem in zip(scene.frames, _label_stems(scene))
             if f.label_path is not None or (scene.root / "labels" / f"{stem}.png").exists()]
    if there and not overwrite:
        shown = ", ".join(there[:3]) + (f" (+{len(there) - 3} more)" if len(there) > 3 else "")
        raise LabelsplatError(f"the scene already has labels for {len(there)} of {len(scene.frames)} frames "
                              f"({shown}); parse would replace them", path=scene.root / "transforms.json",
                              hint="pass --overwrite to replace them, or parse a copy of the scene")
    return len(there)


def parse_scene(parser: Parser, scene_dir: str | Path, *, batch_size: int = 4, crop: bool = True,
                crop_radius: float | None = None, lr_convention: str | None = None,
                progress=None, allow_outside: bool = False, overwrite: bool = False) -> ParseSummary:
    """Label every frame of a scene: ``labels/<stem>.png`` in the scene's ``label_scheme``, and
    ``label_path`` set in ``transforms.json`` (rewritten atomically at the end).

    With ``crop`` and a ``head_frame``, each view is cropped around the projected head centre
    (:func:`labelsplat.parsers.preprocess.face_crop_box`, radius ``crop_radius`` in scene
    units, default 15 cm in the scene's units); pixels outside the crop are background.
    Labels are converted from the parser's scheme (and ``lr_convention``, default the
    scheme's) to the scene's scheme when they differ. Labels already there (a ``label_path``, or
    ``labels/<stem>.png``) are refused unless ``overwrite`` (:func:`check_scene_labels`).
    """
    check_scene_labels(scene_dir, overwrite=overwrite, allow_outside=allow_outside)
    scene = load_scene(scene_dir, allow_outside=allow_outside)
    src, dst = get_scheme(parser.info.label_scheme), get_scheme(scene.label_scheme)
    swap = lr_swap_needed(src, dst, src_lr=lr_convention)
    convert = src.name != dst.name or swap
    head = scene.head_frame
    radius = None
    if crop and head is not None:
        radius = float(crop_radius) if crop_radius is not None else DEFAULT_CROP_RADIUS_CM * scene_units_per_cm(scene)
    elif crop_radius is not None and head is None:
        raise LabelsplatError("--crop-radius needs the scene's head_frame", path=scene.root,
                              hint="add a head_frame (scene import --head-frame) or drop --crop-radius")
    stems = _label_stems(scene)
    for f in scene.frames:
        if not f.file_path:
            raise LabelsplatError(f"frame {f.name!r} has no file_path (image)", path=scene.root)
    outputs: list[Path] = []
    cropped = replaced = 0
    for start in range(0, len(scene.frames), batch_size):
        idx = list(range(start, min(start + batch_size, len(scene.frames))))
        imgs, boxes = [], []
        for i in idx:
            fr = scene.frames[i]
            img_path = scene.path(fr.file_path)
            img = read_rgb(img_path)
            if (img.shape[1], img.shape[0]) != (fr.camera.width, fr.camera.height):
                raise LabelsplatError(
                    f"image is {img.shape[1]}x{img.shape[0]} but frame {fr.name!r} says {fr.camera.width}x{fr.camera.height}",
                    path=img_path,
                )
            box = face_crop_box(fr.camera, head.center, radius) if radius is not None else None
            cropped += box is not None
            imgs.append(img)
            boxes.append(box)
        labs = parser.predict(imgs, boxes, batch_size=batch_size)
        for i, lab in zip(idx, labs):
            fr = scene.frames[i]
            if convert:
                lab = convert_labels(lab, src, dst, src_lr=lr_convention)
            rel = f"labels/{stems[i]}.png"
            replaced += fr.label_path is not None
            outputs.append(write_png(scene.root / rel, lab))
            fr.label_path = rel
        if progress is not None:
            progress(len(idx))
    scene.extra["parse"] = {
        "model": parser.model_name,
        "weights": str(parser.weights) if parser.weights else None,
        "label_scheme": src.name,
        "input_size": parser.info.input_size,
        "crop_radius": radius,
        "lr_convention": lr_convention or src.lr_convention,
    }
    save_scene(scene)
    return ParseSummary(n_images=len(scene.frames), outputs=outputs, cropped=cropped,
                        converted_from=src.name if convert else None, converted_to=dst.name if convert else None,
                        lr_swapped=swap, replaced_labels=replaced)
