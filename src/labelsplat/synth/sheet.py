"""Contact sheet of synthetic heads: RGB and colourised exact labels from the front, both
profiles, above and below (the visual check of the part labels; docs/images/synth_contact_sheet.png).

    python -m labelsplat.synth.sheet OUT.png [--seeds 0 1 2] [--resolution 192]
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from ..io import write_png
from ..schemes import colorize
from .head import build_head, sample_head
from .render import render_head
from .rigs import camera_at
from .scene import head_seed

VIEWS = (("front", 0.0, 0.0), ("subject's left profile", 90.0, 0.0), ("subject's right profile", -90.0, 0.0),
         ("above", 0.0, 45.0), ("below", 0.0, -35.0))


def contact_sheet(seeds=(0, 1, 2), resolution: int = 192) -> np.ndarray:
    """(rows, cols, 3) uint8: per head two rows (RGB, labels), one column per view in ``VIEWS``."""
    header = 18
    tiles = []
    for seed in seeds:
        mesh = build_head(sample_head(head_seed(seed, 0)))
        rgb_row, lab_row = [], []
        for _name, yaw, pitch in VIEWS:
            r = render_head(mesh, camera_at(yaw, pitch, resolution=resolution))
            rgb_row.append(r.rgb)
            lab_row.append(colorize(r.gt_labels, "celebamask19-zll"))
        tiles.append(np.concatenate(rgb_row, axis=1))
        tiles.append(np.concatenate(lab_row, axis=1))
    body = np.concatenate(tiles, axis=0)
    img = Image.new("RGB", (body.shape[1], body.shape[0] + header), (255, 255, 255))
    img.paste(Image.fromarray(body), (0, header))
    draw = ImageDraw.Draw(img)
    for k, (name, yaw, pitch) in enumerate(VIEWS):
        draw.text((k * resolution + 4, 3), f"{name} (yaw {yaw:+.0f}, pitch {pitch:+.0f})", fill=(0, 0, 0))
    return np.asarray(img)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="synthetic head contact sheet")
    ap.add_argument("out")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--resolution", type=int, default=192)
    args = ap.parse_args(argv)
    write_png(args.out, contact_sheet(args.seeds, args.resolution))


if __name__ == "__main__":
    main()
