"""One synthetic head scored at fixed novel cameras: the set-up several studies share.

The head is the quality benchmark's (``benchmarks.refine_quality.synth_inputs``, one identity) and
the novel cameras are drawn from its mesh (``novel_cameras``), so every labelling of the head is
scored on exactly the same views with the benchmark's metric.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks import refine_quality as rq


def add_head_args(ap: argparse.ArgumentParser, work: str) -> None:
    """The options of the head and its views (defaults: the demo's configuration)."""
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--novel-views", type=int, default=24)
    ap.add_argument("--noise", default="simulated:medium")
    ap.add_argument("--work", type=Path, default=Path("/tmp") / work)
    ap.add_argument("--json", type=Path, default=None, help="append one line of JSON per seed here")


@dataclass
class FixedHead:
    """``noisy``: the scene; ``rcfg``: the preset's RefineConfig for the seed; ``cams``, ``yaws``:
    the novel views; ``initial``: the noise model's labels there; ``score(pred)``: mIoU overall and
    by |yaw| bin of label maps (V, H, W) at those views."""

    noisy: Path
    rcfg: Any
    cams: list
    yaws: np.ndarray
    initial: np.ndarray
    score: Callable[[np.ndarray], dict]


def fixed_head(args, seed: int) -> FixedHead:
    from labelsplat.config import preset, with_overrides
    from labelsplat.eval import LabellingScores
    from labelsplat.schemes import get_scheme
    from labelsplat.synth import load_head, load_synth, render_views

    ns = argparse.Namespace(views=args.views, resolution=args.resolution, noise=args.noise, identities=1,
                            label_max_yaw=None)
    rcfg = with_overrides(preset(args.preset), seed=seed, device="cpu", novel_views=args.novel_views)
    ((noisy, _exact),) = rq.synth_inputs(args.work, ns, seed)
    scene, cams, yaws = rq.novel_cameras(noisy, args.novel_views, seed, rcfg.sampler)
    gt_views = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
    gt = np.stack([g.gt_labels for g in gt_views])
    scheme = get_scheme(scene.label_scheme)

    def score(pred) -> dict:
        acc = LabellingScores.for_scheme(scheme)
        for k in range(len(cams)):
            acc.add(pred[k], gt[k], float(yaws[k]))
        d = acc.to_dict()
        return {"overall": round(d["overall"]["miou"], 4),
                **{b: round((m or {}).get("miou") or 0.0, 4) for b, m in d["by_yaw"].items()}}

    return FixedHead(noisy, rcfg, cams, yaws, np.stack([g.labels for g in gt_views]), score)


def report(row: dict, path: Path | None) -> None:
    """Print ``row`` as one line of JSON and append it to ``path`` when given."""
    print(json.dumps(row), flush=True)
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
