"""`labelsplat evaluate PRED GT [--scene S] --scheme X --out metrics.json`: thin command over :mod:`labelsplat.eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import Device, Scheme, Seed


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def evaluate_cmd(
    pred: Path = typer.Argument(
        ..., help="Folder of predicted label PNGs (class ids; 255 = abstained, counted wrong), or a scene "
        "directory (its frames' label_path are scored)."
    ),
    gt: Optional[Path] = typer.Argument(
        None, help="Folder of ground-truth label PNGs with the same file names (255 = ignore). "
        "Optional with a scene: then each frame's gt_label_path."
    ),
    scheme: Scheme = None,
    out: Path = typer.Option(..., "--out", "-o", help="metrics.json to write (schema_version 1)."),
    scene_dir: Optional[Path] = typer.Option(
        None, "--scene", help="Scene directory: its cameras + head frame give each view's yaw (fills by_yaw)."
    ),
    name: str = typer.Option("prediction", "--name", help="Labelling name in metrics.json."),
    boundary_radius: int = typer.Option(1, "--boundary-radius", help="Pixels this close to a GT boundary are "
                                        "skipped in the boundary-excluded variant.", min=0),
    seed: Seed = None,
    device: Device = "auto",
) -> None:
    """Score predicted label maps against ground truth: dataset-level confusion, mIoU, mean F1 (no
    background), pixel accuracy, coverage, per class, by |yaw| bin (with a scene) and boundary-excluded.

    Files are matched by name. --seed is the seed of the run that produced PRED, recorded in
    metrics.json (the evaluation itself is deterministic). Metrics are computed with numpy on the
    CPU whatever --device says (accepted for a uniform CLI).
    """
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console
    from rich.table import Table

    from ..errors import LabelsplatError
    from ..eval import BIN_NAMES, evaluate_label_folders, metrics_document, write_metrics

    dev = (device or "auto").strip().lower()
    if dev not in ("auto", "cpu") and not (dev == "cuda" or dev.startswith("cuda:")):
        # validated without importing torch: the metrics need no accelerator
        raise LabelsplatError(f"unknown device {device!r}", hint="choose one of auto, cpu, cuda")
    res = evaluate_label_folders(pred, gt, scheme=scheme, scene=scene_dir, boundary_radius=boundary_radius)
    acc = res.scores
    config = {
        "command": "evaluate", "pred": str(pred), "gt": None if gt is None else str(gt), "scene": res.scene,
        "scheme": res.scheme, "boundary_radius": boundary_radius, "yaw_deg": res.yaw_deg,
    }
    doc = metrics_document({name: acc}, consistency=None, config=config, seed=seed)
    write_metrics(out, doc)

    lab = doc["labellings"][name]
    console = Console()
    table = Table(title=f"{name}: {acc.num_views} views, scheme {res.scheme}")
    for col in ("subset", "mIoU", "mean F1", "pixel acc", "coverage", "pixels"):
        table.add_column(col, justify="right" if col != "subset" else "left")

    def row(label, m, conf):
        m = m or {}
        table.add_row(label, _fmt(m.get("miou")), _fmt(m.get("mean_f1")), _fmt(m.get("pixel_acc")),
                      _fmt(m.get("coverage")), str(int(conf.sum())))

    row("overall", lab["overall"], acc.confusion)
    row(f"overall, boundary excl. (r={boundary_radius})", lab["boundary_excluded"]["overall"], acc.be_confusion)
    if res.scene is not None:
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
    if res.scene is None:
        console.print("no scene: by_yaw bins are null (yaw unknown)")
    console.print(f"[green]wrote[/green] {out}")


def register(app: typer.Typer) -> None:
    """Attach `evaluate` to the root app."""
    app.command(
        "evaluate",
        epilog=(
            "Examples:\n\n"
            "  labelsplat evaluate out/labels scene/gt_labels --scheme celebamask19-zll --out metrics.json\n\n"
            "  labelsplat evaluate out/labels --scene scene --out metrics.json --name refined   "
            "(GT: the frames' gt_label_path)\n\n"
            "  labelsplat evaluate scene --out metrics.json --name initial   (the scene's own labels vs its GT)"
        ),
    )(evaluate_cmd)
