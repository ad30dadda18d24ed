"""Synthetic multiview heads with exact per-pixel labels, and initial-parser noise models.

Heads come from the packaged ICT-FaceKit light model (MIT) plus procedural hair and cloth, built
in the head frame of docs/design.md (cm). Public API:

* :func:`sample_head` / :class:`HeadParams` (``synth.json``) / :func:`build_head` -> :class:`HeadMesh`
* :func:`render_head` (one camera) -> :class:`RenderResult`; :func:`render_views` (many, with noise)
* rigs: :func:`rig_cameras`, :func:`camera_at`; noise: :func:`parse_noise`, :func:`apply_noise`
* scenes: :func:`synthesize`, :func:`synthesize_scene`, :func:`load_head`, :func:`render_like`

Heavy pieces (numba) are imported lazily by the submodules that need them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "HeadParams": "head", "HeadMesh": "head", "sample_head": "head", "build_head": "head", "HEAD_CENTER": "head",
    "RenderResult": "render", "render_head": "render",
    "RigConfig": "rigs", "RIGS": "rigs", "rig_cameras": "rigs", "camera_at": "rigs",
    "NOISE_MODELS": "noise", "NoiseSpec": "noise", "parse_noise": "noise", "apply_noise": "noise",
    "severity": "noise",
    "SynthConfig": "scene", "synthesize": "scene", "synthesize_scene": "scene",
    "load_head": "scene", "load_synth": "scene", "render_views": "scene", "render_like": "scene",
    "head_frame": "scene",
    "triangle_labels": "regions", "vertex_labels": "regions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        # lazy: numba (the rasteriser) loads only with the names that need it
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
