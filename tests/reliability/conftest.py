"""Fixtures for the reliability tests: one tiny synthetic scene (session) and helpers that
check a failed command's output (exit code, one readable message, no traceback)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """A 6-view 48x48 synthetic head (noisy labels, masks, GT labels, head frame). Read-only: copy it."""
    from labelsplat.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("rel_scene")
    synthesize(root, SynthConfig(identities=1, views=6, rig="facescape", resolution=48, noise="simulated:high", seed=3))
    return root / "head_000"


@pytest.fixture
def scene(tiny_scene, tmp_path) -> Path:
    """A private copy of :func:`tiny_scene` the test may break."""
    dst = tmp_path / "scene"
    shutil.copytree(tiny_scene, dst)
    return dst


def snapshot(path: Path) -> dict[str, bytes] | None:
    """Every file under ``path`` with its bytes (None when ``path`` does not exist)."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_clean_error(result, *needles: str, code: int = 2, fix: bool = True) -> str:
    """A refused command: exit ``code``, one ``error:`` message containing every needle, a fix, no traceback."""
    out = result.output
    assert result.exit_code == code, f"exit {result.exit_code} != {code}\n{out}"
    assert "Traceback" not in out, out
    assert "internal error" not in out, out
    assert out.count("error:") == 1, out
    for n in needles:
        assert n in out, f"{n!r} not in the message:\n{out}"
    if fix:
        assert "fix:" in out, f"the message gives no fix:\n{out}"
    log = os.environ.get("RELIABILITY_MESSAGES")  # docs/errors.md is written from these real messages
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                                 "exit": result.exit_code, "output": out}) + "\n")
    return out
