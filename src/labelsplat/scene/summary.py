"""A plain-data summary of a scene (what ``labelsplat scene info`` prints)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .camera import YAW_BINS, is_extreme, yaw_bin, yaw_pitch
from .format import Scene


def scene_summary(scene: Scene, warnings: list[str] | None = None) -> dict[str, Any]:
    """Frames, resolutions, scheme, head frame, yaw/pitch ranges and |yaw| bin counts, optional paths.

    Yaw/pitch follow docs/design.md (degrees; yaw + = the subject's left); they are ``None`` without
    a head frame. ``optional`` counts frames having each optional path, and whether the point
    cloud file exists.
    """
    res = Counter(f"{f.camera.width}x{f.camera.height}" for f in scene.frames)
    out: dict[str, Any] = {
        "name": scene.name,
        "root": str(scene.root),
        "frames": len(scene.frames),
        "label_scheme": scene.label_scheme,
        "resolutions": dict(sorted(res.items(), key=lambda kv: -kv[1])),
        "head_frame": scene.head_frame.to_dict() if scene.head_frame is not None else None,
        "yaw_range": None,
        "pitch_range": None,
        "yaw_bins": None,
        "extreme_views": None,
    }
    if scene.head_frame is not None:
        yp = np.array([yaw_pitch(f.camera.center, scene.head_frame) for f in scene.frames])
        out["yaw_range"] = [float(yp[:, 0].min()), float(yp[:, 0].max())]
        out["pitch_range"] = [float(yp[:, 1].min()), float(yp[:, 1].max())]
        bins = Counter(yaw_bin(y) for y in yp[:, 0])
        out["yaw_bins"] = {name: int(bins.get(name, 0)) for name, _, _ in YAW_BINS}
        out["extreme_views"] = int(sum(is_extreme(y, p) for y, p in yp))
    out["optional"] = {
        "label_path": sum(1 for f in scene.frames if f.label_path),
        "gt_label_path": sum(1 for f in scene.frames if f.gt_label_path),
        "mask_path": sum(1 for f in scene.frames if f.mask_path),
        "distortion_removed": sum(1 for f in scene.frames if f.extra.get("distortion_removed")),
        "ply_file_path": scene.ply_file_path,
        "ply_exists": bool(scene.ply_file_path and scene.path(scene.ply_file_path).is_file()),
    }
    if isinstance(scene.extra.get("import"), dict):
        out["import"] = scene.extra["import"]
    out["warnings"] = list(warnings or [])
    return out
