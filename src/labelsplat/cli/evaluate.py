"""`labelsplat evaluate PRED GT [--scene S] --scheme X --out metrics.json`: thin command over :mod:`labelsplat.eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import device_option


def _index_folder(folder: Path) -> dict:
    """stem -> path of the label images directly in ``folder``; duplicate stems are an error."""
    from ..errors import LabelsplatError
    from ..io import list_images

    out: dict[str, Path] = {}
    for p in list_images(folder):
        if p.stem in out:
            raise LabelsplatError(f"two label files share the name {p.stem!r} ({out[p.stem].name}, {p.name})", path=folder)
        out[p.stem] = p
    return out


def _few(names, n: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _scene_views(scene) -> dict:
    """stem -> frame, by the frame name and the stems of its file/label/gt-label paths."""
    keys: dict = {}
    for f in scene.frames:
        for key in {f.name, *(Path(p).stem for p in (f.file_path, f.label_path, f.gt_label_path) if p)}:
            keys.setdefault(key, f)
    return keys


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def evaluate_folders(pred_dir: Path, gt_dir: Optional[Path], *, scheme: str, scene_dir: Optional[Path] = None,
                     boundary_radius: int = 1):
    """Score the label maps in ``pred_dir`` against ``gt_dir`` (or the scene's GT labels).

    Returns (LabellingScores, info dict with per-view yaw and the scheme). Files are matched by
    stem; every prediction needs a GT and vice versa.
    """
    from ..errors import LabelsplatError
    from ..eval import LabellingScores
    from ..io import read_label
    from ..scene import load_scene, yaw_pitch
    from ..schemes import get_scheme

    s = get_scheme(scheme)
    preds = _index_folder(pred_dir)
    scene = frames = head = None
    if scene_dir is not None:
        scene = load_scene(scene_dir)
        frames = _scene_views(scene)
        head = scene.head_frame
        if head is None:
            from ..scene.headframe import estimate_head_frame

            head = estimate_head_frame(scene.cameras, source=scene_dir)
    if gt_dir is not None:
        gts = _index_folder(gt_dir)
    elif scene is not None:
        gts = {}
        for stem in preds:
            f = frames.get(stem)
            if f is not None and f.gt_label_path:
                gts[stem] = scene.path(f.gt_label_path)
        if not gts:
            raise LabelsplatError("the scene's frames have no gt_label_path matching the predictions", path=scene_dir,
                                  hint="give the GT folder as the second argument")
    else:
        raise LabelsplatError("no ground truth: give the GT folder (or --scene with gt_label_path frames)")
    only_pred, only_gt = set(preds) - set(gts), set(gts) - set(preds)
    if only_pred or only_gt:
        parts = []
        if only_pred:
            parts.append(f"predictions without ground truth: {_few(only_pred)}")
        if only_gt:
            parts.append(f"ground truth without prediction: {_few(only_gt)}")
        raise LabelsplatError("label files do not match by name; " + "; ".join(parts), path=pred_dir,
                              hint="both folders need the same file names (stems)")
    if frames is not None:
        missing = [stem for stem in preds if stem not in frames]
        if missing:
            raise LabelsplatError(f"no scene frame matches {_few(missing)} (by frame name or file stem)", path=scene_dir)

    acc = LabellingScores(s.num_classes, s.classes, boundary_radius=boundary_radius)
    yaws: dict[str, float | None] = {}
    for stem in sorted(preds):
        gt = read_label(gts[stem], s.num_classes)
        pred = read_label(preds[stem], s.num_classes, shape=gt.shape)
        yaw = None
        if frames is not None:
            f = frames[stem]
            if (f.camera.height, f.camera.width) != gt.shape:
                raise LabelsplatError(
                    f"label size {gt.shape[1]}x{gt.shape[0]} differs from the scene camera "
                    f"{f.camera.width}x{f.camera.height} of frame {f.name!r}", path=gts[stem])
            yaw = yaw_pitch(f.camera.center, head)[0]
        acc.add(pred, gt, yaw)
        yaws[stem] = yaw
    return acc, {"scheme": s.name, "yaw_deg": yaws}


def evaluate_cmd(
    pred: Path = typer.Argument(..., help="Folder of predicted label PNGs (class ids; 255 = abstained, counted wrong)."),
    gt: Optional[Path] = typer.Argument(
        None, help="Folder of ground-truth label PNGs with the same file names (255 = ignore). "
        "Optional with --scene: then each frame's gt_label_path."
    ),
    scheme: Optional[str] = typer.Option(
        None, "--scheme", help="Label scheme of both folders (default: the scene's, else celebamask19-zll)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="metrics.json to write (schema_version 1)."),
    scene_dir: Optional[Path] = typer.Option(
        None, "--scene", help="Scene directory: its cameras + head frame give each view's yaw (fills by_yaw)."
    ),
    name: str = typer.Option("prediction", "--name", help="Labelling name in metrics.json."),
    boundary_radius: int = typer.Option(1, "--boundary-radius", help="Pixels this close to a GT boundary are "
                                        "skipped in the boundary-excluded variant.", min=0),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the run that produced PRED, recorded in "
                                       "metrics.json (the evaluation itself is deterministic)."),
    device: str = device_option(),
) -> None:
    """Score predicted label maps against ground truth: dataset-level confusion, mIoU, mean F1 (no
    background), pixel accuracy, coverage, per class, by |yaw| bin (with --scene) and boundary-excluded.

    Metrics are computed with numpy on the CPU whatever --device says (accepted for a uniform CLI).
    """
    from rich.console import Console
    from rich.table import Table

    from ..device import resolve_device
    from ..eval import BIN_NAMES, metrics_document, write_metrics

    resolve_device(device)  # validates the value; the metrics need no accelerator
    if scheme is None:
        if scene_dir is not None:
            from ..scene import load_scene

            scheme = load_scene(scene_dir).label_scheme
        else:
            scheme = "celebamask19-zll"
    acc, info = evaluate_folders(pred, gt, scheme=scheme, scene_dir=scene_dir, boundary_radius=boundary_radius)
    config = {
        "command": "evaluate", "pred": str(pred), "gt": None if gt is None else str(gt),
        "scene": None if scene_dir is None else str(scene_dir), "scheme": info["scheme"],
        "boundary_radius": boundary_radius, "yaw_deg": info["yaw_deg"],
    }
    doc = metrics_document({name: acc}, consistency=None, config=config, seed=seed)
    write_metrics(out, doc)

    lab = doc["labellings"][name]
    console = Console()
    table = Table(title=f"{name}: {acc.num_views} views, scheme {info['scheme']}")
    for col in ("subset", "mIoU", "mean F1", "pixel acc", "coverage", "pixels"):
        table.add_column(col, justify="right" if col != "subset" else "left")

    def row(label, m, conf):
        m = m or {}
        table.add_row(label, _fmt(m.get("miou")), _fmt(m.get("mean_f1")), _fmt(m.get("pixel_acc")),
                      _fmt(m.get("coverage")), str(int(conf.sum())))

    row("overall", lab["overall"], acc.confusion)
    row(f"overall, boundary excl. (r={boundary_radius})", lab["boundary_excluded"]["overall"], acc.be_confusion)
    if scene_dir is not None:
        for b in BIN_NAMES:
            row(f"|yaw| {b}", lab["by_yaw"][b], acc.by_yaw[b])
    console.print(table)
    pc = Table(title="per class (classes absent from GT and never predicted: -)")
    for col in ("class", "IoU", "F1", "GT pixels"):
        pc.add_column(col, justify="right" if col != "class" else "left")
    rows = acc.confusion.sum(axis=1)
    for i, cname in enumerate(acc.class_names):
        v = lab["per_class"][cname]
        pc.add_row(cname, _fmt(v["iou"]), _fmt(v["f1"]), str(int(rows[i])))
    console.print(pc)
    if scene_dir is None:
        console.print("no --scene: by_yaw bins are null (yaw unknown)")
    console.print(f"[green]wrote[/green] {out}")


def register(app: typer.Typer) -> None:
    """Attach `evaluate` to the root app."""
    app.command(
        "evaluate",
        epilog=(
            "Examples:\n\n"
            "  labelsplat evaluate out/labels scene/gt_labels --scheme celebamask19-zll --out metrics.json\n\n"
            "  labelsplat evaluate out/labels scene/gt_labels --scene scene --out metrics.json --name refined\n\n"
            "  labelsplat evaluate parsed --scene scene --out m.json   (GT: the frames' gt_label_path)"
        ),
    )(evaluate_cmd)
