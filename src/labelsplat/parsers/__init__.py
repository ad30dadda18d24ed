"""Face parsers: BiSeNet (face-parsing.PyTorch compatible), a MediaPipe landmark parser, a model
registry, preprocessing, inference and the left/right convention check. Heavy modules (torch,
mediapipe) are imported on first use of the names below."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BiSeNet": "bisenet", "load_bisenet": "bisenet", "bisenet_from_state_dict": "bisenet",
    "ModelInfo": "model_info", "register_model": "registry", "get_model_info": "registry",
    "create_model": "registry", "list_models": "registry",
    "preprocess": "preprocess", "CropBox": "preprocess", "face_crop_box": "preprocess",
    "Parser": "infer", "load_parser": "infer", "read_weights_metadata": "infer", "metadata_path": "infer",
    "parse_folder": "infer", "parse_scene": "infer", "ParseSummary": "infer",
    "export_onnx": "onnx_export",
    "LandmarkParser": "landmarks", "load_landmark_parser": "landmarks", "labels_from_landmarks": "landmarks",
    "detect_face_landmarks": "landmarks", "landmark_labels": "landmarks", "selfie_mask": "landmarks",
    "parse_folder_landmarks": "landmarks",
    "LRCheck": "lrcheck", "check_lr": "lrcheck", "swap_scene_lr": "lrcheck",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        # lazy: torch (BiSeNet) loads only with the names that need it
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
