"""Where does the refined-vs-ceiling gap at extreme views come from?

One head of the quality benchmark (``benchmarks.single_head``: seed-0 ``head_000``, fast preset,
32 facescape views at 256 px, ``simulated:medium``, the benchmark's 100 extreme novel views) is
fitted on one kind of input labels (``--labels noisy|exact|patch3d|noise2d``) and scored. Every
fit's rendered logits, alpha, depth and low-visibility fraction at the novel views are kept
(float16 npz under ``--work``) so that extraction variants can be re-scored without refitting
(``--rescore TAG --logit-adjust TAU``).

Results go to ``research/results/refine_quality_gap.json`` (one record per tag: overall and per-bin
mIoU, per-class IoU overall and in the 60-90 bin, fit time, config).

    python -m research.gap_study --labels patch3d --tag patch3d
    python -m research.gap_study --labels noisy --tag vw --fit-set label_view_weight=yaw:45:0.3
    python -m research.gap_study --rescore noisy --logit-adjust 1.0 --tag noisy_la1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks import refine_quality as rq
from benchmarks.single_head import add_fit_args, fit_and_label, score, study_setup, variant_scene

OUT_JSON = Path(__file__).resolve().parent / "results" / "refine_quality_gap.json"


def extract_pp(npz, scene, cams, yaws, rcfg, logit_adjust: float, class_w: np.ndarray | None):
    """Raw argmax and post-processed labels from kept renders (the pipeline's extraction + PP)."""
    import torch

    from labelsplat.extract import extract_argmax, postprocess

    if "low_view_fraction" not in npz or "logits" not in npz:
        raise SystemExit("--rescore needs kept logits and low_view_fraction (renders of a pipeline version that "
                         "returned low_view_fraction from label_novel_views)")
    logits = torch.from_numpy(npz["logits"].astype(np.float32))
    if logit_adjust and class_w is not None:
        logits = logits - logit_adjust * torch.log(torch.from_numpy(class_w.astype(np.float32)))[None, None, None, :]  # logits are (B, H, W, K)
    alpha = torch.from_numpy(npz["alpha"].astype(np.float32))
    ext = extract_argmax(logits, alpha, alpha_threshold=rcfg.export.alpha_threshold)
    lab = ext.labels.cpu().numpy() if hasattr(ext.labels, "cpu") else np.asarray(ext.labels)
    conf = ext.confidence.cpu().numpy() if hasattr(ext.confidence, "cpu") else np.asarray(ext.confidence)
    a = npz["alpha"].astype(np.float32)
    low_vis = (npz["low_view_fraction"].astype(np.float32) > rcfg.export.low_view_threshold) & (a >= rcfg.export.alpha_threshold)
    h, w = lab.shape[1:]
    pp_cfg = dataclasses.replace(rcfg.postprocess, min_area=rcfg.export.min_area(rcfg.postprocess, h, w))
    pp, _ = postprocess(lab.astype(np.uint8), conf, config=pp_cfg, scheme=scene.label_scheme, yaw=np.asarray(yaws),
                        low_visibility_mask=low_vis, cameras=cams, head=scene.head_frame,
                        depth=npz["depth"].astype(np.float32), alpha=np.clip(a, 0.0, 1.0))
    return lab.astype(np.uint8), np.asarray(pp, dtype=np.uint8)


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
        args.work, args.seed, args.preset, rq.parse_sets(args.refine_set))
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
        # (label_novel_views returned low_view_fraction when the study ran; versions that fold it into the
        # post-processing do not, and --rescore then refuses)
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
                             alpha_threshold=rcfg.export.alpha_threshold).labels
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
