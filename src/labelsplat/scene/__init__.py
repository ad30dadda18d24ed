"""Cameras, frames, the head frame and scene formats (DESIGN.md "Scene directory")."""

from .camera import YAW_BINS, Camera, HeadFrame, is_extreme, look_at, yaw_bin, yaw_pitch
from .format import TRANSFORMS, Frame, Scene, load_scene, save_scene

__all__ = [
    "Camera", "HeadFrame", "Frame", "Scene", "TRANSFORMS", "YAW_BINS",
    "is_extreme", "look_at", "yaw_bin", "yaw_pitch", "load_scene", "save_scene",
]
