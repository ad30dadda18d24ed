"""The quality benchmark's tables: per seed and mean, and the difference to another results file."""

from __future__ import annotations

from benchmarks import quality_table as qt


def _labelling(miou: float) -> dict:
    bins = {b: {"miou": miou, "mean_f1": miou} for b in ("0-30", "30-60", "60-90", "90-180")}
    part = {"overall": {"miou": miou, "mean_f1": miou}, "by_yaw": bins}
    return {**part, "boundary_excluded": part}


def _doc(refined: float, ceiling: float | None) -> dict:
    cells = {}
    for seed in (0, 1):
        L = {"initial": _labelling(0.5), "refined": _labelling(refined + seed / 100)}
        if ceiling is not None:
            L.update(ceiling=_labelling(ceiling), ceiling_raw=_labelling(ceiling))
        cells[f"main/none/seed{seed}"] = {"seed": seed, "labellings": L}
    return {"settings": {"semantic_grad": "none"}, "cells": cells}


def test_tables_with_and_without_the_ceiling():
    with_ceiling = qt.table(_doc(0.8, 0.9))
    assert "| mean | refined mIoU | **0.805** [0.800..0.810]" in with_ceiling and "ceiling - refined" in with_ceiling
    # a run without exact-label fits (--no-ceiling) still gets its table and its difference to another run
    without = qt.table(_doc(0.82, None))
    assert "ceiling" not in without and "| 1 | refined - initial | +0.330" in without
    diff = qt.against(_doc(0.82, None), _doc(0.8, 0.9))
    assert "| 0 | refined mIoU | +0.0200" in diff and "ceiling" not in diff
