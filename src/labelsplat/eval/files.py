"""Score label maps on disk: two folders matched by file name, or a scene directory.

- PRED a folder, GT a folder: files are matched by stem (``a.png`` <-> ``a.png``); a file on one
  side only is an error listing them.
- ``scene`` given: each view's yaw (degrees, docs/design.md) comes from the frame whose name, or the
  stem of its file/label/GT-label path, equals the file stem, and the scene's head frame
  (estimated from the cameras when the scene has none; refused for 360-degree rigs). GT may
  then be omitted: the frames' ``gt_label_path`` are used.
- PRED a scene directory (holding ``transforms.json``): the predictions are its frames'
  ``label_path`` (e.g. a parser's noisy labels) and the scene also gives the yaws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabelsplatError
from ..io import list_images, read_label
from ..scene import TRANSFORMS, load_scene, yaw_pitch
from ..scene.headframe import estimate_head_frame
from ..schemes import get_scheme
from .scores import LabellingScores


@dataclass
class FolderEvaluation:
    """Result of :func:`evaluate_label_folders`."""

    scores: LabellingScores
    scheme: str
    yaw_deg: dict[str, float | None] = field(default_factory=dict)  # view name -> yaw (None: unknown)
    scene: str | None = None


def _index_folder(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in list_images(folder):
        if p.stem in out:
            raise LabelsplatError(f"two label files share the name {p.stem!r} ({out[p.stem].name}, {p.name})", path=folder)
        out[p.stem] = p
    return out


def _few(names, n: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _aliases(frame) -> list[str]:
    keys = [frame.name]
    for p in (frame.file_path, frame.label_path, frame.gt_label_path):
        if p and Path(p).stem not in keys:
            keys.append(Path(p).stem)
    return keys


def _is_scene_dir(path: Path) -> bool:
    return path.is_dir() and (path / TRANSFORMS).is_file()


def _mismatch(only_pred, only_gt, where) -> None:
    if not (only_pred or only_gt):
        return
    parts = []
    if only_pred:
        parts.append(f"predictions without ground truth: {_few(only_pred)}")
    if only_gt:
        parts.append(f"ground truth without prediction: {_few(only_gt)}")
    raise LabelsplatError("label files do not match by name; " + "; ".join(parts), path=where,
                          hint="both sides need the same file names (stems)")


def _scene_views(sc, pred: Path, gt: Path | None) -> dict[str, tuple[Path, Path, object]]:
    """PRED a scene: its frames' labels, against ``gt`` (a folder) or the frames' GT labels."""
    frames = [f for f in sc.frames if f.label_path]
    if not frames:
        raise LabelsplatError("the scene's frames have no label_path to evaluate", path=pred)
    views: dict[str, tuple[Path, Path, object]] = {}
    gts = _index_folder(gt) if gt is not None else None
    used: set[str] = set()
    missing = []
    for f in frames:
        if gts is None:
            if not f.gt_label_path:
                missing.append(f.name)
                continue
            views[f.name] = (sc.path(f.label_path), sc.path(f.gt_label_path), f)
        else:
            key = next((k for k in _aliases(f) if k in gts), None)
            if key is None:
                missing.append(f.name)
                continue
            used.add(key)
            views[f.name] = (sc.path(f.label_path), gts[key], f)
    if gts is None and missing:
        raise LabelsplatError(f"frames without gt_label_path: {_few(missing)}", path=pred,
                              hint="give the GT folder as the second argument")
    _mismatch(missing, set(gts) - used if gts is not None else set(), gt or pred)
    return views


def _folder_views(pred: Path, gt: Path | None, sc, scene_path: Path | None) -> dict[str, tuple[Path, Path, object]]:
    """PRED a folder: its files against ``gt`` (a folder) or the scene frames' GT labels, matched by
    stem; with a scene, every file must match a frame."""
    preds = _index_folder(pred)
    alias_map: dict[str, object] = {}
    if sc is not None:
        for f in sc.frames:
            for k in _aliases(f):
                alias_map.setdefault(k, f)
    if gt is not None:
        gts = _index_folder(gt)
    elif sc is not None:
        gts = {}
        for stem in preds:
            f = alias_map.get(stem)
            if f is not None and f.gt_label_path:
                gts[stem] = sc.path(f.gt_label_path)
    else:
        raise LabelsplatError("no ground truth: give the GT folder (or a scene whose frames have gt_label_path)",
                              path=pred)
    _mismatch(set(preds) - set(gts), set(gts) - set(preds), pred)
    if sc is not None:
        unknown = [stem for stem in preds if stem not in alias_map]
        if unknown:
            raise LabelsplatError(f"no scene frame matches {_few(unknown)} (by frame name or file stem)",
                                  path=scene_path)
    return {stem: (preds[stem], gts[stem], alias_map.get(stem)) for stem in preds}


def evaluate_label_folders(
    pred: str | Path,
    gt: str | Path | None = None,
    *,
    scheme: str | None = None,
    scene: str | Path | None = None,
    boundary_radius: int = 1,
) -> FolderEvaluation:
    """Accumulate the scores of the label maps in ``pred`` against ``gt`` (see the module docstring).

    ``scheme`` defaults to the scene's ``label_scheme`` (else ``celebamask19-zll``); every label is
    validated against it (ids outside -> error naming the file) and each prediction must have its
    GT's size (and, with a scene, the camera's).
    """
    pred, gt = Path(pred), None if gt is None else Path(gt)
    scene_path = None if scene is None else Path(scene)
    pred_is_scene = scene_path is None and _is_scene_dir(pred)
    if pred_is_scene:
        scene_path = pred
    sc = load_scene(scene_path) if scene_path is not None else None
    s = get_scheme(scheme if scheme is not None else (sc.label_scheme if sc is not None else "celebamask19-zll"))
    # views: name -> (pred path, gt path, frame or None)
    views = _scene_views(sc, pred, gt) if pred_is_scene else _folder_views(pred, gt, sc, scene_path)

    head = None
    if sc is not None:
        head = sc.head_frame
        if head is None:
            head = estimate_head_frame(sc.cameras, source=scene_path)

    acc = LabellingScores(s.num_classes, s.classes, boundary_radius=boundary_radius)
    yaws: dict[str, float | None] = {}
    for name in sorted(views):
        p_path, g_path, frame = views[name]
        g = read_label(g_path, s.num_classes, palette=s.palette_array())
        p = read_label(p_path, s.num_classes, shape=g.shape, palette=s.palette_array())
        yaw = None
        if frame is not None:
            cam = frame.camera
            if (cam.height, cam.width) != g.shape:
                raise LabelsplatError(
                    f"label size {g.shape[1]}x{g.shape[0]} differs from the scene camera {cam.width}x{cam.height} "
                    f"of frame {frame.name!r}", path=g_path)
            yaw = float(yaw_pitch(cam.center, head)[0])
        acc.add(p, g, yaw)
        yaws[name] = yaw
    return FolderEvaluation(scores=acc, scheme=s.name, yaw_deg=yaws, scene=None if scene_path is None else str(scene_path))
