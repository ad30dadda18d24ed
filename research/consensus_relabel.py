"""Consensus relabelling through the fitted depth: does it close the 60-90 gap?

Fitting labels fused per surface point ON THE EXACT MESH (pixel-majority of all input views;
``benchmarks.consensus_bound --fit-vote``) reaches 0.789 in the 60-90 |yaw| bin on seed 0
against ceiling 0.822 and the pipeline's refined 0.724. A user has no mesh; this experiment
uses the fitted Gaussian model's depth instead. Per benchmark head
(``benchmarks/results/refine_quality.json`` settings: fast preset, 32 facescape views at 256 px,
``simulated:medium``, 100 extreme novel views, CPU, the head's seed):

a. fit the noisy scene with the preset (run dir kept under ``--work``) and score its
   post-processed labels at the benchmark's novel views (must reproduce the benchmark's
   ``refined`` cell, pooled per seed: checked and recorded);
b. render depth + alpha at the 32 input cameras; depth where alpha >= the refine's
   ``alpha_threshold`` (as ``pipeline._consistency``), else no depth;
c. fuse the noisy input labels with :func:`research.consensus.consensus_labels`
   (default: depth tolerance 0.02, unweighted pixel votes); report the fused labels' pixel
   accuracy against the exact input labels, next to the noisy labels' and the exact-mesh
   pixel-majority vote's (``benchmarks.consensus_bound``'s rule, recomputed here); cheap variants of
   the fusion (tolerance 0.01 / 0.04, class-weighted votes, no-depth pixels -> background) are
   scored on the input labels only (no fit);
d. write a scene copy whose input labels are the fused ones and fit it with the same preset;
e. score the second fit's post-processed labels at the same novel views exactly like the
   benchmark (``LabellingScores``: 60-90 mIoU, overall, per class), pooled per seed next to the
   seed's ``refined`` and ``ceiling`` from the benchmark.

Resumable per stage (fits, fused scenes and per-head results are cached in
``--work/consensus_relabel/``; the JSON is rewritten after every stage).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python -m research.consensus_relabel --seeds 0
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import consensus_bound as cb  # noqa: E402
from benchmarks import refine_quality as rq  # noqa: E402
from benchmarks import single_head as gs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT_JSON = ROOT / "research" / "results" / "refine_quality_consensus_relabel.json"
BENCH_JSON, DEFAULT_WORK = cb.BENCH_JSON, cb.DEFAULT_WORK
# the exact-mesh vote fits (benchmarks.consensus_bound --fit-vote pixel_majority), under "vote_fits"
MESH_FITVOTE_JSON = cb.OUT_JSON
TUNE_BIN = "60-90"
#: (name, consensus_labels kwargs) of the fusions scored on the input labels; the first is fitted
FUSIONS: tuple[tuple[str, dict], ...] = (
    ("tol0.02", {"depth_tolerance": 0.02}),
    ("tol0.01", {"depth_tolerance": 0.01}),
    ("tol0.04", {"depth_tolerance": 0.04}),
    ("tol0.02_class_weighted", {"depth_tolerance": 0.02, "class_weights": "fast"}),
    ("tol0.02_nodepth_bg", {"depth_tolerance": 0.02, "no_depth_label": 0}),
)


# ============================================================================ helpers
def label_accuracy(pred: list[np.ndarray], exact: list[np.ndarray], background: int = 0, num_classes: int = 19) -> dict:
    """Pixel accuracy of input label maps against the exact ones: over all pixels (``all``), over
    the exact foreground (``foreground``: exact label != background), the share of 255, and the
    mIoU of the label maps (the benchmark's metric, pooled over the views)."""
    from labelsplat.eval.metrics import confusion_matrix, summary_scores

    p = np.stack(pred).astype(np.int64)
    e = np.stack(exact).astype(np.int64)
    valid = e != 255
    fg = valid & (e != background)
    m = summary_scores(confusion_matrix(np.stack(pred), np.stack(exact), num_classes))
    return {"all": round(float((p[valid] == e[valid]).mean()), 5), "foreground": round(float((p[fg] == e[fg]).mean()), 5),
            "ignore_fraction": round(float((p == 255).mean()), 5), "miou": round(float(m["miou"]), 5)}


def mesh_vote_labels(scene) -> list[np.ndarray]:
    """The exact-mesh pixel-majority vote of the scene's noisy input labels (``benchmarks.consensus_bound``'s
    ``pixel_majority`` rule: per-triangle vote, unseen triangles from the nearest seen one), rendered
    back at the input views (background off the mesh): what ``consensus_bound --fit-vote`` fits."""
    from labelsplat.io import read_label
    from labelsplat.schemes import get_scheme
    from labelsplat.synth import build_head, load_head
    from labelsplat.synth.render import rasterize_head

    K = get_scheme(scene.label_scheme).num_classes
    mesh = build_head(load_head(scene.root))
    tris = [rasterize_head(mesh, fr.camera)[0] for fr in scene.frames]
    labs = [read_label(scene.path(fr.label_path), K, shape=t.shape) for fr, t in zip(scene.frames, tris)]
    table = cb.accumulate_votes(tris, labs, len(mesh.faces), K)
    src = cb.nearest_seen_source(mesh.vertices[mesh.faces].mean(axis=1), table.seen)
    tl = cb.triangle_labels(cb.rule_scores(table, "pixel_majority"), src)
    return [cb.render_triangle_labels(t, tl) for t in tris]


def fit_run(scene_dir: Path, run_dir: Path, preset: str, seed: int) -> float:
    """Fit ``scene_dir`` into ``run_dir`` (CPU, ``preset``, ``seed``; as ``refine_quality.fit_and_label``)
    unless ``run_dir/FIT_DONE.json`` exists; returns the fit seconds (of the run that made it)."""
    from labelsplat.scene import load_scene
    from labelsplat.config import fit_preset
    from labelsplat.splat import fit

    done = run_dir / "FIT_DONE.json"
    if done.is_file():
        return float(json.loads(done.read_text())["fit_s"])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t = time.perf_counter()
    fit(load_scene(scene_dir), run_dir, fit_preset(preset, seed=seed), device="cpu", progress=False,
        write_outputs=False)
    t_fit = time.perf_counter() - t
    done.write_text(json.dumps({"fit_s": round(t_fit, 1), "loadavg": list(os.getloadavg())}) + "\n")
    return t_fit


def score_run(run_dir: Path, scene_dir: Path, rcfg, cams, yaws, gt, scheme):
    """The benchmark's scoring of a fitted run: post-processed labels at ``cams`` -> LabellingScores."""
    from labelsplat.pipeline import label_novel_views
    from labelsplat.scene import load_scene
    from labelsplat.splat import load_run

    _rendered, pp, _report = label_novel_views(load_run(run_dir, "cpu"), load_scene(scene_dir), cams, rcfg, yaws=yaws,
                                               timings={})
    return gs.view_scores(np.asarray(pp, dtype=np.uint8), gt, yaws, scheme)


def input_depths(run_dir: Path, scene, rcfg) -> list[np.ndarray]:
    """Rendered depth at the input cameras where alpha >= ``rcfg.export.alpha_threshold`` (else 0), as
    ``pipeline._consistency``."""
    from labelsplat.splat import load_run, render_cameras

    rendered = render_cameras(load_run(run_dir, "cpu"), scene.cameras, batch_size=rcfg.export.render_batch,
                              min_views=rcfg.export.min_views_seen)
    return [np.where(r["alpha"] >= rcfg.export.alpha_threshold, r["depth"], 0.0).astype(np.float64) for r in rendered]


# ============================================================================ one head
def run_head(seed: int, noisy_dir: Path, args, rec: dict, save) -> dict:
    """All stages for one head; ``rec`` holds finished stages (resumed), ``save()`` persists it."""
    from labelsplat.io import read_label
    from labelsplat.config import preset, with_overrides
    from labelsplat.schemes import get_scheme
    from research.consensus import consensus_labels
    from labelsplat.synth import load_head, load_synth, render_views

    ident = noisy_dir.name
    hdir = args.work / "consensus_relabel" / args.preset / f"s{seed}" / ident
    hdir.mkdir(parents=True, exist_ok=True)
    rcfg = with_overrides(preset(args.preset), seed=seed, device="cpu", novel_views=100)
    scene, cams, yaws = rq.novel_cameras(noisy_dir, 100, seed, rcfg.sampler)
    scheme = get_scheme(scene.label_scheme)
    K = scheme.num_classes
    cache = args.work / f"novel_s{seed}_{ident}_n100.npz"
    if cache.is_file():
        gt = np.load(cache)["gt"]
    else:
        views = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
        gt = np.stack([v.gt_labels for v in views])
    if len(gt) != len(cams):
        raise SystemExit(f"{cache}: {len(gt)} GT views for {len(cams)} cameras")
    rec.update({"seed": seed, "identity": ident})

    # (a) the benchmark's refined fit
    fit_noisy = hdir / "fit_noisy"
    if "refined" not in rec:
        t_fit = fit_run(noisy_dir, fit_noisy, args.preset, seed)
        acc = score_run(fit_noisy, noisy_dir, rcfg, cams, yaws, gt, scheme)
        rec["refined"] = {"fit_s": round(t_fit, 1), "scores": acc.to_dict()}
        save()
    print(f"seed {seed} {ident}: refined 60-90 {rec['refined']['scores']['by_yaw'][TUNE_BIN]['miou']:.4f} "
          f"(fit {rec['refined']['fit_s']:.0f} s)", flush=True)

    # (b) + (c) fusion through the fitted depth
    noisy = [read_label(scene.path(fr.label_path), K, shape=(fr.camera.height, fr.camera.width)) for fr in scene.frames]
    exact = [read_label(scene.path(fr.gt_label_path), K, shape=(fr.camera.height, fr.camera.width))
             for fr in scene.frames]
    fused_main = None
    if "fusion" not in rec or not (hdir / f"scene_{FUSIONS[0][0]}" / "DONE").is_file():
        t = time.perf_counter()
        depths = input_depths(fit_noisy, scene, rcfg)
        t_render = time.perf_counter() - t
        cw = cb.fast_preset_weights(scene.label_scheme)
        fus: dict = {"render_depth_s": round(t_render, 2),
                     "depth_pixels_fraction": round(float(np.mean([np.mean(d > 0) for d in depths])), 4),
                     "accuracy": {"noisy": label_accuracy(noisy, exact)}, "stats": {}}
        t = time.perf_counter()
        fus["accuracy"]["mesh_vote_pixel_majority"] = label_accuracy(mesh_vote_labels(scene), exact)
        fus["mesh_vote_s"] = round(time.perf_counter() - t, 2)
        for name, kw in FUSIONS:
            kw = dict(kw)
            if kw.get("class_weights") == "fast":
                kw["class_weights"] = cw
            fused, stats = consensus_labels(noisy, depths, scene.cameras, K, **kw)
            fus["accuracy"][name] = label_accuracy(fused, exact)
            fus["stats"][name] = {k: v for k, v in stats.items() if k != "per_view"}
            if name == FUSIONS[0][0]:
                fused_main = fused
            print(f"  fusion {name}: input-label accuracy {fus['accuracy'][name]['all']:.4f} "
                  f"(fg {fus['accuracy'][name]['foreground']:.4f}; noisy {fus['accuracy']['noisy']['all']:.4f}, "
                  f"mesh vote {fus['accuracy']['mesh_vote_pixel_majority']['all']:.4f}) "
                  f"[{stats['seconds']:.1f} s]", flush=True)
        gs.relabelled_scene(noisy_dir, hdir / f"scene_{FUSIONS[0][0]}", lambda _scene: fused_main)
        rec["fusion"] = fus
        save()

    # (d) + (e) fit the relabelled scene and score it
    if "relabelled" not in rec:
        sdir = hdir / f"scene_{FUSIONS[0][0]}"
        run = hdir / f"fit_{FUSIONS[0][0]}"
        t_fit = fit_run(sdir, run, args.preset, seed)
        acc = score_run(run, sdir, rcfg, cams, yaws, gt, scheme)
        rec["relabelled"] = {"fusion": FUSIONS[0][0], "fit_s": round(t_fit, 1), "scores": acc.to_dict()}
        save()
    print(f"seed {seed} {ident}: relabelled-refit 60-90 "
          f"{rec['relabelled']['scores']['by_yaw'][TUNE_BIN]['miou']:.4f} (fit {rec['relabelled']['fit_s']:.0f} s)",
          flush=True)
    return rec


# ============================================================================ pooling / summary
def _m(L, b=None):
    x = L["overall"] if b is None else (L["by_yaw"].get(b) or {})
    return x.get("miou")


def pooled_seed(seed: int, heads: dict, bench: dict, mesh_fits: dict | None) -> dict | None:
    """Pooled per-seed record when every head of the seed has both fits; None otherwise."""
    from labelsplat.eval import LabellingScores

    hs = [h for h in heads.values() if h.get("seed") == seed]
    if not hs or not all("refined" in h and "relabelled" in h for h in hs):
        return None
    out: dict = {"heads": sorted(h["identity"] for h in hs)}
    pooled = {}
    for name in ("refined", "relabelled"):
        pooled[name] = LabellingScores.pool([LabellingScores.from_dict(h[name]["scores"]) for h in hs]).to_dict()
        out[name] = cb.brief(pooled[name])
    b = bench[seed]
    rep = pooled["refined"]
    out["refined_reproduces_benchmark"] = {
        "confusion_identical": bool(rep["confusion"] == b["refined"]["confusion"]),
        "confusion_60_90_identical": bool(rep["confusion_by_yaw"][TUNE_BIN] == b["refined"]["confusion_by_yaw"][TUNE_BIN]),
        "miou_60_90_here": cb.rounded(_m(rep, TUNE_BIN)), "miou_60_90_benchmark": cb.rounded(_m(b["refined"], TUNE_BIN)),
        "miou_overall_here": cb.rounded(_m(rep)), "miou_overall_benchmark": cb.rounded(_m(b["refined"])),
    }
    ceil = _m(b["ceiling"], TUNE_BIN)
    out["benchmark"] = {"refined": cb.brief(b["refined"]), "ceiling": cb.brief(b["ceiling"])}
    out["gap_60_90"] = {"ceiling": cb.rounded(ceil), "benchmark_refined": cb.rounded(_m(b["refined"], TUNE_BIN)),
                        "relabelled": cb.rounded(_m(pooled["relabelled"], TUNE_BIN)),
                        "ceiling_minus_relabelled": cb.rounded(ceil - _m(pooled["relabelled"], TUNE_BIN)),
                        "within_0.03_of_ceiling": bool(_m(pooled["relabelled"], TUNE_BIN) >= ceil - 0.03)}
    if mesh_fits is not None:
        by = (mesh_fits.get("vote_fits") or {}).get("by_seed", {}).get("pixel_majority", {}).get(str(seed))
        if by is not None:
            out["mesh_vote_fit_60_90"] = by["fit"]["by_yaw"][TUNE_BIN]["miou"]
            out["mesh_vote_fit_overall"] = by["fit"]["overall"]["miou"]
    return out


# ============================================================================ diagnosis (no fits)
DIAG_JSON = ROOT / "research" / "results" / "refine_quality_consensus_relabel_diag.json"


def diagnose_head(seed: int, noisy_dir: Path, args) -> dict | None:
    """Why the fusion through the fitted depth does (not) help, for a head whose noisy fit exists:
    the fitted depth's error against the mesh's exact depth at the input views (relative, overall and
    per exact class), and the fused input labels' accuracy / mIoU with the EXACT depth vs the FITTED
    depth at several tolerances (same ``consensus_labels``, same noisy labels). No fit."""
    from labelsplat.io import read_label
    from labelsplat.config import preset, with_overrides
    from labelsplat.schemes import get_scheme
    from labelsplat.scene import load_scene
    from research.consensus import consensus_labels
    from labelsplat.synth import build_head, load_head
    from labelsplat.synth.render import rasterize_head

    run = args.work / "consensus_relabel" / args.preset / f"s{seed}" / noisy_dir.name / "fit_noisy"
    if not (run / "FIT_DONE.json").is_file():
        return None
    scene = load_scene(noisy_dir)
    scheme = get_scheme(scene.label_scheme)
    K = scheme.num_classes
    rcfg = with_overrides(preset(args.preset), seed=seed, device="cpu", novel_views=100)
    mesh = build_head(load_head(scene.root))
    exact_d = []
    for fr in scene.frames:
        tri, dep, _ = rasterize_head(mesh, fr.camera)
        exact_d.append(np.where(tri >= 0, dep, 0.0).astype(np.float64))
    fit_d = input_depths(run, scene, rcfg)
    noisy = [read_label(scene.path(fr.label_path), K) for fr in scene.frames]
    exact = [read_label(scene.path(fr.gt_label_path), K) for fr in scene.frames]
    E, F, L = np.stack(exact_d), np.stack(fit_d), np.stack(exact)
    both = (E > 0) & (F > 0)
    rel = np.abs(F - E) / np.where(E > 0, E, 1.0)
    out: dict = {"depth": {
        "median_scene_depth": round(float(np.median(E[E > 0])), 3),
        "surface_fraction_exact": round(float((E > 0).mean()), 4), "surface_fraction_fit": round(float((F > 0).mean()), 4),
        "fit_depth_off_mesh_fraction": round(float(((F > 0) & (E <= 0)).mean()), 4),
        "rel_error": {"median": round(float(np.median(rel[both])), 5), "p75": round(float(np.percentile(rel[both], 75)), 5),
                      "p90": round(float(np.percentile(rel[both], 90)), 5),
                      "frac_over_0.01": round(float((rel[both] > 0.01).mean()), 4),
                      "frac_over_0.02": round(float((rel[both] > 0.02).mean()), 4)},
        "rel_error_median_by_class": {}}}
    for k, name in enumerate(scheme.classes):
        m = both & (L == k)
        if m.sum() >= 50:
            out["depth"]["rel_error_median_by_class"][name] = {"median": round(float(np.median(rel[m])), 5),
                                                               "frac_over_0.02": round(float((rel[m] > 0.02).mean()), 4),
                                                               "pixels": int(m.sum())}
    out["accuracy"] = {"noisy": label_accuracy(noisy, exact, num_classes=K)}
    for name, depths in (("exact_depth", exact_d), ("fit_depth", fit_d)):
        for tol in (0.005, 0.01, 0.02):
            fused, st = consensus_labels(noisy, depths, scene.cameras, K, depth_tolerance=tol)
            key = f"{name}_tol{tol:g}"
            out["accuracy"][key] = {**label_accuracy(fused, exact, num_classes=K),
                                    "mean_votes": round(float(st["mean_votes"]), 2), "seconds": round(st["seconds"], 1)}
            print(f"  {key}: {out['accuracy'][key]}", flush=True)
    return out


def diagnose(args) -> int:
    doc = json.loads(args.diag_out.read_text()) if args.diag_out.is_file() else {"benchmark": "consensus_relabel_diag",
                                                                                    "heads": {}}
    for seed in args.seeds:
        for noisy_dir, _ in rq.synth_inputs(args.work, gs.bench_args(seed, identities=args.identities), seed):
            key = f"seed{seed}/{noisy_dir.name}"
            if key in doc["heads"]:
                continue
            t = time.perf_counter()
            rec = diagnose_head(seed, noisy_dir, args)
            if rec is None:
                print(f"{key}: no noisy fit yet, skipped", flush=True)
                continue
            rec["wall_s"] = round(time.perf_counter() - t, 1)
            doc["heads"][key] = rec
            d = rec["depth"]["rel_error"]
            print(f"{key}: fitted depth rel error median {d['median']:.4f} p90 {d['p90']:.4f}", flush=True)
            doc["machine"] = rq.machine_info()
            rq.write_results(args.diag_out, doc)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--identities", type=int, default=2)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scenes and novel-view GT cache (consensus_bound's)")
    ap.add_argument("--bench", type=Path, default=BENCH_JSON)
    ap.add_argument("--mesh-fitvote", type=Path, default=MESH_FITVOTE_JSON,
                    help="the exact-mesh vote fits (consensus_bound --fit-vote) for the comparison column")
    ap.add_argument("--out", type=Path, default=OUT_JSON)
    ap.add_argument("--diagnose", action="store_true",
                    help="no fits: for heads whose noisy fit exists, compare the fitted depth with the mesh's and the "
                         "fusion through exact vs fitted depth (writes --diag-out)")
    ap.add_argument("--diag-out", type=Path, default=DIAG_JSON)
    args = ap.parse_args(argv)
    if args.diagnose:
        return diagnose(args)

    import torch

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    bench = cb.bench_cells(args.bench)
    missing = [s for s in args.seeds if s not in bench]
    if missing:
        print(f"error: {args.bench} has no main cell for seed(s) {missing}", file=sys.stderr)
        return 2
    mesh_fits = json.loads(args.mesh_fitvote.read_text()) if args.mesh_fitvote.is_file() else None
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if doc.get("settings", {}).get("preset", args.preset) != args.preset:
        doc = {}
    heads: dict = doc.get("heads", {})

    def save() -> None:
        doc.update({
            "benchmark": "refine_quality_consensus_relabel",
            "settings": {"preset": args.preset, "views": 32, "resolution": 256, "noise": "simulated:medium",
                         "rig": "facescape", "novel_views": 100, "sampler": "extreme", "identities": args.identities,
                         "device": "cpu", "fitted_fusion": FUSIONS[0][0],
                         "fusions": {n: {k: (v if not isinstance(v, np.ndarray) else "fast preset weights")
                                         for k, v in kw.items()} for n, kw in FUSIONS},
                         "bench": str(args.bench.relative_to(ROOT) if args.bench.is_relative_to(ROOT) else args.bench)},
            "notes": ("refined = fit of the noisy scene (must reproduce the benchmark's refined cell); relabelled = "
                      "fit of the same scene after consensus relabelling of its input labels through the first "
                      "fit's rendered depth (research.consensus.consensus_labels). Input-label accuracies "
                      "are against the exact input labels; mesh_vote_pixel_majority is the exact-mesh vote of "
                      "benchmarks.consensus_bound (what its --fit-vote run fits)."),
            "heads": heads,
            "by_seed": {str(s): p for s in sorted({h["seed"] for h in heads.values() if "seed" in h})
                        if (p := pooled_seed(s, heads, bench, mesh_fits)) is not None},
            "machine": rq.machine_info(),
        })
        rq.write_results(args.out, doc)

    for seed in args.seeds:
        ns = gs.bench_args(seed, identities=args.identities)
        for noisy_dir, _exact_dir in rq.synth_inputs(args.work, ns, seed):
            key = f"seed{seed}/{noisy_dir.name}"
            rec = heads.setdefault(key, {})
            t = time.perf_counter()
            run_head(seed, noisy_dir, args, rec, save)
            rec.setdefault("wall_s", round(time.perf_counter() - t, 1))
            save()
        p = doc.get("by_seed", {}).get(str(seed))
        if p is not None:
            r = p["refined_reproduces_benchmark"]
            g = p["gap_60_90"]
            print(f"seed {seed} pooled 60-90: refined {r['miou_60_90_here']:.4f} (benchmark {r['miou_60_90_benchmark']:.4f}, "
                  f"confusion identical {r['confusion_identical']}), relabelled {g['relabelled']:.4f}, "
                  f"ceiling {g['ceiling']:.4f}, mesh-vote fit {p.get('mesh_vote_fit_60_90')}", flush=True)
    print(f"wrote {args.out} ({time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
