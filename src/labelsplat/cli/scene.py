"""`labelsplat scene import`, `scene info` and `scene head-frame`: thin commands over :mod:`labelsplat.scene`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .options import AllowOutside, Overwrite, Scheme, file_or_none

scene_app = typer.Typer(
    name="scene",
    help="Import calibrated captures as scene directories and inspect them.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@scene_app.command(
    "import",
    epilog=(
        "Examples:\n\n"
        "  labelsplat scene import --format facescape data/1/1_neutral/params.json --images data/1/1_neutral --out scenes/fs_1\n\n"
        "  labelsplat scene import --format colmap cap/sparse/0 --images cap/images --labels cap/labels --out scenes/cap\n\n"
        "  labelsplat scene import --format nersemble seq/camera_params.json --images seq/frame_00000/images "
        "--head-frame '{\"center\": [0,0,0], \"up\": [0,1,0], \"forward\": [0,0,1]}' --out scenes/ns\n\n"
        "  labelsplat scene import --format nerfstudio capture/transforms.json --labels capture/labels --out scenes/ns_cap"
    ),
)
def import_cmd(
    src: Path = typer.Argument(..., help="params.json (facescape), text or binary model folder (colmap), camera_params.json (nersemble) "
                              "or transforms.json (nerfstudio)."),
    fmt: str = typer.Option(..., "--format", "-f", help="facescape | colmap | nersemble | nerfstudio", case_sensitive=False),
    images: Optional[Path] = typer.Option(
        None, "--images", help="Folder of the source images (facescape: {i}.jpg/.png, default: next to params.json; "
                                      "nerfstudio: not used, paths come from transforms.json)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Scene directory to create."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Folder of label PNGs named <image stem>.png (class ids, or the scheme's colours)."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Folder of foreground masks named <image stem>.png."),
    head_frame: Optional[str] = typer.Option(
        None, "--head-frame",
        help="Head frame as inline JSON {center, up, forward} or a JSON file; default: estimated (frontal rigs only).",
    ),
    scheme: Scheme = "celebamask19-zll",
    link: bool = typer.Option(False, "--link", help="Hard-link files that need no undistortion instead of copying."),
    overwrite: Overwrite = False,
) -> None:
    """Import a calibrated capture as a canonical scene (transforms.json + images, undistorted to pinhole).

    OpenCV-convention intrinsics (FaceScape, NeRSemble) are shifted by +0.5 px to the pixel-centre
    convention; COLMAP's and nerfstudio's are used as they are. Labels are resampled nearest-neighbour.
    """
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console

    from ..rundir import NEW, RunDir
    from ..scene import import_scene, validate_scene

    frame_file = file_or_none(head_frame)
    rd = RunDir(out, "scene", inputs=[src, images, labels, masks, frame_file])
    replace = rd.check(overwrite=overwrite) != NEW
    scene = import_scene(
        fmt, src, images, out, labels_dir=labels, head_frame=head_frame, label_scheme=scheme, link=link,
        masks_dir=masks, overwrite=replace,
    )
    rd.write_provenance({"format": fmt, "head_frame": head_frame, "scheme": scheme, "link": link}, None)
    console = Console()
    info = scene.extra.get("import", {})
    console.print(f"[green]imported[/green] {len(scene.frames)} views ({fmt}) -> {out}")
    for note in info.get("notes", []):
        console.print(f"  {note}")
    for skipped in info.get("skipped", []):
        console.print(f"  skipped: {skipped}", markup=False)
    for w in validate_scene(scene, check_label_ids=False):
        console.print(f"  [yellow]warning:[/yellow] {w}")


def _fmt_range(r) -> str:
    return "-" if r is None else f"{r[0]:+.1f} .. {r[1]:+.1f}"


@scene_app.command(
    "info",
    epilog="Examples:\n\n  labelsplat scene info scenes/fs_1\n\n  labelsplat scene info scenes/fs_1 --json > info.json",
)
def info_cmd(
    scene_dir: Path = typer.Argument(..., help="Scene directory (or its transforms.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of a table."),
    quick: bool = typer.Option(False, "--quick", help="Skip decoding labels (sizes from headers only, ids unchecked)."),
    allow_outside: AllowOutside = False,
) -> None:
    """Summarise and validate a scene: frames, resolutions, scheme, head frame, yaw/pitch, optional files.

    Exits with code 2 and one message naming the file when the scene is invalid.
    """
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console
    from rich.table import Table

    from ..scene import load_scene, scene_summary, validate_scene

    scene = load_scene(scene_dir, allow_outside=allow_outside)
    warnings = validate_scene(scene, check_label_ids=not quick, allow_outside=allow_outside)
    s = scene_summary(scene, warnings)
    console = Console()
    if as_json:
        console.print_json(json.dumps(s))
        return
    t = Table(title=f"scene {s['name']}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row("frames", str(s["frames"]))
    t.add_row("resolution(s)", ", ".join(f"{k} ({v})" for k, v in s["resolutions"].items()))
    t.add_row("label scheme", s["label_scheme"])
    hf = s["head_frame"]
    t.add_row(
        "head frame",
        "none" if hf is None else "center " + ", ".join(f"{v:.3g}" for v in hf["center"])
        + " | up " + ", ".join(f"{v:.2f}" for v in hf["up"]) + " | forward " + ", ".join(f"{v:.2f}" for v in hf["forward"]),
    )
    t.add_row("yaw range (deg)", _fmt_range(s["yaw_range"]))
    t.add_row("pitch range (deg)", _fmt_range(s["pitch_range"]))
    if s["yaw_bins"] is not None:
        top = max(s["yaw_bins"].values()) or 1
        t.add_row(
            "|yaw| bins",
            "\n".join(f"{k:>7}: {v:4d} {'#' * round(20 * v / top)}" for k, v in s["yaw_bins"].items()),
        )
        t.add_row("extreme views", f"{s['extreme_views']} (|yaw| >= 60 or |pitch| >= 30)")
    o = s["optional"]
    n = s["frames"]
    t.add_row("labels", f"{o['label_path']}/{n}")
    t.add_row("GT labels", f"{o['gt_label_path']}/{n}")
    t.add_row("masks", f"{o['mask_path']}/{n}")
    t.add_row("undistorted", f"{o['distortion_removed']}/{n}")
    t.add_row("point cloud", o["ply_file_path"] or "none")
    if "import" in s:
        t.add_row("imported from", f"{s['import'].get('format')}: {s['import'].get('source')}")
    t.add_row("validation", "ok" if not warnings else "\n".join(f"warning: {w}" for w in warnings))
    console.print(t)


@scene_app.command(
    "head-frame",
    epilog=(
        "Examples:\n\n"
        "  labelsplat scene head-frame scenes/ns_cap --from-cameras\n\n"
        "  labelsplat scene head-frame scenes/ns_cap --from-landmarks --overwrite\n\n"
        "  labelsplat scene head-frame scenes/ns_cap --set '{\"center\": [0,0,0], \"up\": [0,1,0], \"forward\": [0,0,1]}'"
    ),
)
def head_frame_cmd(
    scene_dir: Path = typer.Argument(..., help="Scene directory (or its transforms.json)."),
    from_cameras: bool = typer.Option(False, "--from-cameras", help="Estimate it from the cameras (frontal rigs only)."),
    from_landmarks: bool = typer.Option(
        False, "--from-landmarks",
        help="Triangulate face landmarks across the views, as capture does (needs the mediapipe extra)."),
    set_json: Optional[str] = typer.Option(None, "--set", help="Inline JSON {center, up, forward} or a JSON file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the scene's existing head frame."),
    allow_outside: AllowOutside = False,
) -> None:
    """Write a head frame into an existing scene (only the head_frame key of transforms.json changes).

    Prints how well the cameras determine it (look-at residual, yaw/pitch range of the cameras)
    and warns when it is poorly determined.
    """
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console

    from ..errors import LabelsplatError
    from ..scene import load_scene, parse_head_frame
    from ..scene.format import set_head_frame
    from ..scene.headframe import estimate_head_frame_detailed, head_frame_spread

    chosen = [n for n, on in (("--from-cameras", from_cameras), ("--from-landmarks", from_landmarks),
                              ("--set", set_json is not None)) if on]
    if len(chosen) != 1:
        raise LabelsplatError(f"give exactly one of --from-cameras, --from-landmarks, --set (got {len(chosen) or 'none'})")
    scene = load_scene(scene_dir, allow_outside=allow_outside)
    if scene.head_frame is not None and not overwrite:  # before the slow landmark search
        raise LabelsplatError("the scene already has a head frame", path=Path(scene.root) / "transforms.json",
                              hint="pass --overwrite to replace it")
    console = Console(highlight=False)
    extra = ""
    if from_cameras:
        head = estimate_head_frame_detailed(scene.cameras, source=Path(scene.root) / "transforms.json").head
    elif from_landmarks:
        from ..capture.pipeline import scene_landmark_head_frame  # lazy: the landmark parser, only for this option

        head, units_per_cm, info = scene_landmark_head_frame(scene, log=console.print)
        extra = f", template fit RMS {info['template_rms_cm']} cm, {units_per_cm:.4g} scene units per cm"
    else:
        head = parse_head_frame(set_json)
    spread = head_frame_spread(scene.cameras, head, from_cameras=from_cameras)
    set_head_frame(scene.root, head, overwrite=overwrite, allow_outside=allow_outside)
    console.print(f"head frame written to {Path(scene.root) / 'transforms.json'} ({chosen[0][2:]}{extra})")
    console.print(
        f"  look-at residual {spread.look_at_residual:.3g} units ({100 * spread.look_at_residual_rel:.1f}% of the camera "
        f"distance); camera yaw {spread.yaw_range[0]:+.0f} .. {spread.yaw_range[1]:+.0f} deg (spread {spread.yaw_std:.0f}), "
        f"pitch {spread.pitch_range[0]:+.0f} .. {spread.pitch_range[1]:+.0f} deg")
    for w in spread.warnings:
        console.print(f"  [yellow]warning:[/yellow] {w}", markup=True)


def register(app: typer.Typer) -> None:
    """Attach the `scene` group to the root app."""
    app.add_typer(scene_app, name="scene")
