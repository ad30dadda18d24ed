"""One head of the quality benchmark at a time: its scenes with chosen input labels, a fit, the
fit's labels at the benchmark's novel cameras, and their scores.

Used by ``benchmarks.consensus_bound`` and by the studies in ``research/``. The head is one
identity of ``benchmarks.refine_quality``'s default configuration (facescape rig, 32 views at
256 px, ``simulated:medium`` labels, 100 extreme novel views sampled from the mesh exactly as the
benchmark samples them), so a fit here reproduces the benchmark's cell for the same labels.

Input labels of a fit (``variant_scene``):

* ``noisy``    the noise model's labels (the benchmark's ``refined`` input);
* ``exact``    the exact labels (the benchmark's ``ceiling`` input);
* ``patch3d``  only the noise model's 3D-consistent surface patches (no per-view 2D errors);
* ``noise2d``  only the per-view 2D errors (no surface patches).

The 3D/2D split reproduces :func:`labelsplat.synth.noise.apply_noise` step by step and checks that
both parts together give exactly the scene's noisy labels.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks import refine_quality as rq

BINS = ("0-30", "30-60", "60-90", "90-180")


def bench_args(seed: int, identities: int = 1):
    return argparse.Namespace(views=32, resolution=256, noise="simulated:medium", identities=identities,
                              label_max_yaw=None, seed=seed)


def split_noise_labels(scene_dir: Path, kind: str) -> list[np.ndarray]:
    """The input views' labels with only the 3D patches (``patch3d``) or only the 2D part (``noise2d``)."""
    from labelsplat.io import read_label
    from labelsplat.scene import load_scene, yaw_pitch
    from labelsplat.synth import build_head, load_head, load_synth
    from labelsplat.synth.noise import (LEVELS, camera_key, noisy_labels_2d, parse_noise, patched_triangle_labels,
                                        severity, surface_patches)
    from labelsplat.synth.render import render_head
    from labelsplat.synth.scene import head_frame

    scene = load_scene(scene_dir)
    mesh = build_head(load_head(scene.root))
    spec = parse_noise(load_synth(scene.root)["noise"])
    seed = mesh.params.seed
    patches = surface_patches(mesh, spec.level, seed)
    hf = head_frame()
    out = []
    for fr in scene.frames:
        cam = fr.camera
        res = render_head(mesh, cam)
        yaw, pitch = yaw_pitch(cam.center, hf)
        base = res.gt_labels
        tl = patched_triangle_labels(mesh, patches, yaw)
        patched = base.copy()
        if tl is not None:
            fg = res.tri_id >= 0
            patched[fg] = tl[res.tri_id[fg]]
        sev = severity(spec.level, yaw, pitch)

        def rng():
            return np.random.default_rng([int(seed), camera_key(cam), LEVELS.index(spec.level), 0x2D])

        full = noisy_labels_2d(patched, sev, rng()).astype(np.uint8)
        stored = read_label(scene.path(fr.label_path))
        if not np.array_equal(full, stored):
            raise SystemExit(f"noise split does not reproduce {fr.label_path}: apply_noise changed?")
        out.append(patched.astype(np.uint8) if kind == "patch3d" else noisy_labels_2d(base, sev, rng()).astype(np.uint8))
    return out


def copy_scene(src: Path, out: Path):
    """A fresh copy of scene ``src`` at ``out`` (loaded), or None when ``out`` is already finished
    (an ``out/DONE`` marker, written by the caller after relabelling the copy)."""
    from labelsplat.scene import load_scene

    if (out / "DONE").is_file():
        return None
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    return load_scene(out)


def relabelled_scene(src: Path, out: Path, make_labels) -> Path:
    """A copy of scene ``src`` at ``out`` whose input labels are ``make_labels(copy)`` (one uint8
    map per frame, in order; called only when the copy is not finished yet); RGB, masks, cameras
    and ``gt_labels`` are the original's. Kept when ``out/DONE`` exists."""
    from labelsplat.io import write_png

    scene = copy_scene(src, out)
    if scene is None:
        return out
    labels = list(make_labels(scene))
    if len(labels) != len(scene.frames):
        raise SystemExit(f"{len(labels)} label maps for {len(scene.frames)} frames")
    for fr, lab in zip(scene.frames, labels):
        write_png(scene.path(fr.label_path), np.asarray(lab, dtype=np.uint8))
    (out / "DONE").write_text("ok\n")
    return out


def variant_scene(noisy_dir: Path, exact_dir: Path, kind: str) -> Path:
    if kind == "noisy":
        return noisy_dir
    if kind == "exact":
        return exact_dir
    return relabelled_scene(noisy_dir, noisy_dir.parent.parent / kind / noisy_dir.name,
                            lambda _scene: split_noise_labels(noisy_dir, kind))


def view_scores(pred, gt, yaws, scheme):
    """LabellingScores of label maps ``pred[k]`` against ``gt[k]`` at views of yaw ``yaws[k]``
    (the benchmark's metric)."""
    from labelsplat.eval import LabellingScores

    acc = LabellingScores.for_scheme(scheme)
    for k in range(len(gt)):
        acc.add(pred[k], gt[k], float(yaws[k]))
    return acc


def score(preds: dict, gt: np.ndarray, yaws: np.ndarray, scheme) -> dict:
    out = {}
    for name, p in preds.items():
        d = view_scores(p, gt, yaws, scheme).to_dict()
        rec = {"miou": d["overall"]["miou"], "mean_f1": d["overall"]["mean_f1"],
               "be_mean_f1": d["boundary_excluded"]["overall"]["mean_f1"],
               "by_yaw": {b: (d["by_yaw"].get(b) or {}).get("miou") for b in BINS},
               "per_class_iou": {c: v.get("iou") for c, v in d["per_class"].items()}}
        cb = d.get("confusion_by_yaw", {}).get("60-90")
        if cb is not None:
            from labelsplat.eval.metrics import per_class_scores

            iou, _, _ = per_class_scores(np.asarray(cb))
            cls = d["class_names"]
            rec["per_class_iou_60_90"] = {c: (None if not np.isfinite(v) else round(float(v), 4)) for c, v in zip(cls, iou)}
        out[name] = rec
    return out


def study_setup(work: Path, seed: int, preset: str, refine_sets: dict | None = None):
    """The benchmark's seed-``seed`` head (noisy and exact-label scenes), its 100 extreme novel
    cameras and their exact / initial labels (cached in ``work``). Returns (noisy_dir, exact_dir,
    RefineConfig, scene, cameras, yaws, gt (V, H, W), initial (V, H, W))."""
    from labelsplat.config import preset as preset_tree
    from labelsplat.config import with_overrides
    from labelsplat.synth import load_head, load_synth, render_views

    work.mkdir(parents=True, exist_ok=True)
    (noisy_dir, exact_dir), = rq.synth_inputs(work, bench_args(seed), seed)
    rcfg = with_overrides(preset_tree(preset), seed=seed, device="cpu", novel_views=100, **(refine_sets or {}))
    scene, cams, yaws = rq.novel_cameras(noisy_dir, 100, seed, rcfg.sampler)
    gt_cache = work / f"gt_s{seed}.npz"
    if gt_cache.is_file():
        z = np.load(gt_cache)
        gt, initial = z["gt"], z["initial"]
    else:
        views = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
        gt, initial = np.stack([v.gt_labels for v in views]), np.stack([v.labels for v in views])
        np.savez_compressed(gt_cache, gt=gt, initial=initial)
    return noisy_dir, exact_dir, rcfg, scene, cams, yaws, gt, initial


def fit_and_label(sdir: Path, args, run_name: str, rcfg, cams, yaws):
    """Fit scene ``sdir`` on the CPU with ``args.preset`` + ``args.fit_set`` (seed ``args.seed``) in
    ``args.work/<run_name>_<pid>`` and label ``cams`` as ``refine`` does. Returns (run dir, FitConfig,
    fit result, fit seconds, rendered views, post-processed labels, post-processing report)."""
    from labelsplat.pipeline import label_novel_views
    from labelsplat.scene import load_scene
    from labelsplat.config import apply_fit_overrides, fit_preset
    from labelsplat.splat import fit, load_run

    fit_cfg = apply_fit_overrides(fit_preset(args.preset, seed=args.seed), rq.parse_sets(args.fit_set))
    run_dir = args.work / f"{run_name}_{os.getpid()}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t = time.perf_counter()
    res = fit(load_scene(sdir), run_dir, fit_cfg, device="cpu", progress=False, write_outputs=False)
    t_fit = time.perf_counter() - t
    rendered, pp, report = label_novel_views(load_run(run_dir, "cpu"), load_scene(sdir), cams, rcfg, yaws=yaws,
                                             timings={})
    return run_dir, fit_cfg, res, t_fit, rendered, pp, report


def add_fit_args(ap: argparse.ArgumentParser) -> None:
    """The options of a one-head fit: which labels, tag, seed, preset, fit overrides."""
    ap.add_argument("--labels", choices=("noisy", "exact", "patch3d", "noise2d"), default="noisy")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--fit-set", action="append", metavar="KEY=VALUE")
