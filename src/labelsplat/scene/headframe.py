"""The head frame of a scene: parse a given one, or estimate it from a frontal-hemisphere rig.

The estimate (docs/design.md "Conventions") assumes the cameras surround the *front* of the head and
look at it, as in FaceScape / NeRSemble style capture domes:

* centre  = the least-squares point closest to all optical axes (the rig's look-at point);
* forward = the mean unit direction from that centre to the cameras (out of the face);
* up      = the mean camera up vector (image "up", the camera's +y in OpenGL), made
  orthogonal to forward; cameras mounted in portrait or upside down are snapped to whichever of
  their +-x / +-y axes agrees with the majority first.

This is only correct when the subject faces the middle of the rig; an asymmetric rig biases
forward toward its denser side. A rig spanning more than a hemisphere (a 360-degree orbit) has
no "front", so the estimate is refused: pass the head frame explicitly there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import LabelsplatError
from ..io import read_json
from .camera import Camera, HeadFrame, yaw_pitch

#: cameras more than this many degrees from the mean viewing direction mean "not a frontal rig"
MAX_ANGLE_FROM_MEAN_DEG = 100.0
#: mean resultant length of the centre->camera directions below this means "surrounding rig"
MIN_RESULTANT_LENGTH = 0.3


@dataclass(frozen=True)
class HeadFrameEstimate:
    """An estimated head frame and the statistics the refusal test used."""

    head: HeadFrame
    resultant_length: float  # |mean unit direction centre->camera|, 1 = all cameras on one ray
    max_angle_deg: float  # largest angle between a camera direction and forward
    axis_rms: float  # RMS distance of the optical axes from the centre (scene units)
    rolled_cameras: int = 0  # cameras whose image-up is their -y or +-x axis (portrait / upside-down)


def estimate_head_frame_detailed(cameras: Sequence[Camera], *, source: str | Path | None = None) -> HeadFrameEstimate:
    """Estimate the head frame from camera poses (see the module docstring); refuse 360 rigs."""
    cams = list(cameras)
    hint = "pass the head frame explicitly: --head-frame '{\"center\": [x,y,z], \"up\": [..], \"forward\": [..]}'"
    if len(cams) < 2:
        raise LabelsplatError("cannot estimate the head frame from fewer than 2 cameras", path=source, hint=hint)
    centers = np.stack([c.center for c in cams])
    dirs = np.stack([c.forward for c in cams])
    eye = np.eye(3)
    projs = eye[None] - dirs[:, :, None] * dirs[:, None, :]  # (N, 3, 3) projectors orthogonal to each axis
    A = projs.sum(0)
    b = np.einsum("nij,nj->i", projs, centers)
    evals = np.linalg.eigvalsh(A)
    if evals[0] < 1e-6 * len(cams):
        raise LabelsplatError(
            "cannot estimate the head frame: the cameras' optical axes are (nearly) parallel, so they have no common look-at point",
            path=source,
            hint=hint,
        )
    center = np.linalg.solve(A, b)
    resid = np.einsum("nij,nj->ni", projs, center[None] - centers)
    axis_rms = float(np.sqrt(np.mean(np.sum(resid**2, axis=1))))
    ahead = np.einsum("ni,ni->n", center[None] - centers, dirs)
    if np.any(ahead <= 0):
        bad = int(np.argmin(ahead))
        raise LabelsplatError(
            f"cannot estimate the head frame: the look-at point is behind camera {bad} (the cameras do not all face a common point)",
            path=source,
            hint=hint,
        )
    to_cam = centers - center
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    mean = to_cam.mean(0)
    r = float(np.linalg.norm(mean))
    if r < MIN_RESULTANT_LENGTH:
        raise LabelsplatError(
            f"360-degree orbit: the cameras surround the head (mean resultant length {r:.2f} < {MIN_RESULTANT_LENGTH}), "
            "so the face direction cannot be estimated from them",
            path=source,
            hint=hint,
        )
    forward = mean / r
    angles = np.degrees(np.arccos(np.clip(to_cam @ forward, -1.0, 1.0)))
    max_angle = float(angles.max())
    if max_angle > MAX_ANGLE_FROM_MEAN_DEG:
        raise LabelsplatError(
            f"360-degree orbit: camera {int(angles.argmax())} is {max_angle:.0f} degrees from the mean viewing direction "
            f"(more than {MAX_ANGLE_FROM_MEAN_DEG:.0f}), so the rig is not a frontal hemisphere",
            path=source,
            hint=hint,
        )
    # Each camera's image-up could be any of its +-y / +-x axes (portrait-mounted or upside-down
    # cameras): snap every camera to the axis closest to the current estimate, re-average.
    ys = np.stack([c.c2w[:3, 1] / np.linalg.norm(c.c2w[:3, 1]) for c in cams])
    xs = np.stack([c.c2w[:3, 0] / np.linalg.norm(c.c2w[:3, 0]) for c in cams])
    cands = np.stack([ys, -ys, xs, -xs], axis=1)  # (N, 4, 3)
    up = ys.mean(0)
    pick = np.zeros(len(cams), dtype=np.int64)
    for _ in range(10):
        up = up - forward * (up @ forward)
        if np.linalg.norm(up) < 1e-9:
            break
        new_pick = np.argmax(cands @ (up / np.linalg.norm(up)), axis=1)
        up = cands[np.arange(len(cams)), new_pick].mean(0)
        if np.array_equal(new_pick, pick):
            break
        pick = new_pick
    up = up - forward * (up @ forward)
    rolled = int(np.count_nonzero(pick))
    if np.linalg.norm(up) < 0.2:
        raise LabelsplatError(
            "cannot estimate the head frame: the cameras' up vectors disagree (rolled cameras), so 'up' is undefined",
            path=source,
            hint=hint,
        )
    head = HeadFrame(center, up, forward)
    return HeadFrameEstimate(
        head=head, resultant_length=r, max_angle_deg=max_angle, axis_rms=axis_rms, rolled_cameras=rolled
    )


def estimate_head_frame(cameras: Sequence[Camera], *, source: str | Path | None = None) -> HeadFrame:
    """:func:`estimate_head_frame_detailed` returning only the :class:`HeadFrame`."""
    return estimate_head_frame_detailed(cameras, source=source).head


def _from_mapping(d: Any, where: str | Path | None) -> HeadFrame:
    if isinstance(d, dict) and "head_frame" in d and isinstance(d["head_frame"], dict):
        d = d["head_frame"]
    if not isinstance(d, dict):
        raise LabelsplatError("a head frame must be a JSON object {center, up, forward}", path=where)
    missing = [k for k in ("center", "up", "forward") if k not in d]
    if missing:
        raise LabelsplatError(f"head frame is missing key(s) {missing}; expected center, up, forward", path=where)
    for key in ("center", "up", "forward"):
        v = d[key]
        ok = isinstance(v, (list, tuple)) and len(v) == 3
        ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        if not ok:
            raise LabelsplatError(f"head frame '{key}' must be three finite numbers, got {v!r}", path=where)
    try:
        return HeadFrame.from_dict(d)
    except LabelsplatError as exc:
        raise LabelsplatError(exc.message, path=where) from exc


def parse_head_frame(value: HeadFrame | dict | str | Path) -> HeadFrame:
    """A head frame from a :class:`HeadFrame`, a dict, an inline JSON string, or a JSON file path.

    A file may hold the object itself or a scene-like object with a ``head_frame`` key
    (e.g. another scene's ``transforms.json``).
    """
    if isinstance(value, HeadFrame):
        return value
    if isinstance(value, dict):
        return _from_mapping(value, None)
    text = str(value).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text, parse_constant=lambda c: float("nan"))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise LabelsplatError(f"--head-frame is not valid JSON ({str(exc)[:120]})",
                                  hint="quote it: --head-frame '{...}'") from exc
        return _from_mapping(data, "--head-frame")
    path = Path(text)
    if not path.exists():
        raise LabelsplatError(
            "head frame file not found (give a JSON file or an inline JSON object)",
            path=path,
            hint="--head-frame '{\"center\": [0,0,0], \"up\": [0,1,0], \"forward\": [0,0,1]}'",
        )
    return _from_mapping(read_json(path), path)


#: an off-centre yaw/pitch range larger than this (degrees) makes a camera estimate poorly determined
MAX_OFF_CENTRE_DEG = 5.0
#: optical axes missing the centre by more than this fraction of the camera distance: no common look-at point
MAX_LOOK_AT_RESIDUAL = 0.05


@dataclass(frozen=True)
class HeadFrameSpread:
    """How well the cameras pin a head frame down (see :func:`head_frame_spread`)."""

    look_at_residual: float  # RMS distance of the optical axes from the centre (scene units)
    look_at_residual_rel: float  # the same over the median camera-to-centre distance
    yaw_range: tuple[float, float]  # min, max camera yaw in this frame (degrees)
    pitch_range: tuple[float, float]
    yaw_std: float  # spread of the cameras' yaw (degrees)
    yaw_off_centre: float  # middle of the yaw range (0 for a rig centred on forward)
    pitch_off_centre: float
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "look_at_residual": self.look_at_residual, "look_at_residual_rel": self.look_at_residual_rel,
            "yaw_range": list(self.yaw_range), "pitch_range": list(self.pitch_range), "yaw_std": self.yaw_std,
            "yaw_off_centre": self.yaw_off_centre, "pitch_off_centre": self.pitch_off_centre,
            "warnings": list(self.warnings),
        }


def head_frame_spread(cameras: Sequence[Camera], head: HeadFrame, *, from_cameras: bool = False) -> HeadFrameSpread:
    """The cameras' spread around ``head``: look-at residual (how far the optical axes pass from the
    centre), yaw/pitch ranges and spread, and warnings when the frame is poorly determined.

    A frame estimated from the cameras (``from_cameras``) points at the mean camera direction, which an
    asymmetric rig pulls toward its denser side: the offset of the yaw (pitch) range's middle from 0
    measures that pull, and a warning names it. It is a lower bound on the error: a rig that is
    symmetric about a direction the subject did not face cannot be told apart from the cameras alone.
    """
    cams = list(cameras)
    centers = np.stack([c.center for c in cams])
    dirs = np.stack([c.forward for c in cams])
    rel = head.center[None] - centers
    along = np.einsum("ni,ni->n", rel, dirs)
    resid = rel - along[:, None] * dirs
    rms = float(np.sqrt(np.mean(np.sum(resid**2, axis=1))))
    dist = float(np.median(np.linalg.norm(rel, axis=1))) or 1.0
    yp = np.array([yaw_pitch(c.center, head) for c in cams])
    yaw_rng = (float(yp[:, 0].min()), float(yp[:, 0].max()))
    pitch_rng = (float(yp[:, 1].min()), float(yp[:, 1].max()))
    yaw_off, pitch_off = sum(yaw_rng) / 2, sum(pitch_rng) / 2
    warnings = []
    if rms / dist > MAX_LOOK_AT_RESIDUAL:
        warnings.append(f"the optical axes miss the head centre by {rms:.3g} units RMS ({100 * rms / dist:.0f}% of the "
                        "camera distance): the cameras do not look at one point")
    if np.any(along <= 0):
        warnings.append(f"the head centre is behind {int(np.sum(along <= 0))} camera(s)")
    if from_cameras:
        for what, off in (("yaw", yaw_off), ("pitch", pitch_off)):
            if abs(off) > MAX_OFF_CENTRE_DEG:
                warnings.append(
                    f"poorly determined: the estimated forward is {abs(off):.0f} degrees in {what} from the middle of "
                    f"the cameras' {what} range (the mean camera direction leans toward the denser side of the rig); "
                    "the subject's real facing direction is unknown to the cameras: use --from-landmarks or --set")
        if len(cams) < 3:
            warnings.append(f"poorly determined: only {len(cams)} cameras")
    return HeadFrameSpread(rms, rms / dist, yaw_rng, pitch_rng, float(yp[:, 0].std()), yaw_off, pitch_off,
                           tuple(warnings))
