"""Face parsers: BiSeNet (face-parsing.PyTorch compatible), a model registry, preprocessing
and inference. Heavy modules (torch) are imported on first use of the names below."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BiSeNet": "bisenet", "load_bisenet": "bisenet", "bisenet_from_state_dict": "bisenet",
    "ModelInfo": "registry", "register_model": "registry", "get_model_info": "registry",
    "create_model": "registry", "list_models": "registry",
    "preprocess": "preprocess", "CropBox": "preprocess", "face_crop_box": "preprocess",
    "Parser": "infer", "load_parser": "infer", "read_weights_metadata": "infer", "metadata_path": "infer",
    "parse_folder": "infer", "parse_scene": "infer", "ParseSummary": "infer",
    "export_onnx": "onnx_export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
