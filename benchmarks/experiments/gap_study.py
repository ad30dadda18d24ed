"""Where does the refined-vs-ceiling gap at extreme views come from? (issue 6 quality study)

One identity of the refine_quality benchmark (fast preset, 32 facescape views at 256 px,
``simulated:medium``, 100 extreme novel views sampled from the mesh exactly as the benchmark does)
is fitted on input labels of one of these kinds:

* ``noisy``    the noise model's labels (= the benchmark's ``refined`` input);
* ``exact``    the exact labels (= the benchmark's ``ceiling`` input);
* ``patch3d``  only the noise model's 3D-consistent surface patches (no per-view 2D errors);
* ``noise2d``  only the per-view 2D errors (no surface patches).

The 3D/2D split reproduces :func:`labelsplat.synth.noise.apply_noise` step by step (checked: both
parts together give exactly the scene's noisy labels). Every fit's rendered logits, alpha, depth and
low-visibility fraction at the novel views are kept (``--keep``, float16 npz) so that extraction
variants can be re-scored without refitting (``--rescore TAG --logit-adjust TAU``).

Results go to ``benchmarks/results/refine_quality_gap.json`` (one record per tag: overall and per-bin
mIoU, per-class IoU overall and in the 60-90 bin, fit time, config).

    python benchmarks/experiments/gap_study.py --labels patch3d --tag patch3d
    python benchmarks/experiments/gap_study.py --labels noisy --tag vw --fit-set label_view_weight=yaw:45:0.3
    python benchmarks/experiments/gap_study.py --rescore noisy --logit-adjust 1.0 --tag noisy_la1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import refine_quality as rq  # noqa: E402

OUT_JSON = HERE.parent / "results" / "refine_quality_gap.json"
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


def extract_pp(npz, scene, cams, yaws, rcfg, logit_adjust: float, class_w: np.ndarray | None):
    """Raw argmax and post-processed labels from kept renders (the pipeline's extraction + PP)."""
    import torch

    from labelsplat.extract import PostprocessConfig, extract_argmax, postprocess

    if "low_view_fraction" not in npz or "logits" not in npz:
        raise SystemExit("--rescore needs kept logits and low_view_fraction (renders of the pipeline at commit 49ba83c)")
    logits = torch.from_numpy(npz["logits"].astype(np.float32))
    if logit_adjust and class_w is not None:
        logits = logits - logit_adjust * torch.log(torch.from_numpy(class_w.astype(np.float32)))[None, None, None, :]  # logits are (B, H, W, K)
    alpha = torch.from_numpy(npz["alpha"].astype(np.float32))
    ext = extract_argmax(logits, alpha, alpha_threshold=rcfg.alpha_threshold)
    lab = ext.labels.cpu().numpy() if hasattr(ext.labels, "cpu") else np.asarray(ext.labels)
    conf = ext.confidence.cpu().numpy() if hasattr(ext.confidence, "cpu") else np.asarray(ext.confidence)
    a = npz["alpha"].astype(np.float32)
    low_vis = (npz["low_view_fraction"].astype(np.float32) > rcfg.low_view_threshold) & (a >= rcfg.alpha_threshold)
    h, w = lab.shape[1:]
    pp_cfg = PostprocessConfig(min_confidence=rcfg.min_confidence, min_view_confidence=rcfg.min_view_confidence,
                               min_area=max(1, round(rcfg.min_area_fraction * h * w)))
    pp, _ = postprocess(lab.astype(np.uint8), conf, config=pp_cfg, scheme=scene.label_scheme, yaw=np.asarray(yaws),
                        low_visibility_mask=low_vis, cameras=cams, head=scene.head_frame,
                        depth=npz["depth"].astype(np.float32), alpha=np.clip(a, 0.0, 1.0))
    return lab.astype(np.uint8), np.asarray(pp, dtype=np.uint8)


def study_setup(work: Path, seed: int, preset: str, refine_sets: dict | None = None):
    """The benchmark's seed-``seed`` head (noisy and exact-label scenes), its 100 extreme novel
    cameras and their exact / initial labels (cached in ``work``). Returns (noisy_dir, exact_dir,
    RefineConfig, scene, cameras, yaws, gt (V, H, W), initial (V, H, W))."""
    from labelsplat.pipeline import RefineConfig
    from labelsplat.synth import load_head, load_synth, render_views

    work.mkdir(parents=True, exist_ok=True)
    (noisy_dir, exact_dir), = rq.synth_inputs(work, bench_args(seed), seed)
    rcfg = RefineConfig(preset=preset, seed=seed, device="cpu", novel_views=100, **(refine_sets or {}))
    scene, cams, yaws = rq.novel_cameras(noisy_dir, 100, seed, rcfg.sampler, rcfg.min_head_inside)
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
    from labelsplat.splat import fit, load_run
    from labelsplat.splat.config import apply_fit_overrides, make_config

    fit_cfg = apply_fit_overrides(make_config(args.preset, seed=args.seed), rq._parse_sets(args.fit_set))
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
    """The options shared with lift_study.py: which labels, tag, seed, preset, fit overrides."""
    ap.add_argument("--labels", choices=("noisy", "exact", "patch3d", "noise2d"), default="noisy")
    ap.add_argument("--tag", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--fit-set", action="append", metavar="KEY=VALUE")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fit_args(ap)
    ap.add_argument("--refine-set", action="append", metavar="KEY=VALUE")
    ap.add_argument("--rescore", default=None, help="re-extract from the kept renders of this tag (no fit)")
    ap.add_argument("--logit-adjust", type=float, default=0.0,
                    help="rescore: subtract TAU * log(class weight) from the logits before argmax")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gap_study_work"))
    ap.add_argument("--out", type=Path, default=OUT_JSON)
    args = ap.parse_args(argv)

    from labelsplat.schemes import get_scheme

    t0 = time.time()
    noisy_dir, exact_dir, rcfg, scene, cams, yaws, gt, initial = study_setup(
        args.work, args.seed, args.preset, rq._parse_sets(args.refine_set))
    scheme = get_scheme(scene.label_scheme)

    record: dict = {"labels": args.labels, "seed": args.seed, "preset": args.preset}
    if args.rescore:
        doc = json.loads(args.out.read_text())
        src = doc["records"][args.rescore]
        npz = np.load(args.work / "renders" / f"{args.rescore}.npz")
        cw = np.asarray(src.get("class_weights_used") or [], dtype=np.float64)
        raw, pp = extract_pp(npz, scene, cams, yaws, rcfg, args.logit_adjust, cw if cw.size else None)
        record.update({"rescore_of": args.rescore, "logit_adjust": args.logit_adjust, "labels": src["labels"],
                       "fit_config": src["fit_config"]})
        record["scores"] = score({"initial": initial, "refined": pp, "refined_raw": raw}, gt, yaws, scheme)
    else:
        from labelsplat.splat import concept_class_weights

        sdir = variant_scene(noisy_dir, exact_dir, args.labels)
        run_dir, fit_cfg, res, t_fit, rendered, pp, report = fit_and_label(sdir, args, f"run_{args.tag}", rcfg, cams,
                                                                            yaws)
        # (the renders of label_novel_views at commit 49ba83c, where the study ran, carry
        # low_view_fraction; later versions fold it into the post-processing, so --rescore then refuses)
        keep = {k: np.stack([r[k].cpu().numpy() if hasattr(r[k], "cpu") else np.asarray(r[k]) for r in rendered])
                for k in ("logits", "alpha", "depth", "low_view_fraction") if k in rendered[0]}
        (args.work / "renders").mkdir(exist_ok=True)
        np.savez(args.work / "renders" / f"{args.tag}.npz", **{k: v.astype(np.float16) for k, v in keep.items()})
        if fit_cfg.class_weights is not None:
            cw = list(fit_cfg.class_weights)
        elif fit_cfg.class_weights_by_concept is not None:
            cw = concept_class_weights(scene.label_scheme, fit_cfg.class_weights_by_concept)
        else:
            cw = None
        from labelsplat.extract import extract_argmax
        import torch

        raw = extract_argmax(torch.from_numpy(keep["logits"]), torch.from_numpy(keep["alpha"]),
                             alpha_threshold=rcfg.alpha_threshold).labels
        raw = raw.cpu().numpy() if hasattr(raw, "cpu") else np.asarray(raw)
        last = res.summary.get("last_log", {}) if hasattr(res, "summary") else {}
        record.update({"fit_config": fit_cfg.to_dict(), "fit_s": round(t_fit, 1), "class_weights_used": cw,
                       "train_label_acc_last": last.get("label_acc"), "loadavg": list(os.getloadavg())})
        record["scores"] = score({"initial": initial, "refined": np.asarray(pp, dtype=np.uint8),
                                  "refined_raw": raw.astype(np.uint8)}, gt, yaws, scheme)
        shutil.rmtree(run_dir, ignore_errors=True)
    record["wall_s"] = round(time.time() - t0, 1)
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "refine_quality_gap", "records": {}}
    doc["records"][args.tag] = record
    rq.write_results(args.out, doc)
    s = record["scores"]
    print(f"{args.tag}: " + "  ".join(f"{n} {s[n]['miou']:.3f} (60-90 {s[n]['by_yaw']['60-90']:.3f})" for n in s)
          + f"  [{record['wall_s']:.0f} s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
