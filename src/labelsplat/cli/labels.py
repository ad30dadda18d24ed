"""`labelsplat labels convert`, `labels schemes` and `labels check-lr`: thin commands over
:mod:`labelsplat.schemes` and :mod:`labelsplat.parsers.lrcheck`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import AllowOutside, Overwrite

labels_app = typer.Typer(
    name="labels",
    help="Label schemes: list them, convert label maps between them, check a scene's left/right convention.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _lr_value(value: Optional[str], flag: str) -> Optional[str]:
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from ..errors import LabelsplatError
    from ..schemes import LR_CONVENTIONS

    if value is None:
        return None
    v = value.strip().lower()
    if v not in LR_CONVENTIONS:
        raise LabelsplatError(f"{flag} must be one of {', '.join(LR_CONVENTIONS)}, got {value!r}")
    return v


@labels_app.command(
    "convert",
    epilog=(
        "Examples:\n\n"
        "  labelsplat labels convert parsed/lapa parsed/zll --from lapa11 --to celebamask19-zll\n\n"
        "  labelsplat labels convert facer_out labels --from lapa11 --to celebamask19-zll --src-lr image\n\n"
        "  labelsplat labels convert camhq_masks zll_masks --from celebamask-hq --to celebamask19-zll\n\n"
        "  labelsplat labels convert colour_maps ids --from celebamask19-zll --to celebamask19-zll --colors"
    ),
)
def convert_cmd(
    in_dir: Path = typer.Argument(..., help="Folder of label PNGs (uint8 class ids in the --from scheme; 255 = ignore)."),
    out_dir: Path = typer.Argument(..., help="Folder to create with the converted PNGs (same file names)."),
    src: str = typer.Option(..., "--from", help="Source scheme (see `labelsplat labels schemes`)."),
    dst: str = typer.Option(..., "--to", help="Destination scheme."),
    src_lr: Optional[str] = typer.Option(
        None, "--src-lr", help="Override the source's left/right convention: subject | image | unknown."
    ),
    dst_lr: Optional[str] = typer.Option(
        None, "--dst-lr", help="Override the destination's left/right convention: subject | image | unknown."
    ),
    colors: bool = typer.Option(
        False, "--colors", help="Inputs are colour-coded with the source scheme's palette (RGB): each pixel takes "
        "the nearest palette colour, white = ignore (255)."
    ),
    overwrite: Overwrite = False,
) -> None:
    """Convert every label map in IN_DIR from one label scheme to another, by class meaning.

    Classes map one to one where both schemes have them; otherwise they merge as documented
    (e.g. neck -> background for LaPa) or become 255 (ignore) where no honest counterpart exists.
    Left/right classes swap only when both conventions are known and differ (subject vs image).
    OUT_DIR is built in a temporary folder and appears only when every file converted.
    """
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from ..errors import LabelsplatError
    from ..io import atomic_dir, list_images, read_label, read_rgb, write_png
    from ..rundir import NEW, RunDir
    from ..schemes import colorize, conversion_report, conversion_table, get_scheme, lr_swap_needed, palette_to_labels

    s, d = get_scheme(src), get_scheme(dst)
    s_lr, d_lr = _lr_value(src_lr, "--src-lr"), _lr_value(dst_lr, "--dst-lr")
    files = list_images(in_dir)
    rd = RunDir(out_dir, "labels", inputs=[in_dir])
    replace = rd.check(overwrite=overwrite) != NEW or out_dir.exists()  # an empty folder is replaced too
    names = {}
    for f in files:
        name = f.name if f.suffix.lower() == ".png" else f.stem + ".png"
        if name in names:
            raise LabelsplatError(f"two inputs would both be written as {name} ({names[name].name}, {f.name})", path=in_dir)
        names[name] = f
    lut = conversion_table(s, d, src_lr=s_lr, dst_lr=d_lr)
    hist = np.zeros(256, dtype=np.int64)
    inexact = 0
    with atomic_dir(out_dir, overwrite=replace) as tmp:
        for name, f in names.items():
            if colors:
                rgb = read_rgb(f)
                arr = palette_to_labels(rgb, s)
                inexact += int((colorize(arr, s) != rgb).any(axis=-1).sum())
            else:
                arr = read_label(f, s.num_classes)
            hist += np.bincount(arr.reshape(-1), minlength=256)
            write_png(tmp / name, lut[arr])

    rd.write_provenance({"from": s.name, "to": d.name, "src_lr": s_lr, "dst_lr": d_lr, "colors": colors}, None)
    console = Console()
    console.print(f"[green]converted[/green] {len(names)} label maps {s.name} -> {d.name} into {out_dir}")
    swap = lr_swap_needed(s, d, src_lr=s_lr, dst_lr=d_lr)
    lr_s, lr_d = s_lr or s.lr_convention, d_lr or d.lr_convention
    if swap:
        console.print(f"  left/right swapped: source convention '{lr_s}', destination '{lr_d}'")
    elif "unknown" in (lr_s, lr_d) and (s.flip_pairs and d.flip_pairs):
        console.print(
            f"  [yellow]note:[/yellow] left/right taken at face value (conventions: source '{lr_s}', destination "
            f"'{lr_d}'); pass --src-lr/--dst-lr once the convention is known"
        )
    total = int(hist.sum())
    table = Table(title="classes that do not map one to one", show_lines=False)
    for col in ("source class", "->", "pixels", "kind", "why"):
        table.add_column(col)
    n_rows = 0
    for row in conversion_report(s, d, src_lr=s_lr, dst_lr=d_lr):
        if row["kind"] == "exact":
            continue
        n_rows += 1
        table.add_row(row["src_class"], row["dst_class"], str(int(hist[row["src_index"]])), row["kind"], row["reason"])
    if n_rows:
        console.print(table)
    else:
        console.print("  every class maps one to one (lossless)")
    console.print(f"  pixels: {total}, ignore (255) kept: {int(hist[255])}")
    if colors:
        console.print(f"  colour inputs: {inexact} pixels were not an exact palette colour (took the nearest)")


@labels_app.command(
    "schemes",
    epilog="Examples:\n\n  labelsplat labels schemes\n\n  labelsplat labels schemes lapa11",
)
def schemes_cmd(
    name: Optional[str] = typer.Argument(None, help="Show this scheme's classes, colours and flip partners."),
) -> None:
    """List the built-in label schemes (class count, left/right convention), or one scheme's classes."""
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console
    from rich.table import Table

    from ..schemes import get_scheme, list_schemes

    console = Console()
    if name is None:
        table = Table(title="label schemes (255 = ignore in every scheme)")
        for col in ("name", "classes", "left/right", "description"):
            table.add_column(col, overflow="fold")
        for n in list_schemes():
            s = get_scheme(n)
            table.add_row(s.name, str(s.num_classes), s.lr_convention, s.description.split(". ")[0].rstrip(".") + ".")
        console.print(table)
        console.print("details: labelsplat labels schemes NAME")
        return
    s = get_scheme(name)
    partner = {}
    for a, b in s.flip_pairs:
        partner[a], partner[b] = b, a
    table = Table(title=f"{s.name} (left/right convention: {s.lr_convention})")
    for col in ("id", "class", "meaning (source's own side naming)", "rgb", "flip partner"):
        table.add_column(col)
    for i, (cls, concept, rgb) in enumerate(zip(s.classes, s.concepts, s.palette)):
        hexcol = "#%02x%02x%02x" % rgb
        table.add_row(str(i), cls, concept, f"[{hexcol}]███[/] {rgb}", s.classes[partner[i]] if i in partner else "")
    console.print(table)
    console.print(f"source: {s.source}")
    console.print(s.description)


@labels_app.command(
    "check-lr",
    epilog=(
        "Examples:\n\n"
        "  labelsplat labels check-lr scenes/head_000\n\n"
        "  labelsplat labels check-lr scenes/head_000 --labels gt --max-yaw 20 --json lr.json"
    ),
)
def check_lr_cmd(
    scene: Path = typer.Argument(..., help="Scene directory (transforms.json with a head_frame and label_path entries)."),
    labels: str = typer.Option("label", "--labels", help="Which labels to check: label (label_path) | gt (gt_label_path)."),
    max_yaw: float = typer.Option(30.0, "--max-yaw", help="Use views with |yaw| below this (degrees)."),
    min_pixels: int = typer.Option(5, "--min-pixels", help="A class needs at least this many pixels in a view to vote."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full result (per view, per pair) as JSON."),
    allow_outside: AllowOutside = False,
) -> None:
    """Measure whether the scene's l_/r_ labels follow the subject's left or the image's left.

    On near-frontal views, each left/right class pair (brows, eyes, ears) votes by comparing
    the two classes' pixel centroids with the head frame's left axis projected into the image.
    Prints a table per view and the overall verdict (subject | image | unknown) with the
    fraction of votes that agree; exits 0 whatever the verdict.
    """
    # lazy: loaded when the command runs, so that labelsplat --help stays fast
    from rich.console import Console
    from rich.table import Table

    from ..errors import LabelsplatError
    from ..parsers.lrcheck import check_lr, check_lr_json

    if min_pixels < 1:
        raise LabelsplatError(f"--min-pixels must be >= 1, got {min_pixels}")
    res = check_lr(scene, labels=labels, max_yaw=max_yaw, min_pixels=min_pixels, allow_outside=allow_outside)
    console = Console()
    table = Table(title=f"left/right check: {res.scene} ({res.label_scheme}, {res.labels} labels, |yaw| < {res.max_yaw:g})")
    for col in ("frame", "yaw", "pitch", "brow", "eye", "ear", "view"):
        table.add_column(col)
    for v in res.views:
        cells = {pv.pair: f"{pv.vote or 'abstain'} ({pv.offset_px:+.1f}px)" for pv in v.votes}
        table.add_row(v.frame, f"{v.yaw:+.1f}", f"{v.pitch:+.1f}", cells.get("brow", "-"), cells.get("eye", "-"),
                      cells.get("ear", "-"), v.verdict)
    if res.views:
        console.print(table)
    console.print("  (px: offset of the l_ class centroid from the r_ one along the image direction of the "
                  "subject's left; + means the l_ class is on the subject's left)")
    if res.n_votes == 0:
        console.print(f"[yellow]convention: unknown[/yellow] - no vote ({res.n_views_near_frontal} near-frontal views, "
                      "none with both classes of a left/right pair)")
    else:
        console.print(f"convention: [bold]{res.convention}[/bold]  agreement {res.agreement:.0%} "
                      f"({res.votes['subject']} subject / {res.votes['image']} image votes, "
                      f"{res.n_views_checked} of {res.n_views_near_frontal} near-frontal views)")
        if res.convention in ("subject", "image") and res.scheme_lr_convention in ("subject", "image"):
            note = ("match" if res.convention == res.scheme_lr_convention else "differ from")
            console.print(f"  the scheme {res.label_scheme} declares '{res.scheme_lr_convention}': the labels {note} it")
        elif res.convention in ("subject", "image"):
            console.print(f"  the scheme {res.label_scheme} leaves its convention unknown: pass "
                          f"--src-lr {res.convention} to `labels convert` (or --lr-convention {res.convention} to `parse`)")
    if json_out is not None:
        console.print(f"  wrote {check_lr_json(res, json_out)}")


def register(app: typer.Typer) -> None:
    """Attach the `labels` command group to the root app."""
    app.add_typer(labels_app, name="labels")
