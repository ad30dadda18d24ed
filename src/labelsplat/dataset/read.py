"""Reading a dataset in the docs/design.md layout (what ``labelsplat train`` consumes).

Layout: ``DIR/images/<name>.png``, ``DIR/labels/<name>.png`` (uint8 class ids in the scheme
named by the manifest's ``label_scheme``; 255 = ignore) and ``DIR/manifest.json``::

    {"schema_version": 1, "label_scheme": "celebamask19-zll",
     "views": [{"name", "image", "label", "source_scene", "yaw", "pitch", "accepted": true,
                "split": "train", ...}, ...], ...}

The reader is tolerant: unknown keys are kept in :attr:`DatasetView.extra`; ``image`` /
``label`` default to ``images/<name>.png`` / ``labels/<name>.png`` and are resolved relative to
the dataset directory; views with ``"accepted": false`` (rejected by the exporter, files absent)
are skipped; ``yaw``/``pitch`` (degrees, docs/design.md convention) may be missing (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabelsplatError
from ..io import read_json_object
from ..scene.paths import check_name, confined
from ..schemes import get_scheme

MANIFEST = "manifest.json"


@dataclass
class DatasetView:
    """One usable view: absolute file paths and its pose (degrees) if known."""

    name: str
    image: Path
    label: Path
    source_scene: str | None = None
    yaw: float | None = None
    pitch: float | None = None
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    """A dataset directory in memory: its scheme and accepted views (manifest order)."""

    root: Path
    label_scheme: str
    views: list[DatasetView]
    n_rejected: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.views)


def _resolve(root: Path, value: Any, default_dir: str, name: str, where: str, manifest: Path) -> Path:
    if value is None:
        return root / default_dir / f"{name}.png"
    if not isinstance(value, str) or not value:
        raise LabelsplatError(f"{where}: '{default_dir[:-1]}' must be a relative path string", path=manifest)
    p = confined(root, value, what=f"{where}: '{default_dir[:-1]}'", path=manifest).relative_to(root)
    cand = root / p
    if not cand.exists() and len(p.parts) == 1:
        alt = root / default_dir / p
        if alt.exists():
            return alt
    return cand


def _angle(v: Any, key: str, where: str, manifest: Path) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise LabelsplatError(f"{where}: '{key}' must be a number (degrees), got {v!r}", path=manifest)
    return float(v)


def read_dataset(path: str | Path, *, split: str | None = None, check_files: bool = True) -> Dataset:
    """Read ``DIR/manifest.json``; ``split`` keeps only views of that split (e.g. ``"train"``).

    Raises :class:`LabelsplatError` naming the file for a missing/invalid manifest, an unknown
    label scheme, duplicate names, missing image/label files or no usable views.
    """
    root = Path(path)
    if not root.exists():
        raise LabelsplatError("dataset directory not found", path=root)
    if not root.is_dir():
        raise LabelsplatError("a dataset must be a directory with images/, labels/ and manifest.json", path=root)
    manifest = root / MANIFEST
    if not manifest.exists():
        raise LabelsplatError(
            "no manifest.json: not a dataset directory",
            path=root,
            hint="build one with `labelsplat dataset from-scenes` or `labelsplat refine`",
        )
    data = read_json_object(manifest, "manifest.json")
    scheme = data.get("label_scheme")
    if not isinstance(scheme, str) or not scheme:
        raise LabelsplatError("manifest.json has no 'label_scheme' (the scheme of labels/)", path=manifest)
    try:
        get_scheme(scheme)
    except LabelsplatError as exc:
        raise LabelsplatError(exc.message, path=manifest, hint=exc.hint) from exc
    raw = data.get("views")
    if not isinstance(raw, list):
        raise LabelsplatError("manifest.json has no 'views' list", path=manifest)
    views: list[DatasetView] = []
    seen: set[str] = set()
    rejected = 0
    known = {"name", "image", "label", "source_scene", "yaw", "pitch", "split", "accepted"}
    for i, v in enumerate(raw):
        where = f"view {i}"
        if not isinstance(v, dict):
            raise LabelsplatError(f"{where} is not a JSON object", path=manifest)
        if v.get("accepted", True) is False:
            rejected += 1
            continue
        name = v.get("name")
        if name is None or name == "":
            raise LabelsplatError(f"{where}: missing 'name'", path=manifest)
        check_name(name, what=f"{where}: 'name'", path=manifest)
        if name in seen:
            raise LabelsplatError(f"duplicate view name {name!r}", path=manifest)
        seen.add(name)
        view_split = v.get("split")
        if split is not None and view_split not in (None, split):
            continue
        view = DatasetView(
            name=name,
            image=_resolve(root, v.get("image"), "images", name, where, manifest),
            label=_resolve(root, v.get("label"), "labels", name, where, manifest),
            source_scene=v.get("source_scene") if isinstance(v.get("source_scene"), str) else None,
            yaw=_angle(v.get("yaw"), "yaw", where, manifest),
            pitch=_angle(v.get("pitch"), "pitch", where, manifest),
            split=view_split if isinstance(view_split, str) else None,
            extra={k: val for k, val in v.items() if k not in known},
        )
        if check_files:
            for what, p in (("image", view.image), ("label", view.label)):
                if not p.is_file():
                    raise LabelsplatError(f"{where} ({name}): {what} file missing", path=p)
        views.append(view)
    if not views:
        raise LabelsplatError(
            "the dataset has no usable views" + (f" in split {split!r}" if split else "")
            + (f" ({rejected} rejected)" if rejected else ""),
            path=manifest,
        )
    extra = {k: val for k, val in data.items() if k not in {"views", "label_scheme"}}
    return Dataset(root=root, label_scheme=scheme, views=views, n_rejected=rejected, extra=extra)
