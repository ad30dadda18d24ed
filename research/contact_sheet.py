"""Contact sheet of GT / initial / fitted labels at the benchmark's novel views (a picture, no JSON).

    python -m research.contact_sheet SCENE_DIR OUT.png [--seed S] [--fit-set k=v ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.refine_quality import fit_and_label, novel_cameras, parse_sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scene", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--novel-views", type=int, default=24)
    ap.add_argument("--fit-set", action="append")
    args = ap.parse_args(argv)
    from labelsplat.config import fit_preset, preset, with_overrides
    from labelsplat.io import write_png
    from labelsplat.schemes import colorize, get_scheme
    from labelsplat.synth import load_head, load_synth, render_views

    rcfg = with_overrides(preset(args.preset), seed=args.seed, device="cpu", novel_views=args.novel_views)
    scene, cams, yaws = novel_cameras(args.scene, args.novel_views, args.seed, rcfg.sampler)
    gv = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
    raw, _, _ = fit_and_label(args.scene, Path("/tmp/contact_run"), fit_preset(args.preset, seed=args.seed,
                              **parse_sets(args.fit_set)), rcfg, cams, yaws)
    sch = get_scheme(scene.label_scheme)
    rows = []
    for k in np.argsort(np.abs(yaws)):
        rows.append(np.concatenate([gv[k].rgb, colorize(gv[k].gt_labels, sch), colorize(gv[k].labels, sch),
                                    colorize(raw[k], sch)], axis=1))
    write_png(args.out, np.concatenate(rows[::2], axis=0))
    print("rows: RGB | GT | initial | fitted (every 2nd view, by |yaw|):", [round(float(y)) for y in np.sort(np.abs(yaws))[::2]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
