"""Real captures: a phone video or a folder of photos -> a canonical scene (``labelsplat capture``).

* :mod:`.frames`: PyAV decoding, sharpness (variance of the Laplacian), sharp evenly spread frames
* :mod:`.sfm`: pycolmap structure from motion (CPU)
* :mod:`.headframe`: landmark triangulation, template fit, normalisation to the synthetic heads' frame (cm)
* :mod:`.align`: :class:`Similarity`, :func:`umeyama`, :func:`align_cameras`
* :mod:`.pipeline`: :class:`CaptureConfig`, :func:`capture`

pycolmap and av are the ``[capture]`` extra; they are imported only when used.
"""

from __future__ import annotations

from .align import CameraAlignment, Similarity, align_cameras, rotation_angle_deg, umeyama
from .frames import select_sharp, sharpness
from .headframe import TEMPLATE_CM, fit_template, head_frame_from_landmarks, head_frame_normalisation, triangulate
from .pipeline import CaptureConfig, capture
from .sfm import SfmConfig

__all__ = [
    "CameraAlignment", "CaptureConfig", "SfmConfig", "Similarity", "TEMPLATE_CM", "align_cameras", "capture",
    "fit_template", "head_frame_from_landmarks", "head_frame_normalisation", "rotation_angle_deg", "select_sharp",
    "sharpness", "triangulate", "umeyama",
]
