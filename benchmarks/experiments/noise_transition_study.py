"""Label-noise transition model in the semantic loss (``FitConfig.label_noise``): one-head screen.

Fits the gap study's identity (``gap_study.py``: seed-0 ``head_000`` of the refine_quality benchmark,
fast preset, 32 facescape views at 256 px, ``simulated:medium``, the benchmark's 100 extreme novel
views) on noisy or exact labels with ``--fit-set`` overrides, scores refined (post-processed) and
raw labels as the pipeline does, and records the fit's transition matrix T next to the parser's
real confusion on the input views (noisy vs exact labels, pixels of the 32 inputs; not used by the
fit), so that what T learned can be compared with what the simulated parser does.

Results: one record per ``--tag`` in ``benchmarks/results/noise_transition_screen.json``.

    python benchmarks/experiments/noise_transition_study.py --labels noisy --tag em --fit-set label_noise=em
    python benchmarks/experiments/noise_transition_study.py --labels exact --tag em_exact --fit-set label_noise=em
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
sys.path.insert(0, str(HERE))
import gap_study as gs  # noqa: E402
import refine_quality as rq  # noqa: E402

OUT_JSON = HERE.parent / "results" / "noise_transition_screen.json"


def parser_confusion(noisy_dir: Path, exact_dir: Path, K: int) -> np.ndarray:
    """(K true, K observed) pixel counts of the input views' noisy labels against their exact labels."""
    from labelsplat.io import read_label
    from labelsplat.scene import load_scene

    noisy, exact = load_scene(noisy_dir), load_scene(exact_dir)
    conf = np.zeros((K, K), dtype=np.int64)
    for fn, fe in zip(noisy.frames, exact.frames):
        a = read_label(exact.path(fe.label_path)).astype(np.int64)
        b = read_label(noisy.path(fn.label_path)).astype(np.int64)
        ok = (a < K) & (b < K)
        conf += np.bincount(a[ok] * K + b[ok], minlength=K * K).reshape(K, K)
    return conf


def top_off_diagonal(T: np.ndarray, names: list[str], n: int = 15) -> list[dict]:
    off = [(float(T[i, j]), i, j) for i in range(len(T)) for j in range(len(T)) if i != j]
    off.sort(reverse=True)
    return [{"true": names[i], "observed": names[j], "p": round(v, 4)} for v, i, j in off[:n]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    gs.add_fit_args(ap)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gap_study_work"))
    ap.add_argument("--out", type=Path, default=OUT_JSON)
    ap.add_argument("--oracle", action="store_true",
                    help="diagnostic upper bound: with label_noise=em:..., use the parser's REAL confusion on the "
                         "input views (noisy vs exact labels, diagonal floored as em does) as T after the warm-up "
                         "instead of the estimate (uses ground truth: not a fit option)")
    args = ap.parse_args(argv)

    from labelsplat.pipeline import RefineConfig, label_novel_views
    from labelsplat.scene import load_scene
    from labelsplat.schemes import get_scheme
    from labelsplat.splat.config import apply_fit_overrides, make_config
    from labelsplat.splat.render_views import load_run
    from labelsplat.splat.trainer import fit
    from labelsplat.synth import load_head, load_synth, render_views

    t0 = time.time()
    ba = gs.bench_args(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    (noisy_dir, exact_dir), = rq.synth_inputs(args.work, ba, args.seed)
    rcfg = RefineConfig(preset=args.preset, seed=args.seed, device="cpu", novel_views=100)
    scene, cams, yaws = rq.novel_cameras(noisy_dir, 100, args.seed, rcfg.sampler, rcfg.min_head_inside)
    scheme = get_scheme(scene.label_scheme)
    gt_cache = args.work / f"gt_s{args.seed}.npz"
    if gt_cache.is_file():
        z = np.load(gt_cache)
        gt, initial = z["gt"], z["initial"]
    else:
        views = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
        gt, initial = np.stack([v.gt_labels for v in views]), np.stack([v.labels for v in views])
        np.savez_compressed(gt_cache, gt=gt, initial=initial)

    sdir = gs.variant_scene(noisy_dir, exact_dir, args.labels)
    names = list(scheme.classes)
    C = parser_confusion(noisy_dir, exact_dir, len(names))
    rows = C.sum(1, keepdims=True)
    T_parser = np.where(rows > 0, C / np.maximum(rows, 1), np.eye(len(names)))
    if args.oracle:
        import torch

        from labelsplat.splat import losses

        counts = torch.from_numpy(C.astype(np.float32))
        losses.NoiseTransition.matrix = lambda self: losses.floor_diagonal(counts.to(self.device), self.spec.floor)
    fit_cfg = apply_fit_overrides(make_config(args.preset, seed=args.seed), rq._parse_sets(args.fit_set))
    run_dir = args.work / f"run_nt_{args.tag}_{os.getpid()}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t = time.perf_counter()
    res = fit(load_scene(sdir), run_dir, fit_cfg, device="cpu", progress=False, write_outputs=False)
    t_fit = time.perf_counter() - t
    run = load_run(run_dir, "cpu")
    rendered, pp, _ = label_novel_views(run, load_scene(sdir), cams, rcfg, yaws=yaws, timings={})
    raw = np.stack([np.asarray(r["raw_labels"]) for r in rendered])
    last = res.summary.get("last_log", {})
    record = {"oracle_T": bool(args.oracle), "labels": args.labels, "seed": args.seed, "preset": args.preset, "fit_config": fit_cfg.to_dict(),
              "fit_s": round(t_fit, 1), "train_label_acc_last": last.get("label_acc"),
              "loadavg": list(os.getloadavg()), "label_noise": res.summary.get("label_noise"),
              "parser_confusion_inputs": {"diagonal": {n: round(float(T_parser[i, i]), 4) for i, n in enumerate(names)},
                                          "top_confusions": top_off_diagonal(T_parser, names)}}
    record["scores"] = gs.score({"initial": initial, "refined": np.asarray(pp, dtype=np.uint8),
                                 "refined_raw": raw.astype(np.uint8)}, gt, yaws, scheme)
    shutil.rmtree(run_dir, ignore_errors=True)
    record["wall_s"] = round(time.time() - t0, 1)
    doc = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "noise_transition_screen",
                                                                         "records": {}}
    doc["records"][args.tag] = record
    rq.write_results(args.out, doc)
    s = record["scores"]
    print(f"{args.tag}: " + "  ".join(f"{n} {s[n]['miou']:.3f} (60-90 {s[n]['by_yaw']['60-90']:.3f}, "
                                       f"be-F1 {s[n]['be_mean_f1']:.3f})" for n in s)
          + f"  [fit {t_fit:.0f} s, {record['wall_s']:.0f} s]")
    ln = record["label_noise"]
    if ln:
        print("T top confusions: " + ", ".join(f"{c['true']}->{c['observed']} {c['p']:.3f}" for c in ln["top_confusions"][:10]))
    print("parser top confusions: " + ", ".join(f"{c['true']}->{c['observed']} {c['p']:.3f}"
                                                for c in record["parser_confusion_inputs"]["top_confusions"][:10]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
