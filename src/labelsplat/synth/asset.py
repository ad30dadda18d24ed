"""The packaged ICT-FaceKit light model (MIT; see ``labelsplat/assets/ict_facekit``).

Units are centimetres, +x = subject's left, +y = up, +z = out of the face: this is the head frame
of docs/design.md, so synthetic heads are built directly in it (world = head frame).
The asset is read from the package only (never from a shared folder) and cached per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..errors import LabelsplatError

ASSET_FILE = "ict_facekit_light.npz"


@dataclass(frozen=True)
class FaceKit:
    """The morphable model arrays (read-only views; shapes as in the asset README)."""

    neutral: np.ndarray          # (N, 3) float64, cm
    faces: np.ndarray            # (F, 3) int64
    uv: np.ndarray               # (T, 2) float64
    face_uv: np.ndarray          # (F, 3) int64
    face_material: np.ndarray    # (F,) int64
    material_names: tuple[str, ...]
    identity_modes: np.ndarray   # (I, N, 3) float32
    expression_modes: np.ndarray  # (E, N, 3) float32
    expression_names: tuple[str, ...]
    landmarks68: np.ndarray      # (68,) int64 vertex ids
    geometry: dict               # name -> (first, last) inclusive vertex range

    @property
    def num_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def num_identity_modes(self) -> int:
        return int(self.identity_modes.shape[0])

    def material(self, name: str) -> int:
        return self.material_names.index(name)

    def vertex_range(self, name: str) -> np.ndarray:
        """Boolean (N,) mask of a geometry range (inclusive)."""
        lo, hi = self.geometry[name]
        m = np.zeros(self.num_vertices, dtype=bool)
        m[lo:hi + 1] = True
        return m

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise LabelsplatError(f"unknown ICT-FaceKit expression '{name}'") from None


@functools.lru_cache(maxsize=1)
def load_facekit() -> FaceKit:
    """Load the packaged model once per process."""
    try:
        ref = resources.files("labelsplat").joinpath("assets", "ict_facekit", ASSET_FILE)
        with resources.as_file(ref) as path:
            if not path.exists():
                raise FileNotFoundError(path)
            with np.load(path, allow_pickle=False) as d:
                arrays = {k: d[k] for k in d.files}
    except (OSError, ValueError) as exc:
        raise LabelsplatError(
            f"cannot read the packaged ICT-FaceKit asset ({exc})",
            hint="reinstall labelsplat (the asset ships in labelsplat/assets/ict_facekit)",
        ) from exc
    ro = {}
    for k, v in arrays.items():
        ro[k] = v
    kit = FaceKit(
        neutral=ro["neutral"].astype(np.float64),
        faces=ro["faces"].astype(np.int64),
        uv=ro["uv"].astype(np.float64),
        face_uv=ro["face_uv"].astype(np.int64),
        face_material=ro["face_material"].astype(np.int64),
        material_names=tuple(str(s) for s in ro["material_names"]),
        identity_modes=ro["identity_modes"].astype(np.float32),
        expression_modes=ro["expression_modes"].astype(np.float32),
        expression_names=tuple(str(s) for s in ro["expression_names"]),
        landmarks68=ro["landmarks68"].astype(np.int64),
        geometry={str(n): (int(r[0]), int(r[1])) for n, r in zip(ro["geometry_names"], ro["geometry_ranges"])},
    )
    for arr in (kit.neutral, kit.faces, kit.uv, kit.face_uv, kit.face_material, kit.identity_modes,
                kit.expression_modes, kit.landmarks68):
        arr.flags.writeable = False
    return kit
