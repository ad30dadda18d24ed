"""Fit speed and label quality of the joint model on a synthetic head (writes JSON; not a test).

For each cell (a ``semantic_grad`` mode, or ``rgb`` = the same code with K = 0) it fits the
scene with the chosen preset and records the fit time; for the joint cells it scores the
rendered labels at the training views against the synthetic ground truth and compares them
with the noisy input labels (mIoU / pixel accuracy overall and by |yaw| bin, through
``labelsplat.eval``). Cells already in the output JSON are skipped (resumable).

Usage::

    python -m benchmarks.fit_speed --out benchmarks/results/fit_speed_cpu.json \\
        [--preset tiny] [--views 16] [--resolution 128] [--noise simulated:medium] [--modes full,none,rgb]

Timings on a shared machine are noisy: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path


def _machine() -> dict:
    import torch

    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "torch": str(torch.__version__), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg": list(os.getloadavg()),
    }


def _score(scene_dir: Path, run_dir: Path) -> dict:
    """Rendered training-view labels and the noisy inputs, both against GT, by |yaw| bin."""
    from labelsplat.eval import LabellingScores
    from labelsplat.io import read_label
    from labelsplat.scene import load_scene, yaw_pitch
    from labelsplat.schemes import get_scheme
    from labelsplat.splat import load_run, render_cameras

    scene = load_scene(scene_dir)
    scheme = get_scheme(scene.label_scheme)
    K = scheme.num_classes
    run = load_run(run_dir)
    rendered = LabellingScores.for_scheme(scheme)
    noisy = LabellingScores.for_scheme(scheme)
    outs = render_cameras(run, scene.cameras, batch_size=1)
    for fr, out in zip(scene.frames, outs):
        gt = read_label(scene.path(fr.gt_label_path), K)
        inp = read_label(scene.path(fr.label_path), K)
        yaw = yaw_pitch(fr.camera.center, scene.head_frame)[0] if scene.head_frame is not None else None
        rendered.add(out["labels"], gt, yaw)
        noisy.add(inp, gt, yaw)

    def brief(s: LabellingScores) -> dict:
        d = s.to_dict()
        return {"overall": d["overall"], "by_yaw": d["by_yaw"],
                "boundary_excluded": d["boundary_excluded"]["overall"]}

    return {"rendered_vs_gt": brief(rendered), "input_vs_gt": brief(noisy)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_speed_cpu.json"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/labelsplat_fit_bench"))
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--rig", default="facescape")
    ap.add_argument("--noise", default="simulated:medium")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--modes", default="full,rgb", help="comma list of full | none | scaled:F | rgb")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from labelsplat.cli import main as cli_main
    from labelsplat.device import resolve_device
    from labelsplat.config import fit_preset
    from labelsplat.splat import fit

    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "work", "modes")}
    if results.get("settings") not in (None, settings):
        print(f"{args.out} holds results for other settings; use another --out", file=sys.stderr)
        return 2
    results.setdefault("settings", settings)
    results.setdefault("cells", {})
    results["machine"] = _machine()
    scene_root = args.work / "scene"
    scene_dir = scene_root / "head_000"
    if not (scene_dir / "transforms.json").exists():
        shutil.rmtree(scene_root, ignore_errors=True)
        code = cli_main(["synth", "--out", str(scene_root), "--identities", "1", "--views", str(args.views),
                         "--rig", args.rig, "--resolution", str(args.resolution), "--noise", args.noise,
                         "--seed", str(args.seed)])
        if code != 0:
            return code
    device = resolve_device(args.device)
    # warm-up: load the compiled rasteriser (numba cache / gsplat JIT) and torch's lazy imports
    # once, so the first cell's fit_loop_s is not charged for them
    t0 = time.perf_counter()
    shutil.rmtree(args.work / "warmup", ignore_errors=True)
    fit(scene_dir, args.work / "warmup", fit_preset(args.preset, steps=2, seed=args.seed), device=device,
        write_outputs=False)
    shutil.rmtree(args.work / "warmup", ignore_errors=True)
    results["warmup_s"] = round(time.perf_counter() - t0, 2)
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        if mode in results["cells"]:
            print(f"skip {mode} (done)")
            continue
        over = {"seed": args.seed, "steps": args.steps}
        if mode == "rgb":
            over["semantics"] = False
        else:
            over["semantic_grad"] = mode
        cfg = fit_preset(args.preset, **over)
        run_dir = args.work / f"run_{mode.replace(':', '_')}"
        shutil.rmtree(run_dir, ignore_errors=True)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = fit(scene_dir, run_dir, cfg, device=device, progress=False)
        wall = time.perf_counter() - t0
        cell = {
            "wall_s_including_outputs": round(wall, 2), "fit_loop_s": res.summary["fit_time_s"],
            "n_gaussians": res.summary["n_gaussians"], "steps": cfg.steps,
            "train_view_psnr_fg": res.summary.get("train_view_psnr_fg"),
            "loadavg_1min_before": load0, "loadavg_1min_after": os.getloadavg()[0],
        }
        if mode != "rgb":
            cell["labels"] = _score(scene_dir, run_dir)
        results["cells"][mode] = cell
        cells = results["cells"]
        if "rgb" in cells:
            results["ratios_fit_loop_vs_rgb_only"] = {
                m: round(c["fit_loop_s"] / cells["rgb"]["fit_loop_s"], 3) for m, c in cells.items() if m != "rgb"
            }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        from labelsplat.io import atomic_write_json

        atomic_write_json(args.out, results)
        print(json.dumps({mode: {k: v for k, v in cell.items() if k != "labels"}}, indent=1))
        if "labels" in cell:
            r, n = cell["labels"]["rendered_vs_gt"], cell["labels"]["input_vs_gt"]
            print(f"  mIoU rendered {r['overall']['miou']:.4f} vs input {n['overall']['miou']:.4f}")
            for b in r["by_yaw"]:
                rb, nb = r["by_yaw"][b], n["by_yaw"][b]
                if rb and nb:
                    print(f"   {b:>7}: rendered {rb['miou']:.4f}  input {nb['miou']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
