"""Cameras, frames, the head frame and scene formats (docs/design.md "Scene directory")."""

from .camera import YAW_BINS, Camera, HeadFrame, is_extreme, look_at, yaw_bin, yaw_pitch
from .distortion import Distortion, undistort_image, undistort_label
from .format import TRANSFORMS, Frame, Scene, load_scene, save_scene
from .headframe import estimate_head_frame, parse_head_frame
from .importers import FORMATS as IMPORT_FORMATS
from .importers import import_scene
from .summary import scene_summary
from .validate import validate_scene

__all__ = [
    "Camera", "HeadFrame", "Frame", "Scene", "TRANSFORMS", "YAW_BINS", "Distortion", "IMPORT_FORMATS",
    "is_extreme", "look_at", "yaw_bin", "yaw_pitch", "load_scene", "save_scene",
    "estimate_head_frame", "parse_head_frame", "import_scene", "validate_scene", "scene_summary",
    "undistort_image", "undistort_label",
]
