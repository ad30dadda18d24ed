"""Semantic lifting variants on one fit (a companion of ``research.gap_study``).

Fits the gap study's identity (fast preset, 32 facescape views at 256 px, ``simulated:medium``) once
with the fitted logits kept (``semantic_lift=none``), keeps the run, computes the multiview label
votes of its Gaussians once, and scores at the same 100 extreme novel views the fitted logits and
each lifting variant (``--variants``, e.g. ``prob:w1:p1`` = probability vote, class weights to the
power 1, prior 1; ``log:w1:p1:e0.01`` = log-probabilities with floor 0.01;
``mix:w1:p1:a0.5`` = fitted logits + a * lifted features).

    python -m research.lift_study --labels noisy --tag lift_noisy
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks import refine_quality as rq
from benchmarks import single_head as gs

OUT_JSON = Path(__file__).resolve().parent / "results" / "refine_quality_lift.json"


def lift_features(variant: str, votes, fitted, class_w, bg_logit: float):
    import torch

    from labelsplat.splat.lift import lifted_logits

    parts = variant.split(":")
    kind = parts[0]
    opts = {p[0]: float(p[1:]) for p in parts[1:]}
    w = None if class_w is None else class_w ** opts.get("w", 1.0)
    prior = opts.get("p", 1.0)
    p = lifted_logits(votes, fitted, prior=prior, scale=1.0, class_weights=w)
    if kind == "prob":
        return bg_logit * p
    if kind == "log":
        return torch.log(p.clamp_min(opts.get("e", 0.01)))
    if kind == "mix":
        return fitted + opts.get("a", 0.5) * bg_logit * p
    raise SystemExit(f"unknown variant {variant!r}")


# --pp-ablation steps: one step off at a time (pp_*) and the hole-filling / keep-largest study
# (pp2_*: old = every enclosed hole filled; alpha = alpha-aware fill with rule:threshold; KL = keep-largest)
PP_STEPS = (("pp_all", {}, True), ("pp_no_lowvis", {}, False),
            ("pp_no_lr", {"lr_consistency": False}, True),
            ("pp_no_small", {"remove_small": False}, True),
            ("pp_no_holes", {"fill_holes": False}, True),
            ("pp_no_largest", {"keep_largest": False}, True),
            ("pp_only_lowvis", {"lr_consistency": False, "remove_small": False, "fill_holes": False,
                                "keep_largest": False}, True))
_OLD = {"hole_min_alpha": None}
_ON = {"keep_largest": True, "largest_keep_ratio": None}
PP_HOLES = (("pp2_oldfill_KL", {**_OLD, **_ON}, True),
            ("pp2_alpha_mean0.5_KL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.5, **_ON}, True),
            ("pp2_alpha_mean0.3_KL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.3, **_ON}, True),
            ("pp2_alpha_mean0.7_KL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.7, **_ON}, True),
            ("pp2_alpha_majority0.5_KL", {"hole_alpha_rule": "majority", "hole_min_alpha": 0.5, **_ON}, True),
            ("pp2_alpha_mean0.8_KL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.8, **_ON}, True),
            ("pp2_alpha_mean0.9_KL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.9, **_ON}, True),
            ("pp2_alpha_mean0.95_KL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.95, **_ON}, True),
            ("pp2_alpha_majority0.9_KL", {"hole_alpha_rule": "majority", "hole_min_alpha": 0.9, **_ON}, True),
            ("pp2_alpha_mean0.9_noKL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.9, "keep_largest": False}, True),
            ("pp2_alpha_majority0.9_noKL", {"hole_alpha_rule": "majority", "hole_min_alpha": 0.9,
                                            "keep_largest": False}, True),
            ("pp2_alpha_mean0.9_KLr0.25", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.9, "keep_largest": True,
                                           "largest_keep_ratio": 0.25}, True),
            ("pp2_alpha_mean0.9_KLr0.1", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.9, "keep_largest": True,
                                          "largest_keep_ratio": 0.1}, True),
            ("pp2_alpha_mean0.9_KLneck", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.9, "keep_largest": True,
                                          "single_instance": ("neck",)}, True),
            ("pp2_alpha_mean0.9_KLneck_ears", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.9, "keep_largest": True,
                                               "single_instance": ("neck", "l_ear", "r_ear")}, True),
            ("pp2_alpha_mean0.9_KLno_nose_brows", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.9,
                                                   "keep_largest": True,
                                                   "single_instance": ("mouth", "u_lip", "l_lip", "l_eye", "r_eye",
                                                                       "l_ear", "r_ear", "neck")}, True),
            ("pp2_nofill_KL", {"fill_holes": False, **_ON}, True),
            ("pp2_oldfill_noKL", {**_OLD, "keep_largest": False}, True),
            ("pp2_alpha_mean0.5_noKL", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.5, "keep_largest": False}, True),
            ("pp2_nofill_noKL", {"fill_holes": False, "keep_largest": False}, True),
            ("pp2_alpha_mean0.5_KLr0.25", {"hole_alpha_rule": "mean", "hole_min_alpha": 0.5, "keep_largest": True,
                                           "largest_keep_ratio": 0.25}, True))


def pp_ablation(rendered, raw, scene, cams, yaws, rcfg, steps=PP_STEPS) -> dict:
    """The pipeline's post-processing of ``raw`` with the settings of ``steps`` ((name, PostprocessConfig
    overrides, whether the low-visibility mask is used); the rendered alpha is always passed, so
    hole filling is alpha-aware unless ``hole_min_alpha`` is None)."""
    import dataclasses

    from labelsplat.extract import PostprocessConfig, postprocess

    h, w = raw.shape[1:]
    base = {**dataclasses.asdict(rcfg.postprocess), "min_area": rcfg.export.min_area(rcfg.postprocess, h, w)}
    conf = np.stack([r["confidence"] for r in rendered])
    depth = np.stack([r["depth"] for r in rendered])
    alpha = np.stack([r["alpha"] for r in rendered])
    low_vis = np.stack([r["low_visibility"] for r in rendered])
    out = {}
    for name, kw, use_lv in steps:
        lab, rep = postprocess(raw.copy(), conf, config=PostprocessConfig(**{**base, **kw}), scheme=scene.label_scheme,
                               yaw=np.asarray(yaws), low_visibility_mask=low_vis if use_lv else None, cameras=cams,
                               head=scene.head_frame, depth=depth, alpha=alpha)
        out[name] = np.asarray(lab, dtype=np.uint8)
        holes = sum(v.changed["holes"] for v in rep.views)
        extra = sum(v.changed["extra_components"] for v in rep.views)
        print(f"  {name}: fill_holes {rep.steps['fill_holes']!r}, {holes} hole px filled, "
              f"{extra} keep-largest px removed", flush=True)
    return out


def clean_scene(run, votes, sc, sdir: Path, out: Path, tau: float, K: int) -> Path:
    """A copy of scene ``sdir`` whose input labels are ignore (255) where the Gaussians' vote
    (unweighted, rendered at that view) gives the pixel's label a probability below ``tau``."""
    import torch

    from labelsplat.io import read_label, write_png
    from labelsplat.splat import camera_tensors
    from labelsplat.splat.lift import lifted_logits
    from labelsplat.splat.rasterize import rasterize

    scene = gs.copy_scene(sdir, out)
    if scene is None:
        return out
    p = lifted_logits(votes, None, scale=1.0)
    act = {k: v.detach() for k, v in run.model.activated().items()}
    stats = []
    for fr in scene.frames:
        cam = run.norm.camera_to_norm(fr.camera)
        vm, Ks, _ = camera_tensors([cam], "cpu")
        with torch.no_grad():
            r, a, _ = rasterize(act["means"], act["quats"], act["scales"], act["opacities"], p[None], vm, Ks,
                                cam.width, cam.height, render_depth=False)
        prob = (r[0, ..., :K] / a[0].clamp_min(1e-6)).numpy()
        lab = read_label(scene.path(fr.label_path))
        fg = a[0, ..., 0].numpy() > 0.5
        valid = (lab != 255) & (lab < K)
        pl = np.take_along_axis(prob, np.where(valid, lab, 0)[..., None].astype(np.int64), -1)[..., 0]
        drop = valid & fg & (pl < tau)
        stats.append(float(drop.sum()) / max(1, int((valid & fg).sum())))
        write_png(scene.path(fr.label_path), np.where(drop, 255, lab).astype(np.uint8))
    print(f"cleaned: mean {np.mean(stats):.3f} of foreground label pixels set to ignore (max {np.max(stats):.3f})",
          flush=True)
    (out / "DONE").write_text("ok\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    gs.add_fit_args(ap)
    ap.add_argument("--variants", nargs="*", default=["prob:w1:p1", "prob:w0:p1", "log:w1:p1:e0.01", "mix:w1:p1:a0.5"])
    ap.add_argument("--identity", type=int, default=0,
                    help="which head of the benchmark's seed (0 = the gap study's; 1 = the benchmark's head_001)")
    ap.add_argument("--pp-ablation", action="store_true",
                    help="also re-post-process the fitted logits' labels with each post-processing step off")
    ap.add_argument("--pp-holes", action="store_true",
                    help="also re-post-process the fitted logits' labels with the hole-filling / keep-largest "
                         "settings of PP_HOLES (old fill, alpha-aware fill, no fill, keep-largest on/off)")
    ap.add_argument("--run-tag", default=None,
                    help="reuse the kept fit of this tag (keep_RUN_TAG) instead of keep_TAG; records go under TAG")
    ap.add_argument("--clean", type=float, default=None,
                    help="also refit on input labels cleaned by the vote (ignore where its probability < TAU)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gap_study_work"))
    ap.add_argument("--out", type=Path, default=OUT_JSON)
    args = ap.parse_args(argv)

    import torch

    from labelsplat.config import apply_fit_overrides, fit_preset, preset, with_overrides
    from labelsplat.pipeline import label_novel_views
    from labelsplat.scene import load_scene
    from labelsplat.schemes import get_scheme
    from labelsplat.splat import ViewPyramid, concept_class_weights, fit, load_run, load_views
    from labelsplat.splat.lift import vote_semantics

    torch.set_num_threads(1)
    ba = gs.bench_args(args.seed, args.identity + 1 if args.identity else 1)
    noisy_dir, exact_dir = rq.synth_inputs(args.work, ba, args.seed)[args.identity]
    rcfg = with_overrides(preset(args.preset), seed=args.seed, device="cpu", novel_views=100)
    scene, cams, yaws = rq.novel_cameras(noisy_dir, 100, args.seed, rcfg.sampler)
    scheme = get_scheme(scene.label_scheme)
    gt_cache = args.work / (f"gt_s{args.seed}.npz" if not args.identity else f"gt_s{args.seed}_i{args.identity}.npz")
    if not gt_cache.is_file():
        from labelsplat.synth import load_head, load_synth, render_views

        gv = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
        np.savez_compressed(gt_cache, gt=np.stack([v.gt_labels for v in gv]), initial=np.stack([v.labels for v in gv]))
    z = np.load(gt_cache)
    gt, initial = z["gt"], z["initial"]
    sdir = gs.variant_scene(noisy_dir, exact_dir, args.labels)
    fit_cfg = apply_fit_overrides(fit_preset(args.preset, seed=args.seed), rq.parse_sets(args.fit_set))
    run_dir = args.work / f"keep_{args.run_tag or args.tag}"
    if not (run_dir / "checkpoint.pt").is_file():
        t = time.perf_counter()
        fit(load_scene(sdir), run_dir, fit_cfg, device="cpu", write_outputs=False)
        print(f"fit {time.perf_counter() - t:.0f} s", flush=True)
    run = load_run(run_dir, "cpu")
    sc = load_scene(sdir)
    K = run.num_classes
    views = load_views(sc, run.config, K)
    full = ViewPyramid(views, run.norm, "cpu").get(1.0)
    votes = None
    if args.variants or args.clean is not None:  # the votes are only needed by the lifting variants
        t = time.perf_counter()
        votes = vote_semantics(run.model, full.cameras, full.labels, K, backend="cpu")
        print(f"votes {time.perf_counter() - t:.1f} s", flush=True)
    cw = run.config.class_weights_by_concept
    class_w = torch.tensor(concept_class_weights(sc.label_scheme, cw), dtype=torch.float32) if cw else None
    fitted = run.model.params["sem"].detach().clone()
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "refine_quality_lift", "records": {}}
    variants = ["fitted"] + args.variants
    if args.clean is not None:
        cdir = clean_scene(run, votes, sc, sdir, args.work / f"clean_{args.tag}_{args.clean}" / sdir.name,
                           args.clean, K)
        crun_dir = args.work / f"keep_{args.tag}_clean{args.clean}"
        if not (crun_dir / "checkpoint.pt").is_file():
            fit(load_scene(cdir), crun_dir, fit_cfg, device="cpu", write_outputs=False)
        run = load_run(crun_dir, "cpu")
        fitted = run.model.params["sem"].detach().clone()
        variants = [f"clean{args.clean}"]
    for variant in variants:
        with torch.no_grad():
            run.model.params["sem"].copy_(fitted if variant == "fitted" or variant.startswith("clean") else
                                          lift_features(variant, votes, fitted, class_w, run.config.bg_logit))
        rendered, pp, _ = label_novel_views(run, sc, cams, rcfg, yaws=yaws, timings={}, keep_logits=False)
        raw = np.stack([r["raw_labels"] for r in rendered]).astype(np.uint8)
        preds = {"initial": initial, "refined": np.asarray(pp, dtype=np.uint8), "refined_raw": raw}
        if variant == "fitted" and args.pp_ablation:
            preds.update(pp_ablation(rendered, raw, sc, cams, yaws, rcfg))
        if variant == "fitted" and args.pp_holes:
            preds.update(pp_ablation(rendered, raw, sc, cams, yaws, rcfg, PP_HOLES))
        s = gs.score(preds, gt, yaws, scheme)
        # re-read before writing: other runs of this script may have added records meanwhile
        doc = json.loads(args.out.read_text()) if args.out.is_file() else doc
        doc["records"][f"{args.tag}/{variant}"] = {"labels": args.labels, "seed": args.seed, "variant": variant,
                                                    "fit_set": args.fit_set, "scores": s,
                                                    "loadavg": list(os.getloadavg())}
        rq.write_results(args.out, doc)
        print(f"{args.tag}/{variant}: " + "  ".join(
            f"{n} {s[n]['miou']:.3f} (60-90 {s[n]['by_yaw']['60-90']:.3f}, be-F1 {s[n]['be_mean_f1']:.3f})" for n in s),
            flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
