"""Put several results files of one benchmark into one file, each under its own run name.

A table in the docs that compares repeated runs (the same benchmark on another day, another
load, another code state) reads one file. ``merge_results`` writes::

    {"schema_version": 1, "benchmark": NAME, "runs": {RUN: <the run's results file, unchanged>, ...}}

Usage (from the repository root)::

    python -m benchmarks.merge_results OUT.json RUN=FILE.json [RUN=FILE.json ...] [--benchmark NAME]

A file that is already merged can be given again: its runs are copied under ``RUN/<its run>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SCHEMA_VERSION = 1


def merge(named: dict[str, dict], benchmark: str | None = None) -> dict:
    """One merged document of the results documents ``named`` (run name -> document)."""
    runs: dict[str, dict] = {}
    for name, doc in named.items():
        if "/" in name or not name:
            raise ValueError(f"run names are plain words, got {name!r}")
        if doc.get("merged") and isinstance(doc.get("runs"), dict):
            for sub, sub_doc in doc["runs"].items():
                runs[f"{name}/{sub}"] = sub_doc
        else:
            runs[name] = doc
    if benchmark is None:
        names = {d.get("benchmark") for d in runs.values() if isinstance(d, dict)} - {None}
        benchmark = names.pop() if len(names) == 1 else None
    return {"schema_version": SCHEMA_VERSION, "benchmark": benchmark, "merged": True, "runs": runs}


def runs_of(doc: dict) -> dict[str, dict]:
    """The runs of a results document: its ``runs`` when merged, else ``{"": doc}``."""
    if doc.get("merged") and isinstance(doc.get("runs"), dict):
        return dict(doc["runs"])
    return {"": doc}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", nargs="+", metavar="RUN=FILE")
    ap.add_argument("--benchmark", default=None, help="benchmark name (default: the inputs' common one)")
    args = ap.parse_args(argv)
    named = {}
    for item in args.runs:
        if "=" not in item:
            ap.error(f"expected RUN=FILE, got {item!r}")
        name, path = item.split("=", 1)
        named[name] = json.loads(Path(path).read_text(encoding="utf-8"))
    doc = merge(named, args.benchmark)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {', '.join(doc['runs'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
