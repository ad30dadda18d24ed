"""ONNX export of a BiSeNet parser (the ``[onnx]`` extra runs the result with onnxruntime).

The exported graph takes ``input`` (B, 3, H, W) float32, RGB normalised as
:mod:`labelsplat.parsers.preprocess` (resize to S, /255, mean/std), with batch, height and width
dynamic (``input_size`` S is the size the weights were trained at, and the one inference uses),
and returns ``logits`` (B, n_classes, H, W) of the main head (the auxiliary heads are
training-only). The legacy TorchScript exporter is used (``dynamo=False``), so exporting needs
no ``onnxscript``. A sidecar ``<out>.json`` records the preprocessing and the label scheme.
"""

from __future__ import annotations

import io as _io
import warnings
from pathlib import Path

import torch

from ..errors import LabelsplatError
from ..io import atomic_write_bytes, atomic_write_json
from ..schemes import get_scheme
from .infer import load_parser


def export_onnx(weights: str | Path, out: str | Path, *, input_size: int | None = None, scheme: str | None = None,
                opset: int = 17) -> dict:
    """Export ``weights`` to ``out`` (atomic) and return the sidecar metadata written next to it."""
    parser = load_parser(weights, scheme=scheme, input_size=input_size, device="cpu")
    S = parser.info.input_size

    class MainHead(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)[0]

    wrapper = MainHead(parser.model).eval()
    dummy = torch.zeros(1, 3, S, S)
    buf = _io.BytesIO()
    try:
        with warnings.catch_warnings():  # the legacy exporter's deprecation and tracer notices
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (dummy,), buf, input_names=["input"], output_names=["logits"],
                dynamic_axes={name: {0: "batch", 2: "height", 3: "width"} for name in ("input", "logits")},
                opset_version=opset, dynamo=False,
            )
    except (ImportError, torch.onnx.OnnxExporterError) as exc:
        if "not installed" not in str(exc) and not isinstance(exc, ImportError):
            raise
        raise LabelsplatError(f"ONNX export needs the onnx package ({exc})",
                              hint="pip install onnx onnxruntime (the labelsplat 'onnx' extra)") from exc
    out = Path(out)
    atomic_write_bytes(out, buf.getvalue())
    sch = get_scheme(parser.info.label_scheme)
    meta = {
        "model": parser.model_name,
        "weights": str(weights),
        "input_name": "input",
        "output_name": "logits",
        "input_size": S,
        "dynamic_axes": {"0": "batch", "2": "height", "3": "width"},
        "mean": list(parser.info.mean),
        "std": list(parser.info.std),
        "label_scheme": sch.name,
        "classes": list(sch.classes),
        "opset": opset,
        "preprocess": "RGB, PIL bilinear resize to input_size x input_size, /255, (x - mean) / std, NCHW float32",
    }
    atomic_write_json(Path(str(out) + ".json"), meta)
    return meta
