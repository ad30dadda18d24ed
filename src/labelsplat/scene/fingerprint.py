"""What a run was fitted to: a scene fingerprint stored in every run (the fit's checkpoints and
run.json, refine's DONE.json) and compared on ``--resume``, so a run never continues on another
scene that merely shares its frame names.

The fingerprint holds the label scheme, a hash of the cameras (frame names, intrinsics, sizes,
camera-to-world matrices) and of the head frame, and the size and sha256 of every file the scene
references (images, labels, masks, ground truth, point cloud). :func:`fingerprint_diff` says in
words what differs between two fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .format import FRAME_PATH_KEYS, Scene

FINGERPRINT_VERSION = 1


#: sha256 of the files hashed in this process, keyed by (resolved path, size, mtime_ns): a refine
#: fingerprints its scene in the input check and again in the fit, and each file is read once.
_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_MAX = 100_000


def _sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    cached = _HASHES.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if len(_HASHES) >= _HASHES_MAX:
        _HASHES.clear()
    _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _hash_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=lambda o: np.asarray(o).tolist())
    return hashlib.sha256(text.encode()).hexdigest()


def _camera_doc(scene: Scene) -> list:
    def r(x: float) -> float:
        return round(float(x), 9)

    return [[f.name, r(c.fx), r(c.fy), r(c.cx), r(c.cy), int(c.width), int(c.height),
             [[r(v) for v in row] for row in c.c2w.tolist()]] for f in scene.frames for c in [f.camera]]


def scene_fingerprint(scene: Scene) -> dict[str, Any]:
    """The scene's fingerprint (reads every referenced file to hash it, once per process while the file
    keeps its size and modification time)."""
    rels = sorted({rel for f in scene.frames for k in FRAME_PATH_KEYS if (rel := getattr(f, k))}
                  | ({scene.ply_file_path} if scene.ply_file_path else set()))
    files: dict[str, dict[str, Any]] = {}
    for rel in rels:
        p = scene.path(rel)
        try:
            files[rel] = {"bytes": p.stat().st_size, "sha256": _sha256_file(p)} if p.is_file() else {"missing": True}
        except OSError:
            files[rel] = {"missing": True}
    head = scene.head_frame.to_dict() if scene.head_frame is not None else None
    return {"version": FINGERPRINT_VERSION, "label_scheme": scene.label_scheme, "n_frames": len(scene.frames),
            "cameras": _hash_json(_camera_doc(scene)), "head_frame": None if head is None else _hash_json(head),
            "files": files}


def fingerprint_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between a stored fingerprint and the scene's, in words (empty: the same scene).
    A missing or unknown stored fingerprint (runs written before it existed) compares equal."""
    if not isinstance(old, dict) or old.get("version") != FINGERPRINT_VERSION:
        return []
    out = []
    if old.get("label_scheme") != new["label_scheme"]:
        out.append(f"the label scheme ({old.get('label_scheme')} -> {new['label_scheme']})")
    if old.get("n_frames") != new["n_frames"]:
        out.append(f"the number of frames ({old.get('n_frames')} -> {new['n_frames']})")
    if old.get("cameras") != new["cameras"]:
        out.append("the cameras (names, intrinsics or poses)")
    if old.get("head_frame") != new["head_frame"]:
        out.append("the head frame")
    a, b = old.get("files") or {}, new["files"]
    changed = []
    for rel in sorted(set(a) | set(b)):
        if rel not in a:
            changed.append(f"{rel} (new)")
        elif rel not in b:
            changed.append(f"{rel} (no longer used)")
        elif a[rel].get("bytes") != b[rel].get("bytes"):
            changed.append(f"{rel} (size {a[rel].get('bytes')} -> {b[rel].get('bytes')} bytes)")
        elif a[rel] != b[rel]:
            changed.append(f"{rel} (content)")
    if changed:
        shown = ", ".join(changed[:3]) + (f" (+{len(changed) - 3} more)" if len(changed) > 3 else "")
        out.append(f"{len(changed)} input file(s): {shown}")
    return out


__all__ = ["FINGERPRINT_VERSION", "fingerprint_diff", "scene_fingerprint"]
