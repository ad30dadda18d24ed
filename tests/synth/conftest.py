"""Shared, cached synthetic heads for the synth tests (tiny sizes)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def head_params():
    """A head with an open mouth (so the inner mouth is visible frontally) and no blink."""
    from labelsplat.synth.head import sample_head

    p = sample_head(11)
    p.expression = {"jawOpen": 0.35, "mouthSmile_L": 0.3}
    return p


@pytest.fixture(scope="session")
def head_mesh(head_params):
    from labelsplat.synth.head import build_head

    return build_head(head_params)


@pytest.fixture(scope="session")
def frontal(head_mesh):
    """(camera, render) of a frontal 128x128 view."""
    from labelsplat.synth.render import render_head
    from labelsplat.synth.rigs import camera_at

    cam = camera_at(0.0, 0.0, resolution=128)
    return cam, render_head(head_mesh, cam)
