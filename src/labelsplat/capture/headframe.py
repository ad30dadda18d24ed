"""The head frame of a capture and its normalisation to the synthetic heads' frame and units.

Synthetic heads (``labelsplat.synth``) live in the head frame of docs/design.md in centimetres. A
capture's reconstruction has an arbitrary frame and scale, so :func:`normalisation` builds the
similarity ``N`` (reconstruction -> scene) that puts the head centre at the origin, the head's
axes on x = subject's left, y = up, z = forward, and the unit at 1 cm: the written scene's
``head_frame`` is then the identity and yaw/pitch mean what they mean on synthetic data.

Where the head frame comes from:

* given (``--head-frame JSON``): ``center``, ``up``, ``forward`` in the reconstruction's frame,
  plus optional ``scale`` = reconstruction units per centimetre. Without ``scale`` the unit is
  set so the median camera-to-head-centre distance is :data:`DEFAULT_DISTANCE_CM` (a typical
  arm's-length phone orbit; approximate).
* face landmarks: eye centres, nose tip and chin detected in each view (the landmark parser),
  triangulated across views (linear DLT), and fitted with a similarity to
  :data:`TEMPLATE_CM` (the same four points on the synthetic heads, mean over identities) — this
  gives the centre, axes and scale at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import LabelsplatError
from ..scene import Camera, HeadFrame
from .align import Similarity, umeyama

#: median camera distance (cm) assumed when a given head frame has no scale (synth rigs: 60 cm)
DEFAULT_DISTANCE_CM = 60.0

#: head-frame positions (cm, relative to the head centre) of the subject's left eye centre, right
#: eye centre, nose tip and chin on the synthetic heads (ICT-FaceKit 68-landmark ids 42-47 mean,
#: 36-41 mean, 30, 8; mean over 8 identities, mirrored symmetric). Inter-ocular distance 6.6 cm.
TEMPLATE_NAMES = ("left_eye", "right_eye", "nose_tip", "chin")
TEMPLATE_CM = np.array([
    [3.30, 1.47, 8.23],
    [-3.30, 1.47, 8.23],
    [0.00, -1.69, 12.18],
    [0.00, -10.29, 9.13],
])

#: MediaPipe face-mesh (478 points with irises) indices of the template points: iris centres
#: 473 / 468 (MediaPipe's "left" = subject's left), nose tip 1, chin 152. Which eye is which is
#: re-checked geometrically (:func:`fit_template`), so a swapped convention cannot mirror the head.
MEDIAPIPE_IDS = (473, 468, 1, 152)


def head_frame_normalisation(head: HeadFrame, units_per_cm: float) -> Similarity:
    """Reconstruction -> scene similarity: head centre to the origin, (left, up, forward) to
    (x, y, z), ``units_per_cm`` reconstruction units to 1."""
    if not (np.isfinite(units_per_cm) and units_per_cm > 0):
        raise LabelsplatError(f"head frame scale must be a positive number (units per cm), got {units_per_cm}")
    s = 1.0 / float(units_per_cm)
    R = head.rotation
    return Similarity(s, R, -s * (R @ head.center))


def scale_from_cameras(head: HeadFrame, cameras: Sequence[Camera], distance_cm: float = DEFAULT_DISTANCE_CM) -> float:
    """Reconstruction units per cm such that the median camera-to-head-centre distance is ``distance_cm``."""
    d = np.median([np.linalg.norm(c.center - head.center) for c in cameras])
    if not (np.isfinite(d) and d > 0):
        raise LabelsplatError("cannot set the scale: the cameras sit at the head centre")
    return float(d / distance_cm)


def triangulate(cameras: Sequence[Camera], uv: np.ndarray) -> tuple[np.ndarray, float]:
    """Linear (DLT) triangulation of one point seen at pixel coordinates ``uv`` (V, 2) (pixel-
    centre convention, NaN rows = not seen) by ``cameras`` (V). Returns (point (3,), RMS
    reprojection error in px over the views that saw it). Needs >= 2 views."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    if len(uv) != len(cameras):
        raise LabelsplatError(f"triangulate: {len(uv)} observations for {len(cameras)} cameras")
    ok = np.all(np.isfinite(uv), axis=1)
    if ok.sum() < 2:
        raise LabelsplatError(f"triangulate: the point is seen in {int(ok.sum())} view(s), needs 2")
    rows = []
    for cam, (u, v), use in zip(cameras, uv, ok):
        if not use:
            continue
        P = cam.K @ cam.w2c_opencv[:3]
        rows.append(u * P[2] - P[0])
        rows.append(v * P[2] - P[1])
    A = np.array(rows)
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(A)
    X = vt[-1]
    if abs(X[3]) < 1e-12:
        raise LabelsplatError("triangulate: the point is at infinity (views too close together)")
    X = X[:3] / X[3]
    errs = []
    for cam, obs, use in zip(cameras, uv, ok):
        if use:
            p, _ = cam.project(X[None])
            errs.append(float(np.sum((p[0] - obs) ** 2)))
    return X, float(np.sqrt(np.mean(errs)))


@dataclass(frozen=True)
class TemplateFit:
    """The template (head frame, cm) -> reconstruction similarity and its fit quality."""

    similarity: Similarity
    rms_cm: float
    points: np.ndarray  # (4, 3) triangulated template points (reconstruction frame)
    reprojection_px: tuple[float, ...]

    @property
    def head_frame(self) -> HeadFrame:
        s = self.similarity
        return HeadFrame(s.t, s.R @ np.array([0.0, 1.0, 0.0]), s.R @ np.array([0.0, 0.0, 1.0]))

    @property
    def units_per_cm(self) -> float:
        return self.similarity.scale


def fit_template(points: np.ndarray) -> tuple[Similarity, float]:
    """Fit :data:`TEMPLATE_CM` to four reconstructed points (left eye, right eye, nose tip, chin)
    with a similarity; the eyes are also tried swapped (a detector's left/right convention may
    be the image's), keeping the better fit. Returns (template -> points similarity, RMS residual in cm)."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 3)
    best = None
    for order in ((0, 1, 2, 3), (1, 0, 2, 3)):
        sim = umeyama(TEMPLATE_CM, pts[list(order)], with_scale=True)
        res = np.linalg.norm(sim.apply(TEMPLATE_CM) - pts[list(order)], axis=1) / sim.scale
        rms = float(np.sqrt(np.mean(res**2)))
        if best is None or rms < best[1]:
            best = (sim, rms)
    return best


def head_frame_from_landmarks(cameras: Sequence[Camera], landmarks: Sequence[np.ndarray | None], *,
                              ids: Sequence[int] = MEDIAPIPE_IDS, min_views: int = 3,
                              max_rms_cm: float = 2.5) -> TemplateFit:
    """Head frame and scale from per-view face landmarks.

    ``landmarks[k]``: (L, 2+) pixel coordinates of view ``k`` (pixel-centre convention; extra
    columns ignored) or None when no face was found; ``ids`` picks the left eye, right eye, nose
    tip and chin rows. Each point is triangulated over the views that found a face, then the
    synthetic template is fitted. Errors (:class:`LabelsplatError`) when fewer than ``min_views``
    views have a face, or the fit is poor (RMS > ``max_rms_cm``: landmarks inconsistent between
    views, e.g. a wrong reconstruction or a moving subject).
    """
    if len(landmarks) != len(cameras):
        raise LabelsplatError(f"{len(landmarks)} landmark sets for {len(cameras)} cameras")
    found = [k for k, lm in enumerate(landmarks) if lm is not None]
    if len(found) < min_views:
        raise LabelsplatError(
            f"a face was found in only {len(found)} of {len(cameras)} frames (needs {min_views}); the head frame cannot be estimated",
            hint="film the face from the front and both sides in even light (frontal frames are needed), "
                 "or give the head frame with --head-frame JSON")
    cams = [cameras[k] for k in found]
    pts, reproj = [], []
    for j in ids:
        uv = []
        for k in found:
            lm = np.asarray(landmarks[k], dtype=np.float64)
            if lm.ndim != 2 or lm.shape[1] < 2 or lm.shape[0] <= j:
                raise LabelsplatError(f"landmarks of view {k} have shape {lm.shape}; need at least {j + 1} rows of (u, v)")
            uv.append(lm[j, :2])
        X, err = triangulate(cams, np.array(uv))
        pts.append(X)
        reproj.append(err)
    pts = np.array(pts)
    sim, rms = fit_template(pts)
    if rms > max_rms_cm:
        raise LabelsplatError(
            f"the triangulated face landmarks do not look like a face (template fit RMS {rms:.1f} cm, "
            f"reprojection {max(reproj):.1f} px); the head frame cannot be estimated",
            hint="keep the subject still during the capture, or give the head frame with --head-frame JSON")
    return TemplateFit(sim, rms, pts, tuple(reproj))
