"""Pins: results that a refactor must not move.

The demo's refined confusion matrix and a ``micro`` fit's PLY are deterministic on the CPU
backend. A change that moves them on purpose (a new default, a changed order of float
operations) re-pins them in the same commit and says why; a refactor keeps them.
"""

from __future__ import annotations

import hashlib


# sha256 of RUN/point_cloud.ply of the pipeline tests' shared micro refine (tests/pipeline/conftest.py)
MICRO_PLY_SHA256 = "b0c6728975446db580c0a62f5aad8d0fc1accc46aec94e6ee11b7af719b68164"


def test_micro_fit_ply_is_pinned(refined):
    ply = refined / "scenes" / "head_000" / "run" / "point_cloud.ply"
    digest = hashlib.sha256(ply.read_bytes()).hexdigest()
    assert digest == MICRO_PLY_SHA256, f"the micro fit's PLY changed: sha256 {digest}"
