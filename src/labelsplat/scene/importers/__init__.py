"""Importers: FaceScape ``params.json``, COLMAP models (text or binary), NeRSemble ``camera_params.json``,
nerfstudio ``transforms.json``.

One entry point, :func:`import_scene`, writes a canonical scene directory (docs/design.md "Scene
directory"): images and labels copied (or hard-linked) in and undistorted to pinhole, intrinsics
in the pixel-centre convention (OpenCV-convention sources shifted by +0.5 px), cameras kept in
the source's world frame and units, a head frame given or estimated.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import LabelsplatError
from ..camera import HeadFrame
from ..format import Scene
from ._common import ImportReport, SourceView, write_ply_points, write_scene
from .colmap import read_colmap
from .facescape import read_facescape
from .nersemble import read_nersemble
from .nerfstudio import read_nerfstudio

FORMATS = ("facescape", "colmap", "nersemble", "nerfstudio")


def import_scene(
    fmt: str,
    src: str | Path,
    images_dir: str | Path | None,
    out: str | Path,
    labels_dir: str | Path | None = None,
    head_frame: HeadFrame | dict | str | Path | None = None,
    label_scheme: str = "celebamask19-zll",
    link: bool = False,
    *,
    masks_dir: str | Path | None = None,
    overwrite: bool = False,
) -> Scene:
    """Import a calibrated capture as a scene directory at ``out`` and return it.

    ``fmt``: ``facescape`` (``src`` = params.json or its folder; ``images_dir`` defaults to that
    folder), ``colmap`` (``src`` = text or binary model folder; ``images_dir`` required), ``nersemble``
    (``src`` = camera_params.json or its folder; ``images_dir`` required), ``nerfstudio`` (``src`` =
    transforms.json or its folder; image and mask paths are read from it). ``labels_dir``: a
    label PNG per image named ``<image stem>.png`` (ids of ``label_scheme``; 255 = ignore).
    ``head_frame``: a :class:`HeadFrame`, dict, inline JSON or JSON file; ``None`` estimates it
    from the cameras (frontal-hemisphere rigs only). ``link`` hard-links files that need no
    undistortion. An existing non-empty ``out`` is refused unless ``overwrite``.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise LabelsplatError(f"unknown import format {fmt!r}; choose one of {', '.join(FORMATS)}")
    report = ImportReport(format=fmt, source=str(Path(src).resolve()))
    points = None
    if fmt in ("colmap", "nersemble") and images_dir is None:
        raise LabelsplatError(f"--images is required for the {fmt} format")
    if fmt == "facescape":
        views, calib = read_facescape(src, images_dir, report)
    elif fmt == "colmap":
        views, calib, points = read_colmap(src, images_dir, labels_dir, report)
    elif fmt == "nersemble":
        views, calib = read_nersemble(src, images_dir, report)
    else:
        if images_dir is not None:
            raise LabelsplatError("--images is not used by the nerfstudio format: image paths come from transforms.json")
        views, calib = read_nerfstudio(src, report)
    return write_scene(
        views, out, report=report, calib_path=calib, labels_dir=labels_dir, masks_dir=masks_dir,
        head_frame=head_frame, label_scheme=label_scheme, link=link, overwrite=overwrite, points=points,
    )


__all__ = ["FORMATS", "ImportReport", "SourceView", "import_scene", "write_ply_points", "write_scene"]
