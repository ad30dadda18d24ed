"""Shared fixtures of the benchmark-script tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmarks/paper_loop.py")`` -> that script imported as a module (named after
    its file, registered in ``sys.modules``: dataclasses resolve string annotations through it)."""

    def load(relpath: str):
        path = ROOT / relpath
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = mod
        spec.loader.exec_module(mod)
        return mod

    return load
