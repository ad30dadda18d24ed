"""Does relabelling only the input pixels that a confident multiview vote contradicts help?

Two fits per head. The first fits the noisy input labels as ``refine`` does. Each Gaussian's
multiview label vote (:func:`labelsplat.splat.lift.vote_semantics`, no class weights) is then
composited at every input view (background behind), giving a per-pixel class distribution ``q``.
An input label ``y`` is changed where ``max q >= --tau``, ``argmax q != y`` and the view's rendered
alpha is at least ``--alpha``: to ``argmax q`` (``--mode relabel``) or to ignore (``--mode ignore``).
Boundaries, where the votes are uncertain, keep their labels. The second fit takes the changed
labels. Both are scored at the same novel cameras (drawn from the synthetic mesh, as
``benchmarks.refine_quality``), and the input labels before and after against the exact ones.

    python -m research.confident_relabel --seeds 0 1 2 --preset tiny --views 16 --resolution 128 --novel-views 24

No ground truth is used to change a label; ``--tau`` would have to be chosen on input views.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import refine_quality as rq
from research.fixed_head import add_head_args, fixed_head, report


def _fit(scene_dir: Path, run_dir: Path, fit_cfg):
    from labelsplat.scene import load_scene
    from labelsplat.splat import fit, load_run

    if run_dir.exists():
        shutil.rmtree(run_dir)
    t = time.perf_counter()
    fit(load_scene(scene_dir), run_dir, fit_cfg, device="cpu", progress=False, write_outputs=False)
    return load_run(run_dir, "cpu"), time.perf_counter() - t


def _label(run, scene_dir, rcfg, cams, yaws):
    from labelsplat.pipeline import label_novel_views
    from labelsplat.scene import load_scene

    _, labels, _ = label_novel_views(run, load_scene(scene_dir), cams, rcfg, yaws=yaws, timings={})
    return np.asarray(labels, dtype=np.uint8)


@torch.no_grad()
def vote_maps(run, scene) -> list[torch.Tensor]:
    """(H, W, K) composited vote distributions at the scene's input views (background behind)."""
    from labelsplat.io import read_label
    from labelsplat.splat.lift import vote_semantics
    from labelsplat.splat.rasterize import rasterize
    from labelsplat.splat.render import camera_tensors

    model, K = run.model, run.num_classes
    cams = [run.norm.camera_to_norm(fr.camera) for fr in scene.frames]
    labels = [torch.as_tensor(read_label(scene.path(fr.label_path), K).astype(np.int64)) for fr in scene.frames]
    with torch.enable_grad():
        votes = vote_semantics(model, cams, labels, K, backend="cpu")
    total = votes.sum(-1, keepdim=True)
    p = torch.where(total > 0, votes / total.clamp_min(1e-12), torch.softmax(model.params["sem"].detach(), -1))
    act = {k: v.detach() for k, v in model.activated().items()}
    out = []
    for cam in cams:
        vm, Ks, _ = camera_tensors([cam], "cpu")
        bg = torch.zeros(1, K)
        bg[0, 0] = 1.0
        r, _, _ = rasterize(act["means"], act["quats"], act["scales"], act["opacities"], p, vm, Ks, cam.width,
                            cam.height, backgrounds=bg, render_depth=False, backend="cpu",
                            rasterize_mode=model.rasterize_mode)
        out.append(r[0])
    return out, labels


def relabelled_scene(scene_dir: Path, out: Path, run, tau: float, alpha_min: float, mode: str,
                     random_fraction: float = 0.0) -> dict:
    from labelsplat.io import IGNORE_INDEX, read_label, write_png
    from labelsplat.scene import load_scene

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(scene_dir, out)
    scene = load_scene(out)
    qs, labels = vote_maps(run, scene)

    def changed_target(_tau):
        return int(round(random_fraction * labels[0].numel()))

    before = after = changed = total = 0
    for fr, q, lab in zip(scene.frames, qs, labels):
        conf, cls = q.max(-1)
        fg = 1.0 - q[..., 0]  # the share of the composite that is not background behind or class 0
        y = lab.numpy().copy()
        sel = ((conf >= tau) & (cls != lab) & (lab != IGNORE_INDEX)).numpy() & (fg.numpy() >= alpha_min)
        if mode == "random":  # control: as many pixels, drawn at random among the labelled ones
            rng = np.random.default_rng(int(sel.sum()) + len(y))
            cand = np.flatnonzero(y.reshape(-1) != IGNORE_INDEX)
            sel = np.zeros(y.size, bool)
            sel[rng.choice(cand, size=min(len(cand), changed_target(tau)), replace=False)] = True
            sel = sel.reshape(y.shape)
        new = y.copy()
        new[sel] = cls.numpy()[sel] if mode == "relabel" else IGNORE_INDEX
        gt = read_label(scene.path(fr.gt_label_path), shape=y.shape)
        valid = new != IGNORE_INDEX
        before += int((y == gt).sum())
        after += int(((new == gt) & valid).sum() + (~valid & (y == gt)).sum() * 0)
        changed += int(sel.sum())
        total += y.size
        write_png(scene.path(fr.label_path), new.astype(np.uint8))
    return {"input_acc_before": round(before / total, 4), "input_acc_after_on_kept": round(after / total, 4),
            "changed_fraction": round(changed / total, 5)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    add_head_args(ap, "confident_relabel")
    ap.add_argument("--tau", type=float, nargs="+", default=[0.8])
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--mode", choices=["relabel", "ignore", "random"], default="relabel",
                    help="random: a control that ignores as many random labelled pixels (--random-fraction)")
    ap.add_argument("--random-fraction", type=float, default=0.002)
    ap.add_argument("--fit-set", action="append")
    args = ap.parse_args(argv)
    from labelsplat.config import apply_fit_overrides, fit_preset

    for seed in args.seeds:
        h = fixed_head(args, seed)
        fit_cfg = apply_fit_overrides(fit_preset(args.preset, seed=seed), rq.parse_sets(args.fit_set))
        row = {"seed": seed, "preset": args.preset, "mode": args.mode, "alpha": args.alpha,
               "initial": h.score(h.initial)}
        run, t1 = _fit(h.noisy, args.work / f"run1_s{seed}", fit_cfg)
        row["refined"] = h.score(_label(run, h.noisy, h.rcfg, h.cams, h.yaws))
        row["fit1_s"] = round(t1, 1)
        for tau in args.tau:
            rel = args.work / f"relabelled_s{seed}_t{tau}" / h.noisy.name
            stats = relabelled_scene(h.noisy, rel, run, tau, args.alpha, args.mode, args.random_fraction)
            run2, t2 = _fit(rel, args.work / f"run2_s{seed}", fit_cfg)
            row[f"tau{tau}"] = {**stats, "refined": h.score(_label(run2, rel, h.rcfg, h.cams, h.yaws)),
                                "fit2_s": round(t2, 1)}
        report(row, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
