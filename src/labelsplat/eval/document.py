"""The ``metrics.json`` document (docs/design.md, schema_version 1): build, pool, write, read.

::

    {"schema_version": 1,
     "labellings": {NAME: L, ...},      # NAME: initial, refined, ceiling, prediction, ...
     "consistency": {...} | null,        # multiview consistency (written by the pipeline)
     "config": {...}, "seed": int | null,
     "versions": {"labelsplat", "torch", "numpy", "python"}}

Pooled documents (aggregates over scenes) sum the confusion counts of each labelling; they
carry ``"pooled_from": [source names]`` and keep each source's consistency under
``consistency.per_source``.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy

from .. import SCHEMA_VERSION, __version__
from ..errors import LabelsplatError
from ..io import atomic_write_json, read_json
from .scores import LabellingScores


def versions() -> dict[str, str | None]:
    """Versions of labelsplat, torch, numpy and Python (torch read from package metadata, not imported)."""
    def v(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {"labelsplat": __version__, "torch": v("torch"), "numpy": numpy.__version__, "python": platform.python_version()}


def metrics_document(
    labellings: Mapping[str, dict | LabellingScores],
    *,
    consistency: dict | None = None,
    config: dict | None = None,
    seed: int | None = None,
) -> dict:
    """Assemble a metrics.json document from labelling records L (or accumulators)."""
    labs: dict[str, dict] = {}
    for name, lab in labellings.items():
        if isinstance(lab, LabellingScores):
            lab = lab.to_dict()
        if not isinstance(lab, dict) or "overall" not in lab or "confusion" not in lab:
            raise LabelsplatError(f"labelling {name!r} is not a labelling record (needs 'overall' and 'confusion')")
        labs[str(name)] = lab
    return {
        "schema_version": SCHEMA_VERSION,
        "labellings": labs,
        "consistency": consistency,
        "config": dict(config or {}),
        "seed": seed,
        "versions": versions(),
    }


def validate_metrics_document(doc: Any, *, source: str | Path | None = None) -> dict:
    """Check the top-level shape of a metrics document; returns it."""
    if not isinstance(doc, dict):
        raise LabelsplatError("a metrics document must be a JSON object", path=source)
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise LabelsplatError(
            f"unsupported metrics schema_version {doc.get('schema_version')!r} (expected {SCHEMA_VERSION})", path=source
        )
    labs = doc.get("labellings")
    if not isinstance(labs, dict):
        raise LabelsplatError("metrics document lacks a 'labellings' object", path=source)
    for name, lab in labs.items():
        if not isinstance(lab, dict) or "overall" not in lab or "confusion" not in lab:
            raise LabelsplatError(f"labelling {name!r} lacks 'overall' or 'confusion'", path=source)
    return doc


def pool_metrics_documents(
    docs: Sequence[dict],
    *,
    names: Sequence[str] | None = None,
    config: dict | None = None,
    seed: int | None = None,
) -> dict:
    """Pool several metrics documents (e.g. one per scene) by summing confusion counts.

    Each labelling name is pooled over the documents that contain it; its record gets
    ``num_sources``. ``names`` label the sources (default ``source_0``, ...).
    """
    docs = list(docs)
    if not docs:
        raise LabelsplatError("nothing to pool: no metrics documents given")
    src_names = [f"source_{i}" for i in range(len(docs))] if names is None else [str(n) for n in names]
    if len(src_names) != len(docs):
        raise LabelsplatError(f"{len(src_names)} names for {len(docs)} metrics documents")
    groups: dict[str, list[LabellingScores]] = {}
    for doc, src in zip(docs, src_names):
        validate_metrics_document(doc, source=src)
        for lab_name, lab in doc["labellings"].items():
            groups.setdefault(lab_name, []).append(LabellingScores.from_dict(lab, source=f"{src}: {lab_name}"))
    pooled: dict[str, dict] = {}
    for lab_name, items in groups.items():
        rec = LabellingScores.pool(items).to_dict()
        rec["num_sources"] = len(items)
        pooled[lab_name] = rec
    per_source = {src: doc.get("consistency") for doc, src in zip(docs, src_names) if doc.get("consistency") is not None}
    out = metrics_document(
        pooled,
        consistency={"per_source": per_source} if per_source else None,
        config=config if config is not None else {"pooled": True},
        seed=seed,
    )
    out["pooled_from"] = src_names
    return out


def write_metrics(path: str | Path, doc: dict) -> Path:
    """Validate and write a metrics document atomically (JSON, no NaN)."""
    validate_metrics_document(doc, source=path)
    return atomic_write_json(path, doc)


def read_metrics(path: str | Path) -> dict:
    """Read and validate a metrics.json."""
    return validate_metrics_document(read_json(path), source=path)
