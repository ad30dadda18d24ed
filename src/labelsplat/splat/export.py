"""Exports of a fitted run that other 3DGS tools read (``labelsplat export``).

One :class:`Exporter` per format, behind one protocol (``name``, ``suffix``, ``encode``):

* ``ply`` (:class:`PlyExporter`): the standard Inria 3DGS PLY (:mod:`.ply`), optionally padded
  with zero coefficients (or cut) to another SH degree: the reference 3DGS loader asserts
  degree 3, so ``sh_degree=3`` makes any run load there. The semantic logits stay in ``sem_*``.
* ``ply-labels`` (:class:`PlyLabelsExporter`): the same file with each Gaussian's DC colour set
  to its class colour, ``f_dc = (rgb / 255 - 0.5) / C0`` (C0 = 0.28209, the degree-0 SH
  constant), and the higher bands zeroed, so any 3DGS viewer shows the labels.
* ``splat`` (:class:`SplatExporter`): the 32-byte-per-Gaussian web format of antimatter15's
  viewer: position f32x3, scale f32x3 (linear, not log), RGBA u8x4 (colour 0.5 + C0 f_dc,
  alpha = sigmoid(opacity)), rotation u8x4 (the normalised wxyz quaternion x 128 + 128),
  sorted by decreasing size x opacity as that format's converters do.

``keep_class`` keeps the Gaussians of one class. Pure functions of the arrays: the command
writes the bytes (atomic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import LabelsplatError
from ..schemes import get_scheme
from .edits import gaussian_labels
from .model import C0 as SH_C0
from .ply import gaussians_to_arrays, ply_bytes
from .run import FittedRun


def pad_sh(shN: np.ndarray, degree: int) -> np.ndarray:
    """Higher-band SH coefficients (N, M, 3) zero-padded (or cut) to ``degree``'s (N, (d+1)^2 - 1, 3)."""
    if not 0 <= int(degree) <= 4:
        raise LabelsplatError(f"--sh-degree must be in 0..4, got {degree}")
    m = (int(degree) + 1) ** 2 - 1
    out = np.zeros((shN.shape[0], m, 3), dtype=shN.dtype)
    k = min(m, shN.shape[1])
    out[:, :k] = shN[:, :k]
    return out


@dataclass
class ExportInput:
    """What every exporter reads: the run's arrays (scene units), the head's PLY columns, each
    Gaussian's class (None: RGB-only) and the scheme's palette (K, 3) uint8."""

    arrays: dict[str, np.ndarray]
    semantic_columns: list[tuple[str, np.ndarray, str]]
    labels: np.ndarray | None
    palette: np.ndarray


class Exporter(Protocol):
    name: str
    suffix: str

    def encode(self, x: ExportInput, sh_degree: int | None) -> bytes:
        """The file's bytes."""
        ...


class PlyExporter:
    name, suffix = "ply", ".ply"

    def colours(self, x: ExportInput) -> tuple[np.ndarray, np.ndarray]:
        return x.arrays["sh0"], x.arrays["shN"]

    def encode(self, x: ExportInput, sh_degree: int | None) -> bytes:
        sh0, shN = self.colours(x)
        if sh_degree is not None:
            shN = pad_sh(shN, sh_degree)
        return ply_bytes({**x.arrays, "sh0": sh0, "shN": shN}, x.semantic_columns)


class PlyLabelsExporter(PlyExporter):
    name = "ply-labels"

    def colours(self, x: ExportInput) -> tuple[np.ndarray, np.ndarray]:
        if x.labels is None:
            raise LabelsplatError("an RGB-only run has no labels to colour", hint="export --format ply")
        rgb = x.palette[x.labels].astype(np.float64) / 255.0
        return ((rgb - 0.5) / SH_C0)[:, None, :], np.zeros_like(x.arrays["shN"])


class SplatExporter:
    name, suffix = "splat", ".splat"

    def encode(self, x: ExportInput, sh_degree: int | None) -> bytes:
        a = x.arrays
        scales = np.exp(a["scales"])
        alpha = 1.0 / (1.0 + np.exp(-a["opacities"]))
        order = np.argsort(-(scales.prod(axis=1) * alpha), kind="stable")
        rgb = 0.5 + SH_C0 * a["sh0"][:, 0, :]
        rgba = np.concatenate([rgb, alpha[:, None]], axis=1)
        q = a["quats"] / np.maximum(np.linalg.norm(a["quats"], axis=1, keepdims=True), 1e-12)
        rec = np.empty(len(order), dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
        rec["pos"] = a["means"][order]
        rec["scale"] = scales[order]
        rec["rgba"] = np.clip(np.rint(rgba[order] * 255.0), 0, 255)
        rec["rot"] = np.clip(np.rint(q[order] * 128.0 + 128.0), 0, 255)
        return rec.tobytes()


EXPORTERS: dict[str, Exporter] = {e.name: e for e in (PlyExporter(), PlyLabelsExporter(), SplatExporter())}


def _subset(x: ExportInput, keep: np.ndarray) -> ExportInput:
    arrays = {k: v[keep] for k, v in x.arrays.items()}
    cols = [(name, np.asarray(v)[keep], dt) for name, v, dt in x.semantic_columns]
    return ExportInput(arrays, cols, None if x.labels is None else x.labels[keep], x.palette)


def export_bytes(run: FittedRun, fmt: str, *, keep_class: str | None = None, sh_degree: int | None = None) -> bytes:
    """The bytes of ``run`` in format ``fmt`` (:data:`EXPORTERS`), optionally one class only."""
    if fmt not in EXPORTERS:
        raise LabelsplatError(f"unknown export format {fmt!r}", hint=f"choose one of {', '.join(EXPORTERS)}")
    model = run.model
    arrays = gaussians_to_arrays(model, run.norm)
    scheme = get_scheme(run.label_scheme)
    x = ExportInput(arrays, model.head.ply_columns(arrays["sem"]), gaussian_labels(model), scheme.palette_array())
    if keep_class is not None:
        if x.labels is None:
            raise LabelsplatError("--class needs a run with labels (this one is RGB-only)")
        x = _subset(x, x.labels == scheme.index(keep_class))
        if len(x.labels) == 0:
            raise LabelsplatError(f"no Gaussian has the class {keep_class!r}", hint="choose another --class")
    return EXPORTERS[fmt].encode(x, sh_degree)


__all__ = ["EXPORTERS", "ExportInput", "Exporter", "PlyExporter", "PlyLabelsExporter", "SplatExporter",
           "export_bytes", "pad_sh"]
