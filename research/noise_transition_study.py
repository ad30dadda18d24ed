"""Label-noise transition model in the semantic loss (``FitConfig.label_noise``): one-head screen.

Fits the gap study's identity (``benchmarks.single_head``: seed-0 ``head_000`` of the quality benchmark,
fast preset, 32 facescape views at 256 px, ``simulated:medium``, the benchmark's 100 extreme novel
views) on noisy or exact labels with ``--fit-set`` overrides, scores refined (post-processed) and
raw labels as the pipeline does, and records the fit's transition matrix T next to the parser's
real confusion on the input views (noisy vs exact labels, pixels of the 32 inputs; not used by the
fit), so that what T learned can be compared with what the simulated parser does.

Results: one record per ``--tag`` in ``research/results/noise_transition_screen.json``.

    python -m research.noise_transition_study --labels noisy --tag em --fit-set label_noise=em
    python -m research.noise_transition_study --labels exact --tag em_exact --fit-set label_noise=em
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks import refine_quality as rq
from benchmarks import single_head as gs

OUT_JSON = Path(__file__).resolve().parent / "results" / "noise_transition_screen.json"


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

    from labelsplat.schemes import get_scheme

    t0 = time.time()
    noisy_dir, exact_dir, rcfg, scene, cams, yaws, gt, initial = gs.study_setup(args.work, args.seed, args.preset)
    scheme = get_scheme(scene.label_scheme)

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
    run_dir, fit_cfg, res, t_fit, rendered, pp, _ = gs.fit_and_label(sdir, args, f"run_nt_{args.tag}", rcfg, cams, yaws)
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
