"""Measure a scene's left/right label convention against its head frame (``labels check-lr``).

On near-frontal views (``|yaw| < max_yaw``, yaw as docs/design.md), for every left/right class pair
of the scene's scheme (concepts ``l_brow``/``r_brow``, ``l_eye``/``r_eye``, ``l_ear``/``r_ear``)
present in a view's labels with at least ``min_pixels`` pixels each, the centroids of the two
classes' pixels (pixel-centre convention) are compared with the image direction of the subject's
left: ``d = project(c + left * r) - project(c)`` with ``c`` the head centre, ``left = up x
forward`` and ``r`` 1 % of the camera's distance to ``c``. If the ``l_*`` class lies towards
the subject's left (``(centroid_l - centroid_r) . d > 0``) the pair votes ``subject``, else
``image`` (in a frontal view the image's left is the subject's right). A pair whose centroids
are closer than ``min_separation`` pixels along ``d`` abstains. A view's verdict is the
majority of its pair votes; the scene's is the majority of all votes, with its agreement
fraction (votes for the verdict / all votes). No votes -> ``unknown``.

The class names are read at face value (the scheme's ``l_*`` concepts); the result says what
that "left" means in these labels. :func:`swap_scene_lr` rewrites a scene's label files with
the left/right classes exchanged (used by ``parse --lr-convention auto``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabelsplatError
from ..io import atomic_write_json, read_label, write_png
from ..scene import load_scene, yaw_pitch
from ..schemes import get_scheme

PAIR_CONCEPTS = (("l_brow", "r_brow"), ("l_eye", "r_eye"), ("l_ear", "r_ear"))


@dataclass
class PairVote:
    """One l_/r_ pair in one view: centroids (x, y) in pixels, signed offset along the image
    direction of the subject's left (pixels), and the vote (``subject``|``image``|``None``)."""

    pair: str
    left_centroid: list[float]
    right_centroid: list[float]
    offset_px: float
    vote: str | None


@dataclass
class ViewResult:
    frame: str
    yaw: float
    pitch: float
    votes: list[PairVote] = field(default_factory=list)
    verdict: str = "unknown"


@dataclass
class LRCheck:
    """Result of :func:`check_lr`; ``to_dict()`` is what ``check-lr --json`` writes."""

    scene: str
    label_scheme: str
    scheme_lr_convention: str
    labels: str
    max_yaw: float
    convention: str
    agreement: float | None
    n_votes: int
    n_views_checked: int
    n_views_near_frontal: int
    votes: dict[str, int]
    views: list[ViewResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _left_direction(camera, head) -> np.ndarray | None:
    """Unit image direction (2,) of the subject's left at the head centre, or None."""
    dist = float(np.linalg.norm(camera.center - head.center))
    r = 0.01 * dist if dist > 0 else 1.0
    uv, z = camera.project(np.stack([head.center, head.center + head.left * r]))
    if not (np.all(z > 0) and np.all(np.isfinite(uv))):
        return None
    d = uv[1] - uv[0]
    n = float(np.linalg.norm(d))
    return d / n if n > 1e-9 else None


def view_votes(labels: np.ndarray, camera, head, scheme, *, min_pixels: int = 5,
               min_separation: float = 1.0) -> list[PairVote]:
    """Pair votes for one label map (H, W) seen by ``camera`` (see the module doc)."""
    s = get_scheme(scheme)
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be (H, W), got {lab.shape}")
    d = _left_direction(camera, head)
    if d is None:
        return []
    out = []
    for lc, rc in PAIR_CONCEPTS:
        if lc not in s.concepts or rc not in s.concepts:
            continue
        li, ri = s.concept_index(lc), s.concept_index(rc)
        yl, xl = np.nonzero(lab == li)
        yr, xr = np.nonzero(lab == ri)
        if len(xl) < min_pixels or len(xr) < min_pixels:
            continue
        cl = np.array([xl.mean() + 0.5, yl.mean() + 0.5])
        cr = np.array([xr.mean() + 0.5, yr.mean() + 0.5])
        off = float((cl - cr) @ d)
        vote = None if abs(off) < min_separation else ("subject" if off > 0 else "image")
        out.append(PairVote(lc[2:], [round(float(v), 3) for v in cl], [round(float(v), 3) for v in cr],
                            round(off, 3), vote))
    return out


def _majority(votes: list[str]) -> str:
    ns, ni = votes.count("subject"), votes.count("image")
    if ns == ni:
        return "unknown" if ns == 0 else "tie"
    return "subject" if ns > ni else "image"


def check_lr(scene_dir, *, labels: str = "label", max_yaw: float = 30.0, min_pixels: int = 5,
             min_separation: float = 1.0, allow_outside: bool = False) -> LRCheck:
    """Measure the left/right convention of a scene's labels (``labels``: ``label`` = each
    frame's ``label_path``, ``gt`` = ``gt_label_path``) on views with ``|yaw| < max_yaw``.

    Needs the scene's ``head_frame``. Frames without that label file are skipped.
    ``allow_outside``: accept file paths leaving the scene folder (see :func:`load_scene`).
    """
    if labels not in ("label", "gt"):
        raise LabelsplatError(f"labels must be 'label' or 'gt', got {labels!r}")
    if not 0 < max_yaw <= 90:
        raise LabelsplatError(f"--max-yaw must be in (0, 90], got {max_yaw}")
    scene = load_scene(scene_dir, allow_outside=allow_outside)
    if scene.head_frame is None:
        raise LabelsplatError("the scene has no head_frame: left/right cannot be measured", path=scene.root,
                              hint="add one (scene import --head-frame JSON) and run again")
    s = get_scheme(scene.label_scheme)
    head = scene.head_frame
    views: list[ViewResult] = []
    near = 0
    have_labels = 0
    for fr in scene.frames:
        rel = fr.label_path if labels == "label" else fr.gt_label_path
        if rel is None:
            continue
        have_labels += 1
        yaw, pitch = yaw_pitch(fr.camera.center, head)
        if abs(yaw) >= max_yaw:
            continue
        near += 1
        lab = read_label(scene.path(rel), s.num_classes, shape=(fr.camera.height, fr.camera.width),
                         palette=s.palette_array())
        v = ViewResult(fr.name, round(float(yaw), 3), round(float(pitch), 3),
                       view_votes(lab, fr.camera, head, s, min_pixels=min_pixels, min_separation=min_separation))
        v.verdict = _majority([pv.vote for pv in v.votes if pv.vote])
        views.append(v)
    if have_labels == 0:
        key = "label_path" if labels == "label" else "gt_label_path"
        raise LabelsplatError(f"no frame has a {key}", path=scene.root,
                              hint="label the scene first (labelsplat parse SCENE ...)" if labels == "label" else None)
    all_votes = [pv.vote for v in views for pv in v.votes if pv.vote]
    conv = _majority(all_votes)
    counts = {"subject": all_votes.count("subject"), "image": all_votes.count("image")}
    agreement = (max(counts.values()) / len(all_votes)) if all_votes else None
    return LRCheck(scene=str(scene.root), label_scheme=s.name, scheme_lr_convention=s.lr_convention, labels=labels,
                   max_yaw=float(max_yaw), convention=conv, agreement=None if agreement is None else round(agreement, 4),
                   n_votes=len(all_votes), n_views_checked=sum(1 for v in views if v.votes), n_views_near_frontal=near,
                   votes=counts, views=views)


def swap_scene_lr(scene_dir, *, labels: str = "label", allow_outside: bool = False) -> int:
    """Exchange the left/right partner classes in every label file of a scene (in place, each
    file written atomically; pixels are not mirrored). Returns the number of files rewritten."""
    scene = load_scene(scene_dir, allow_outside=allow_outside)
    s = get_scheme(scene.label_scheme)
    lut = s.flip_permutation()
    n = 0
    for fr in scene.frames:
        rel = fr.label_path if labels == "label" else fr.gt_label_path
        if rel is None:
            continue
        p = scene.path(rel)
        write_png(p, lut[read_label(p, s.num_classes)])
        n += 1
    return n


def check_lr_json(result: LRCheck, out: str | Path) -> Path:
    """Write ``result`` atomically as JSON (with ``schema_version``)."""
    out = Path(out)
    atomic_write_json(out, result.to_dict())
    return out
