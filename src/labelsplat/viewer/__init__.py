"""The live web viewer of a fitted run or a 3DGS PLY (``labelsplat view``, docs/usage/viewer.md).

:mod:`.core` holds everything that works without a browser (the render callback, cameras, the
edit session, saved views); :mod:`.server` wires it to viser (the ``[viewer]`` extra, imported
only when a server starts).
"""

from .core import (MODES, YAW_PRESETS, EditSession, Source, ViewSettings, camera_from_pose, compose,
                   default_save_dir, open_source, pose_of, render_view, save_view, view_images, yaw_camera)

__all__ = ["EditSession", "MODES", "Source", "ViewSettings", "YAW_PRESETS", "camera_from_pose", "compose",
           "default_save_dir", "open_source", "pose_of", "render_view", "save_view", "view_images", "yaw_camera"]
