"""``labelsplat capture``: a phone video or a folder of photos -> a canonical scene (pycolmap + PyAV)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import Device, Overwrite, Scheme, Seed, file_or_none


def register(app: typer.Typer) -> None:
    """Attach ``capture`` to the root app."""

    @app.command("capture")
    def capture_cmd(
        input: Path = typer.Argument(..., help="A video file (.mp4, .mov, ...) or a folder of photos."),
        out: Path = typer.Option(..., "--out", help="The scene directory to write."),
        frames: int = typer.Option(60, "--frames", help="Frames to keep: the sharpest of as many equal time bins."),
        resolution: int = typer.Option(512, "--resolution", help="Long side of the kept frames in px (downscale only)."),
        mask: bool = typer.Option(False, "--mask", help="Selfie-segmentation foreground masks (needs the [mediapipe] extra)."),
        head_frame: Optional[str] = typer.Option(
            None, "--head-frame",
            help="JSON file or inline object {center, up, forward[, scale]} in the reconstruction's frame "
                 "(WORK_DIR/sparse); scale = reconstruction units per cm. Default: from face landmarks ([mediapipe])."),
        matcher: str = typer.Option("auto", "--matcher", help="auto (sequential for video, exhaustive for photos) | sequential | exhaustive"),
        work_dir: Optional[Path] = typer.Option(
            None, "--work-dir",
            help="Keep frames, COLMAP database and model here; a rerun with the same input and settings reuses them."),
        labels: Optional[Path] = typer.Option(
            None, "--labels",
            help="Optional per-frame label PNGs: frame_<video frame index, 5 digits>.png, or <photo stem>.png."),
        scheme: Scheme = "celebamask19-zll",
        overwrite: Overwrite = False,
        verbose: bool = typer.Option(False, "--verbose", help="Show COLMAP's log."),
        threads: int = typer.Option(
            -1, "--threads",
            help="CPU threads of feature extraction, matching and mapping (-1 = all cores); 1 makes the "
                 "reconstruction repeatable run to run (COLMAP's multi-threaded mapping is not)."),
        seed: Seed = 0,
        device: Device = "auto",
    ) -> None:
        """Reconstruct cameras from a video or photos (pycolmap SfM on the CPU) and write a scene.

        The scene is in the synthetic heads' frame and units: head centre at the origin,
        x = subject's left, y = up, z = forward, centimetres. Labels come next with
        `labelsplat parse SCENE`, then `labelsplat refine SCENE --out OUT`.

        Examples:

          labelsplat capture orbit.mp4 --out scenes/me --frames 60

          labelsplat capture photos/ --out scenes/me --head-frame head.json --work-dir work/me
        """
        # lazy: loaded when the command runs, so that labelsplat --help stays fast
        from rich.console import Console

        from ..capture.pipeline import CaptureConfig, capture
        from ..capture.sfm import SfmConfig
        from ..errors import LabelsplatError
        from ..rundir import NEW, RunDir

        if device.lower() not in ("auto", "cpu", "cuda"):  # SfM runs on the CPU (no torch import needed)
            raise LabelsplatError(f"unknown --device {device!r}", hint="choose auto, cpu or cuda")
        frame_file = file_or_none(head_frame)
        rd = RunDir(out, "scene", inputs=[input, labels, work_dir, frame_file])
        replace = rd.check(overwrite=overwrite) != NEW
        err = Console(stderr=True)
        cfg = CaptureConfig(frames=frames, resolution=resolution, mask=mask, label_scheme=scheme,
                            sfm=SfmConfig(matcher=matcher.lower(), seed=seed, num_threads=threads))
        try:
            scene = capture(input, out, cfg, head_frame=head_frame, work_dir=work_dir, labels_dir=labels,
                            overwrite=replace,
                            log=lambda s: err.print(f"[bold]capture[/bold] {s}", highlight=False),
                            verbose=verbose)
        except LabelsplatError as exc:
            if work_dir is None and "head frame" in exc.message:
                exc.hint = (exc.hint + "; " if exc.hint else "") + \
                    "add --work-dir DIR to keep the reconstruction, so a rerun with --head-frame skips structure from motion"
            raise
        rd.write_provenance({"frames": frames, "resolution": resolution, "mask": mask, "matcher": matcher,
                             "scheme": scheme, "threads": threads, "head_frame": head_frame}, seed)
        info = scene.extra.get("capture", {})
        sfm = info.get("sfm", {})
        Console().print(
            f"wrote {scene.root} ({len(scene.frames)} views; SfM registered {sfm.get('registered')} of "
            f"{sfm.get('total')} frames, {sfm.get('points')} points; head frame: {info.get('head_frame', {}).get('source')})",
            highlight=False)
