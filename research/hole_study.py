"""What the enclosed background holes of the extracted labels are (the hole-filling study).

For kept fits of ``research.lift_study`` (``keep_TAG`` in the work directory), renders the benchmark's 100
extreme novel views, takes the raw argmax labels, and lists every background component that
post-processing step 3 would fill (does not touch the border, ``min_area`` <= area <= 2 % of the
image): its area, mean rendered alpha, fraction of pixels with alpha >= 0.5, the fraction of its
pixels whose exact (GT) label is background, and the fraction that filling (label of the
surrounding pixels, :func:`reassign_nearest`) would get right. Prints hole pixels binned by mean
alpha and writes ``research/results/refine_quality_holes.json``. Also, per single-instance class,
the pixels that keep-largest (step 4) would remove (every component but the largest of its view,
components >= ``min_area``): how many, the fraction whose GT is that class (correct pixels removed)
and the fraction the reassignment gets right.

    python -m research.hole_study --fit exact:0:s2_exact_v2 --fit noisy:1:s2i1_noisy_v2 --seed 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks import refine_quality as rq
from benchmarks import single_head as gs

OUT_JSON = Path(__file__).resolve().parent / "results" / "refine_quality_holes.json"
ALPHA_BINS = (0.0, 0.3, 0.5, 0.7, 0.9, 1.01)


def hole_table(raw, alpha, gt, min_area: int, max_fraction: float = 0.02) -> list[dict]:
    """One record per fillable background hole of ``raw`` (B, H, W) (see module docstring)."""
    from labelsplat.extract import connected_components, reassign_nearest

    b, h, w = raw.shape
    comps = connected_components(raw, 2)
    hole = (comps.label == 0) & ~comps.touches_border & (comps.area >= min_area) & (comps.area <= max_fraction * h * w)
    mask = hole[comps.ids]
    filled = reassign_nearest(raw, mask)
    ids = comps.ids[mask]
    n = comps.label.size
    a = alpha[mask]
    g = gt[mask]
    f = filled[mask]
    area = np.maximum(np.bincount(ids, minlength=n), 1)
    sel = np.flatnonzero(hole)

    def frac(x):
        return (np.bincount(ids, weights=x.astype(np.float64), minlength=n) / area)[sel]

    valid = g != 255
    mean_a, opaque = frac(a), frac(a >= 0.5)
    gt_bg, fill_ok = frac((g == 0) & valid), frac((f == g) & valid)
    return [{"view": int(comps.view[c]), "area": int(comps.area[c]), "mean_alpha": round(float(mean_a[i]), 4),
             "opaque_fraction": round(float(opaque[i]), 4), "gt_background": round(float(gt_bg[i]), 4),
             "fill_correct": round(float(fill_ok[i]), 4)} for i, c in enumerate(sel)]


def largest_table(raw, gt, min_area: int, scheme) -> dict:
    """Per single-instance class: pixels keep-largest would remove and how right that is."""
    from labelsplat.extract import DEFAULT_SINGLE_INSTANCE, connected_components, reassign_nearest

    comps = connected_components(raw, 2)
    out = {}
    extra_all = np.zeros(comps.label.size, dtype=bool)
    for name in DEFAULT_SINGLE_INSTANCE:
        k = scheme.index(name)
        cand = np.flatnonzero((comps.label == k) & (comps.area >= min_area))
        if cand.size == 0:
            continue
        key = comps.view[cand]
        order = np.lexsort((-comps.area[cand], key))
        first = np.ones(order.size, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        extra_all[cand[order[~first]]] = True
    mask = extra_all[comps.ids]
    filled = reassign_nearest(raw, mask)
    for name in DEFAULT_SINGLE_INSTANCE:
        k = scheme.index(name)
        m = mask & (raw == k)
        n = int(m.sum())
        if n == 0:
            continue
        g = gt[m]
        valid = g != 255
        out[name] = {"pixels": n, "components": int((extra_all & (comps.label == k)).sum()),
                     "gt_is_class": round(float(((g == k) & valid).sum()) / n, 4),
                     "reassign_correct": round(float(((filled[m] == g) & valid).sum()) / n, 4)}
    return out


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for lo, hi in zip(ALPHA_BINS[:-1], ALPHA_BINS[1:]):
        r = [x for x in rows if lo <= x["mean_alpha"] < hi]
        px = sum(x["area"] for x in r)
        out.append({"mean_alpha": f"[{lo:g}, {min(hi, 1):g}{')' if hi < 1 else ']'}", "holes": len(r), "pixels": px,
                    "gt_background": round(sum(x["area"] * x["gt_background"] for x in r) / px, 4) if px else None,
                    "fill_correct": round(sum(x["area"] * x["fill_correct"] for x in r) / px, 4) if px else None})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit", action="append", required=True, metavar="LABELS:IDENTITY:RUN_TAG")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gap_study_work"))
    ap.add_argument("--out", type=Path, default=OUT_JSON)
    args = ap.parse_args(argv)

    import torch

    from labelsplat.config import preset, with_overrides
    from labelsplat.pipeline import label_novel_views
    from labelsplat.scene import load_scene
    from labelsplat.splat import load_run

    torch.set_num_threads(1)
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "refine_quality_holes", "fits": {}}
    for spec in args.fit:
        labels, ident, tag = spec.split(":")
        ident = int(ident)
        ba = gs.bench_args(args.seed, ident + 1 if ident else 1)
        noisy_dir, exact_dir = rq.synth_inputs(args.work, ba, args.seed)[ident]
        rcfg = with_overrides(preset(args.preset), seed=args.seed, device="cpu", novel_views=100)
        scene, cams, yaws = rq.novel_cameras(noisy_dir, 100, args.seed, rcfg.sampler)
        gt_cache = args.work / (f"gt_s{args.seed}.npz" if not ident else f"gt_s{args.seed}_i{ident}.npz")
        gt = np.load(gt_cache)["gt"]
        sc = load_scene(gs.variant_scene(noisy_dir, exact_dir, labels))
        run = load_run(args.work / f"keep_{tag}", "cpu")
        rendered, _, _ = label_novel_views(run, sc, cams, rcfg, yaws=yaws, timings={}, keep_logits=False)
        raw = np.stack([r["raw_labels"] for r in rendered]).astype(np.uint8)
        alpha = np.stack([r["alpha"] for r in rendered]).reshape(raw.shape)
        h, w = raw.shape[1:]
        rows = hole_table(raw, alpha, gt, rcfg.export.min_area(rcfg.postprocess, h, w))
        summ = summary(rows)
        from labelsplat.schemes import get_scheme

        kl = largest_table(raw, gt, rcfg.export.min_area(rcfg.postprocess, h, w), get_scheme(sc.label_scheme))
        doc["fits"][f"{tag}"] = {"labels": labels, "identity": ident, "seed": args.seed, "summary": summ,
                                 "keep_largest": kl, "holes": rows}
        print(f"{tag} ({labels}): {len(rows)} holes, {sum(r['area'] for r in rows)} px")
        for s in summ:
            print(f"  mean alpha {s['mean_alpha']:>10}: {s['holes']:4d} holes {s['pixels']:6d} px, GT background "
                  f"{s['gt_background']}, filling correct {s['fill_correct']}", flush=True)
        for name, r in kl.items():
            print(f"  keep-largest {name:7s}: {r['pixels']:6d} px in {r['components']:3d} components, GT is the class "
                  f"{r['gt_is_class']:.3f}, reassignment correct {r['reassign_correct']:.3f}", flush=True)
        rq.write_results(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
