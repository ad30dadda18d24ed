"""3D label edits: select Gaussians, give them a class; every view rendered afterwards inherits it.

An edits file (``labelsplat edit``, the viewer's "save edits")::

    {"schema_version": 1, "label_scheme": NAME (optional), "source_run": FINGERPRINT (required with ids),
     "edits": [{"select": {"class": NAME | null, "box": [[x0, y0, z0], [x1, y1, z1]] | null,
                           "ids": [i, ...] | null},
                "set_class": NAME}, ...]}

A selection is the intersection of what it gives: the Gaussians of a class (their class at that
point of the list), whose centre lies in an axis-aligned box (head frame, scene units, corners
included; the world frame when there is no head frame) and/or with given ids (indices into the
run's Gaussians, valid only for the run whose :func:`run_fingerprint` the file carries). Edits
apply in order; a selected Gaussian gets the features of a certain class
(:meth:`~.heads.SemanticHead.class_features`).

:func:`brush_select` turns brushed pixels of a view into ids: the Gaussian with the largest
blend weight at each pixel.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LabelsplatError
from ..io import read_json
from ..scene import Camera, HeadFrame
from ..schemes import LabelScheme, get_scheme
from ._torch_impl import blend_weights, project_gaussians
from .normalize import Normalization
from .render import camera_tensors

EDITS_SCHEMA_VERSION = 1


def run_fingerprint(model) -> str:
    """16 hex digits identifying a model's Gaussians (their geometry and order): ids in an edits
    file are valid for the runs with this fingerprint (a label edit keeps it)."""
    h = hashlib.sha256()
    for k in ("means", "quats", "scales", "opacities"):
        t = model.params[k].detach().cpu().contiguous().to(torch.float32)
        h.update(k.encode() + t.numpy().tobytes())
    return h.hexdigest()[:16]


def gaussian_labels(model) -> np.ndarray | None:
    """(N,) int64 class of each Gaussian (its argmax logit, or nearest palette colour), None
    for an RGB-only run."""
    sem = model.params["sem"].detach().cpu().numpy().astype(np.float64)
    for name, values, _ in model.head.ply_columns(sem):
        if name == "label":
            return np.asarray(values, dtype=np.int64)
    return None


@dataclass(frozen=True)
class Edit:
    """One edit: the selection (``class_name``, ``box`` ((x0,y0,z0),(x1,y1,z1)), ``ids``; None =
    not restricted) and the class the selected Gaussians get."""

    set_class: str
    class_name: str | None = None
    box: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    ids: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"select": {"class": self.class_name, "box": None if self.box is None else [list(c) for c in self.box],
                           "ids": None if self.ids is None else list(self.ids)},
                "set_class": self.set_class}

    def key(self) -> str:
        """A canonical text of the edit (equal edits, equal keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass
class EditFile:
    edits: list[Edit]
    source_run: str | None = None
    label_scheme: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema_version": EDITS_SCHEMA_VERSION}
        if self.label_scheme is not None:
            d["label_scheme"] = self.label_scheme
        if self.source_run is not None:
            d["source_run"] = self.source_run
        d["edits"] = [e.to_dict() for e in self.edits]
        return d


def _class(scheme: LabelScheme, name: Any, where: str, path) -> str:
    if not isinstance(name, str) or name not in scheme.classes:
        raise LabelsplatError(f"{where}: unknown class {name!r} (the run's scheme {scheme.name} has: "
                              f"{', '.join(scheme.classes)})", path=path)
    return name


def _box(value: Any, where: str, path) -> tuple:
    try:
        b = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        b = np.zeros(0)
    if b.shape != (2, 3):
        raise LabelsplatError(f"{where}: box must be [[x0, y0, z0], [x1, y1, z1]]", path=path)
    if not np.all(np.isfinite(b)):
        raise LabelsplatError(f"{where}: box has NaN or infinite corners", path=path)
    if np.any(b[0] > b[1]):
        raise LabelsplatError(f"{where}: box corners are inverted (need x0 <= x1, y0 <= y1, z0 <= z1)", path=path)
    return tuple(tuple(float(v) for v in c) for c in b)


def _ids(value: Any, n: int, where: str, path) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise LabelsplatError(f"{where}: ids must be a list of integers", path=path)
    bad = [i for i in value if not 0 <= i < n]
    if bad:
        raise LabelsplatError(f"{where}: ids {bad[:5]} are out of range (the run has {n} Gaussians)", path=path)
    return tuple(sorted(set(value)))


def _edit(item: Any, i: int, scheme: LabelScheme, n: int, path) -> Edit:
    where = f"edits[{i}]"
    if not isinstance(item, dict) or not isinstance(item.get("select"), dict) or "set_class" not in item:
        raise LabelsplatError(f'{where}: expected {{"select": {{...}}, "set_class": NAME}}', path=path)
    sel = item["select"]
    unknown = set(sel) - {"class", "box", "ids"}
    if unknown:
        raise LabelsplatError(f"{where}: unknown selection keys {sorted(unknown)} (use class, box, ids)", path=path)
    if all(sel.get(k) is None for k in ("class", "box", "ids")):
        raise LabelsplatError(f"{where}: the selection is empty (give a class, a box or ids)", path=path)
    return Edit(
        set_class=_class(scheme, item["set_class"], f"{where}.set_class", path),
        class_name=None if sel.get("class") is None else _class(scheme, sel["class"], f"{where}.select.class", path),
        box=None if sel.get("box") is None else _box(sel["box"], f"{where}.select.box", path),
        ids=None if sel.get("ids") is None else _ids(sel["ids"], n, f"{where}.select.ids", path),
    )


def parse_edits(doc: Any, *, scheme: str | LabelScheme, num_gaussians: int, fingerprint: str,
                path: str | Path | None = None) -> EditFile:
    """Validate an edits document against a run (its scheme, Gaussian count and fingerprint);
    :class:`LabelsplatError` naming ``path`` and the problem."""
    scheme = get_scheme(scheme)
    if not isinstance(doc, dict) or not isinstance(doc.get("edits"), list):
        raise LabelsplatError('not an edits file: expected {"schema_version": 1, "edits": [...]}', path=path)
    if doc.get("schema_version") != EDITS_SCHEMA_VERSION:
        raise LabelsplatError(f"edits schema_version {doc.get('schema_version')!r} is not supported "
                              f"(expected {EDITS_SCHEMA_VERSION})", path=path)
    if doc.get("label_scheme") not in (None, scheme.name):
        raise LabelsplatError(f"the edits are for label scheme {doc['label_scheme']!r}, the run uses {scheme.name!r}",
                              path=path, hint="apply them to a run of their scheme")
    edits = [_edit(item, i, scheme, num_gaussians, path) for i, item in enumerate(doc["edits"])]
    src = doc.get("source_run")
    if any(e.ids is not None for e in edits):
        if src is None:
            raise LabelsplatError("the edits select ids but do not name their source_run", path=path,
                                  hint="ids are valid only for the run whose fingerprint they carry")
        if src != fingerprint:
            raise LabelsplatError(f"the edits' ids are from another run (source_run {src}, this run {fingerprint})",
                                  path=path, hint="select by class or box, or save the edits again from this run")
    return EditFile(edits, src, scheme.name)


def read_edits(path: str | Path, **kwargs) -> EditFile:
    """:func:`parse_edits` of a JSON file."""
    return parse_edits(read_json(path), path=path, **kwargs)


def select(edit: Edit, labels: np.ndarray, points: np.ndarray, scheme: LabelScheme) -> np.ndarray:
    """(N,) bool: the Gaussians ``edit`` selects, given their current ``labels`` and centres
    ``points`` in the box's frame."""
    keep = np.ones(len(labels), dtype=bool)
    if edit.class_name is not None:
        keep &= labels == scheme.index(edit.class_name)
    if edit.box is not None:
        lo, hi = np.asarray(edit.box[0]), np.asarray(edit.box[1])
        keep &= np.all((points >= lo) & (points <= hi), axis=1)
    if edit.ids is not None:
        mask = np.zeros(len(labels), dtype=bool)
        mask[list(edit.ids)] = True
        keep &= mask
    return keep


def box_points(model, norm: Normalization, head: HeadFrame | None) -> np.ndarray:
    """Gaussian centres in the frame boxes are given in: the head frame (scene units), or the
    world frame without one."""
    scene = norm.to_scene(model.params["means"].detach().cpu().double().numpy())
    return scene if head is None else head.to_head(scene)


@torch.no_grad()
def apply_edits(model, edits: list[Edit], *, scheme: str | LabelScheme, norm: Normalization,
                head: HeadFrame | None, scale: float) -> list[int]:
    """Apply ``edits`` in order to ``model``'s semantic features (in place); returns how many
    Gaussians each edit selected."""
    scheme = get_scheme(scheme)
    labels = gaussian_labels(model)
    if labels is None:
        raise LabelsplatError("an RGB-only run has no labels to edit")
    points = box_points(model, norm, head)
    sem = model.params["sem"]
    counts = []
    for e in edits:
        keep = select(e, labels, points, scheme)
        k = scheme.index(e.set_class)
        idx = torch.as_tensor(np.nonzero(keep)[0], device=sem.device)
        sem[idx] = model.head.class_features(k, scale).to(sem.device, sem.dtype)
        labels[keep] = k
        counts.append(int(keep.sum()))
    return counts


@torch.no_grad()
def brush_select(model, camera: Camera, mask: np.ndarray, *, chunk: int = 256) -> np.ndarray:
    """Sorted ids of the Gaussians that dominate the brushed pixels (``mask`` (H, W) bool) of
    ``camera`` (the model's frame): at each pixel, the one with the largest blend weight."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (camera.height, camera.width):
        raise LabelsplatError(f"brush mask {mask.shape} differs from the view {camera.height}x{camera.width}")
    act = model.activated()
    viewmats, Ks, _ = camera_tensors([camera], "cpu")
    p = project_gaussians(act["means"].cpu().float(), act["quats"].cpu().float(), act["scales"].cpu().float(),
                          act["opacities"].cpu().float(), viewmats, Ks, camera.width, camera.height,
                          antialiased=model.rasterize_mode == "antialiased")
    idx = torch.nonzero(p.radii[0].amax(dim=-1) > 0).reshape(-1)
    idx = idx[torch.argsort(p.depths[0, idx], stable=True)]
    m, q, o = p.means2d[0, idx], p.conics[0, idx], p.camera_opacities(act["opacities"].cpu().float())[0, idx]
    ys, xs = np.nonzero(mask)
    pix = torch.tensor(np.stack([xs, ys], axis=1) + 0.5, dtype=torch.float32)
    chosen = []
    for s in range(0, len(pix), chunk):
        best = blend_weights(pix[s:s + chunk], m, q, o).max(dim=1)
        chosen.append(idx[best.indices[best.values > 0]])
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.unique(torch.cat(chosen).numpy()).astype(np.int64)


@dataclass
class StoredEdits:
    """The edits a run carries (``run.json`` / the checkpoint's ``meta["label_edits"]``), with
    the head frame their boxes were given in: re-applied after any later label assignment."""

    edits: list[Edit]
    head_frame: HeadFrame | None
    source_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"edits": [e.to_dict() for e in self.edits], "source_run": self.source_run,
                "head_frame": None if self.head_frame is None else self.head_frame.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "StoredEdits | None":
        if not d:
            return None
        edits = []
        for item in d.get("edits", []):
            sel = item["select"]
            box = sel.get("box")
            edits.append(Edit(item["set_class"], sel.get("class"),
                              None if box is None else tuple(tuple(float(v) for v in c) for c in box),
                              None if sel.get("ids") is None else tuple(int(i) for i in sel["ids"])))
        hf = d.get("head_frame")
        return cls(edits, None if hf is None else HeadFrame.from_dict(hf), d.get("source_run"))

    def new_edits(self, edits: list[Edit]) -> list[Edit]:
        """The edits of ``edits`` that are not stored yet (each stored edit matches one equal
        edit): applying a file twice changes nothing more."""
        left: dict[str, int] = {}
        for e in self.edits:
            left[e.key()] = left.get(e.key(), 0) + 1
        out = []
        for e in edits:
            if left.get(e.key(), 0) > 0:
                left[e.key()] -= 1
            else:
                out.append(e)
        return out


__all__ = ["EDITS_SCHEMA_VERSION", "Edit", "EditFile", "apply_edits", "box_points", "brush_select",
           "gaussian_labels", "parse_edits", "read_edits", "run_fingerprint", "select", "StoredEdits"]
