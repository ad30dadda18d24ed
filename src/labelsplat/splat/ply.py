"""Standard 3DGS PLY (Inria convention) with per-Gaussian semantics, in scene units.

Vertex properties, all float32 unless noted: ``x, y, z``; ``nx, ny, nz`` (zeros);
``f_dc_0..2`` (DC SH, colour = 0.5 + C0 * f_dc); ``f_rest_*`` channel-major (all of R's
higher-band coefficients, then G's, then B's); ``opacity`` (logit); ``scale_0..2`` (log
standard deviations); ``rot_0..3`` (quaternion wxyz, normalised); then ``label`` (uint8,
argmax of the logits; absent when K = 0), ``sem_0..K-1`` (logits) and ``n_views_seen``
(int32, -1 when not measured). A palette model (:class:`~.heads.PaletteHead`) writes ``label`` =
the nearest palette colour's class and ``seg_r, seg_g, seg_b`` (its fitted palette colour, RGB in
[0, 1] units, unclamped) instead of ``sem_*`` (the head's ``ply_columns``). Positions and scales
are mapped from the normalised fit frame back to scene units with the run's
:class:`~.normalize.Normalization`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ..errors import LabelsplatError
from ..io import atomic_write_bytes
from .normalize import Normalization


def gaussians_to_arrays(model, norm: Normalization) -> dict[str, np.ndarray]:
    """Model parameters as numpy arrays in scene units (the PLY's content)."""
    p = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in model.params.items()}
    q = p["quats"] / np.maximum(np.linalg.norm(p["quats"], axis=1, keepdims=True), 1e-12)
    nvs = model.n_views_seen
    return {
        "means": norm.to_scene(p["means"]),
        "scales": p["scales"] + np.log(norm.scale),
        "quats": q,
        "opacities": p["opacities"],
        "sh0": p["sh0"],
        "shN": p["shN"],
        "sem": p["sem"],
        "n_views_seen": (np.full(len(q), -1, np.int32) if nvs is None
                         else nvs.detach().cpu().numpy().astype(np.int32)),
    }


def save_ply(path: str | Path, model, norm: Normalization) -> Path:
    """Write ``model`` to ``path`` (atomic) in scene units."""
    a = gaussians_to_arrays(model, norm)
    return atomic_write_bytes(path, ply_bytes(a, model.head.ply_columns(a["sem"])))


def ply_bytes(a: dict[str, np.ndarray], semantic_columns: list[tuple[str, np.ndarray, str]]) -> bytes:
    """A binary Inria-convention PLY of arrays as :func:`gaussians_to_arrays` returns them, with
    ``semantic_columns`` (name, values, numpy type) after the rotation and ``n_views_seen`` last."""
    from plyfile import PlyData, PlyElement  # plyfile: only needed when a PLY is written

    n = len(a["means"])
    rest = a["shN"].transpose(0, 2, 1).reshape(n, -1)  # (N, 3*M) channel-major
    cols: list[tuple[str, np.ndarray, str]] = []
    for i, k in enumerate("xyz"):
        cols.append((k, a["means"][:, i], "f4"))
    for k in ("nx", "ny", "nz"):
        cols.append((k, np.zeros(n), "f4"))
    for i in range(3):
        cols.append((f"f_dc_{i}", a["sh0"][:, 0, i], "f4"))
    for i in range(rest.shape[1]):
        cols.append((f"f_rest_{i}", rest[:, i], "f4"))
    cols.append(("opacity", a["opacities"], "f4"))
    for i in range(3):
        cols.append((f"scale_{i}", a["scales"][:, i], "f4"))
    for i in range(4):
        cols.append((f"rot_{i}", a["quats"][:, i], "f4"))
    cols += semantic_columns
    cols.append(("n_views_seen", a["n_views_seen"], "i4"))
    data = np.empty(n, dtype=[(name, dt) for name, _, dt in cols])
    for name, arr, _ in cols:
        data[name] = arr
    buf = io.BytesIO()
    PlyData([PlyElement.describe(data, "vertex")], text=False).write(buf)
    return buf.getvalue()


def load_ply(path: str | Path) -> dict[str, np.ndarray | int]:
    """Read a 3DGS PLY (ours or any Inria-convention file) back into arrays (scene units).

    Returns means (N,3), scales (N,3) log, quats (N,4) wxyz, opacities (N,) logit, sh0 (N,1,3),
    shN (N,M,3), sem (N,K) (K = 0 when absent), seg_rgb (N,3) palette colours or None (palette
    runs), label (N,) or None, n_views_seen (N,) (-1 unknown), sh_degree.
    """
    from plyfile import PlyData  # plyfile: only needed when a PLY is read

    path = Path(path)
    if not path.is_file():
        raise LabelsplatError("PLY file not found", path=path)
    try:
        v = PlyData.read(str(path))["vertex"]
    except Exception as exc:
        raise LabelsplatError(f"cannot read the PLY ({exc})", path=path) from exc
    names = v.data.dtype.names or ()
    need = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [k for k in need if k not in names]
    if missing:
        raise LabelsplatError(f"not a 3DGS PLY: missing vertex properties {missing}", path=path)

    def col(k):
        return np.asarray(v[k], dtype=np.float64)

    n = len(v.data)
    rest_names = sorted((k for k in names if k.startswith("f_rest_")), key=lambda s: int(s.split("_")[-1]))
    M3 = len(rest_names)
    if M3 % 3:
        raise LabelsplatError(f"{M3} f_rest properties is not a multiple of 3", path=path)
    M = M3 // 3
    deg = int(round(math.sqrt(M + 1))) - 1
    if (deg + 1) ** 2 - 1 != M:
        raise LabelsplatError(f"{M} higher SH coefficients per channel do not form a full degree", path=path)
    rest = np.stack([col(k) for k in rest_names], axis=1) if M3 else np.zeros((n, 0))
    sem_names = sorted((k for k in names if k.startswith("sem_")), key=lambda s: int(s.split("_")[-1]))
    return {
        "means": np.stack([col(k) for k in "xyz"], axis=1),
        "scales": np.stack([col(f"scale_{i}") for i in range(3)], axis=1),
        "quats": np.stack([col(f"rot_{i}") for i in range(4)], axis=1),
        "opacities": col("opacity"),
        "sh0": np.stack([col(f"f_dc_{i}") for i in range(3)], axis=1)[:, None, :],
        "shN": rest.reshape(n, 3, M).transpose(0, 2, 1),
        "sem": np.stack([col(k) for k in sem_names], axis=1) if sem_names else np.zeros((n, 0)),
        "seg_rgb": (np.stack([col(f"seg_{c}") for c in "rgb"], axis=1)
                    if all(f"seg_{c}" in names for c in "rgb") else None),
        "label": np.asarray(v["label"], dtype=np.int64) if "label" in names else None,
        "n_views_seen": (np.asarray(v["n_views_seen"], dtype=np.int64) if "n_views_seen" in names
                         else np.full(n, -1, dtype=np.int64)),
        "sh_degree": deg,
    }



