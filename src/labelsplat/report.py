"""Static HTML report of a refinement run (no server needed).

The report is one self-contained ``report.html``: plots are embedded as base64 PNGs,
view thumbnails are referenced by paths relative to the report (so the dataset's own
images are shown, not copies). It shows, by |yaw| bin, a grid of RGB / initial labels /
refined labels / GT / confidence (the three labellings in one style, blended over the view's image), the per-class
table, mIoU vs yaw for every labelling in ``metrics.json``, multiview consistency when present, the fits' loss curves,
the orbit videos that exist (``labelsplat render --orbit``) and the commands that open each fit in the viewer.
Its header says that it needs its folder beside it.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import atomic_write_text
from .scene import YAW_BINS, yaw_bin


@dataclass
class ReportView:
    """One row of the image grid: a view name, its pose and image paths by column title."""

    name: str
    yaw: float
    pitch: float
    images: dict[str, Path] = field(default_factory=dict)
    note: str = ""


def _fig_to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib  # lazy: matplotlib (~0.4 s), only for the report's plots

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # lazy: as above; imported after the backend is chosen

    return plt


def _plot_miou_by_yaw(labellings: dict[str, Any]) -> str | None:
    plt = _pyplot()
    bins = [name for name, _, _ in YAW_BINS]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    plotted = False
    for name, lab in labellings.items():
        by_yaw = lab.get("by_yaw", {})
        xs, ys = [], []
        for i, b in enumerate(bins):
            m = by_yaw.get(b)
            if m:
                xs.append(i)
                ys.append(m["miou"])
        if xs:
            ax.plot(xs, ys, marker="o", label=name)
            plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xticks(range(len(bins)), [f"|yaw| {b}" for b in bins])
    ax.set_ylim(0, 1)
    ax.set_ylabel("mIoU")
    ax.grid(alpha=0.3)
    ax.legend()
    uri = _fig_to_data_uri(fig)
    plt.close(fig)
    return uri


def _plot_losses(train_logs: dict[str, list[dict]]) -> str | None:
    plt = _pyplot()
    keys = ("loss", "rgb_loss", "sem_loss", "alpha_loss")
    series = {}
    for run, rows in train_logs.items():
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "step" in r]
            if pts:
                series[f"{run}: {key}"] = pts
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for label, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    uri = _fig_to_data_uri(fig)
    plt.close(fig)
    return uri


def _fmt(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _metrics_tables(labellings: dict[str, Any]) -> tuple[str, str]:
    bins = [name for name, _, _ in YAW_BINS]
    rows = []
    for name, lab in labellings.items():
        cells = [f"<td>{html.escape(name)}</td>", f"<td>{_fmt(lab['overall']['miou'])}</td>"]
        cells.append(f"<td>{_fmt(lab['overall']['mean_f1'])}</td>")
        for b in bins:
            m = lab.get("by_yaw", {}).get(b)
            cells.append(f"<td>{_fmt(m['miou'] if m else None)}</td>")
        be = lab.get("boundary_excluded", {}).get("overall")
        cells.append(f"<td>{_fmt(be['mean_f1'] if be else None)}</td>")
        cells.append(f"<td>{_fmt(lab['overall'].get('coverage'))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>mIoU {b}</th>" for b in bins)
    summary = (
        "<table><tr><th>labelling</th><th>mIoU</th><th>mean F1</th>" + head
        + "<th>mean F1 (boundary excl.)</th><th>coverage</th></tr>" + "".join(rows) + "</table>"
    )
    names = list(labellings)
    classes: list[str] = []
    for lab in labellings.values():
        for c in lab.get("per_class", {}):
            if c not in classes:
                classes.append(c)
    prow = []
    for c in classes:
        cells = [f"<td>{html.escape(c)}</td>"]
        for n in names:
            pc = labellings[n].get("per_class", {}).get(c)
            cells.append(f"<td>{_fmt(pc['iou'] if pc else None)}</td><td>{_fmt(pc['f1'] if pc else None)}</td>")
        prow.append("<tr>" + "".join(cells) + "</tr>")
    phead = "".join(f"<th>{html.escape(n)} IoU</th><th>{html.escape(n)} F1</th>" for n in names)
    per_class = "<table><tr><th>class</th>" + phead + "</tr>" + "".join(prow) + "</table>"
    return summary, per_class


_STYLE = (
    "<style>body{font-family:sans-serif;margin:24px;max-width:1400px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;"
    "font-size:13px;text-align:right}td:first-child,th:first-child{text-align:left}"
    ".grid img{width:128px;height:128px;object-fit:contain;background:#222;image-rendering:pixelated}"
    ".grid td{text-align:center;font-size:11px}.muted{color:#777}"
    ".warn{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px}</style></head><body>"
)


def _scores_section(labellings: dict) -> list[str]:
    if not labellings:
        return ["<p class='muted'>No ground truth for these scenes: no label scores.</p>"]
    summary, per_class = _metrics_tables(labellings)
    parts = ["<h2>Scores against ground truth</h2>", summary]
    uri = _plot_miou_by_yaw(labellings)
    if uri:
        parts.append(f"<p><img alt='mIoU vs yaw' src='{uri}'></p>")
    return parts + ["<h3>Per class</h3>", per_class]


def _consistency_section(consistency: dict) -> list[str]:
    if not consistency:
        return []
    parts = ["<h2>Multiview consistency of the input views' labels</h2>",
             "<p class='muted'>Labels of each input view reprojected into its nearest views through "
             "the fitted model's depth; agreement over visible pixels. Before = the input labels, "
             "after = the refined model's labels at the same views. Agreement with trusted inputs = mIoU "
             "of the refined model's labels against the input labels at the input views a parser is "
             "trusted on (small |yaw|).</p><table>",
             "<tr><th>scene</th><th>before</th><th>after</th><th>pixels compared</th>"
             "<th>agreement with trusted inputs</th></tr>"]
    for k, v in consistency.items():
        v = v if isinstance(v, dict) else {}
        before, after = v.get("before") or {}, v.get("after") or {}
        parts.append(
            f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(before.get('agreement'))}</td>"
            f"<td>{_fmt(after.get('agreement'))}</td><td>{_fmt(after.get('compared'))}</td>"
            f"<td>{_fmt((v.get('input_agreement') or {}).get('miou'))}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _view_row(v: ReportView, columns: list[str], root: Path) -> list[str]:
    """One table row: the view's name and pose, then its image in each column (paths relative to ``root``)."""
    label = f"{html.escape(v.name)}<br>yaw {v.yaw:+.0f}&deg; pitch {v.pitch:+.0f}&deg;"
    if v.note:
        label += f"<br><span class='muted'>{html.escape(v.note)}</span>"
    parts = [f"<tr><td>{label}</td>"]
    for c in columns:
        p = v.images.get(c)
        if p is None:
            parts.append("<td></td>")
            continue
        rel = _relative(p, root)
        parts.append(f"<td><img loading='lazy' src='{html.escape(rel)}'></td>")
    parts.append("</tr>")
    return parts


def _views_section(views: list[ReportView], root: Path, max_views_per_bin: int) -> list[str]:
    if not views:
        return []
    parts = ["<h2>Novel views by |yaw| bin</h2>"]
    columns: list[str] = []
    for v in views:
        for c in v.images:
            if c not in columns:
                columns.append(c)
    for b, _, _ in YAW_BINS:
        in_bin = [v for v in views if yaw_bin(v.yaw) == b][:max_views_per_bin]
        if not in_bin:
            continue
        parts.append(f"<h3>|yaw| {b}</h3><table class='grid'><tr><th>view</th>")
        parts += [f"<th>{html.escape(c)}</th>" for c in columns]
        parts.append("</tr>")
        for v in in_bin:
            parts += _view_row(v, columns, root)
        parts.append("</table>")
    return parts


def _relative(p: Path, root: Path) -> str:
    try:
        return Path(p).resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(p).resolve().as_posix()


def _orbit_section(videos: dict[str, Path], viewer_commands: dict[str, str], root: Path) -> list[str]:
    """The orbit videos (RGB | label overlay) and the commands that open each fit in the viewer."""
    parts: list[str] = []
    if videos:
        parts.append("<h2>Orbit videos</h2>")
        for name, path in videos.items():
            rel = html.escape(_relative(path, root))
            parts.append(f"<h3>{html.escape(name)}</h3><p><video controls loop muted src='{rel}' "
                         f"style='max-width:100%'></video><br><a href='{rel}'>{rel}</a></p>")
    if viewer_commands:
        parts.append("<h2>Open in the viewer</h2><p class='muted'>From this report's folder "
                     "(docs/usage/viewer.md):</p>")
        for name, cmd in viewer_commands.items():
            parts.append(f"<p>{html.escape(name)}: <code>{html.escape(cmd)}</code></p>")
    return parts


def write_report(
    out_html: str | Path,
    *,
    title: str,
    metrics: dict | None,
    views: list[ReportView],
    train_logs: dict[str, list[dict]] | None = None,
    notes: list[str] | None = None,
    warnings: list[str] | None = None,
    max_views_per_bin: int = 6,
    videos: dict[str, Path] | None = None,
    viewer_commands: dict[str, str] | None = None,
) -> Path:
    """Write ``report.html``; image and video paths are made relative to its folder.
    ``warnings`` are shown first, in a box (e.g. a refine whose labels disagree with its trusted inputs);
    ``videos`` (title -> MP4) and ``viewer_commands`` (title -> command) after the scores."""
    out_html = Path(out_html)
    root = out_html.parent.resolve()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        _STYLE,
        f"<h1>{html.escape(title)}</h1>",
        "<p class='muted'>This report shows images and videos from the folder around it: keep (or copy) "
        "the whole folder, not report.html alone.</p>",
    ]
    for note in notes or []:
        parts.append(f"<p class='muted'>{html.escape(note)}</p>")
    for warning in warnings or []:
        parts.append(f"<p class='warn'><b>warning:</b> {html.escape(warning)}</p>")
    parts += _scores_section((metrics or {}).get("labellings") or {})
    parts += _consistency_section((metrics or {}).get("consistency") or {})
    uri = _plot_losses(train_logs or {})
    if uri:
        parts += ["<h2>Fit losses</h2>", f"<p><img alt='losses' src='{uri}'></p>"]
    parts += _orbit_section(videos or {}, viewer_commands or {}, root)
    parts += _views_section(views, root, max_views_per_bin)
    parts.append("</body></html>")
    return atomic_write_text(out_html, "\n".join(parts))
