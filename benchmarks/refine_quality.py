"""Quality benchmark: refined vs initial vs ceiling labels at extreme novel views of synthetic heads.

For each seed, ``--identities`` synthetic heads (facescape rig, ``--views`` input views at
``--resolution`` px, ``--noise`` simulated parser labels) are fitted with ``--preset`` and rendered
at ``--novel-views`` extreme novel views per head. Scored against the exact synthetic labels:

* ``initial``      the noise model's labels at the novel views (what the parser would give);
* ``refined``      argmax of the rendered logits, post-processed as ``labelsplat refine`` does
                   (255 = unknown counts as wrong; coverage reported separately);
* ``refined_raw``  argmax of the rendered logits (alpha-thresholded background), no post-processing;
* ``ceiling`` / ``ceiling_raw``: the same pipeline fitted on the EXACT labels of the same input views
  (what the representation, resolution and extraction allow);
* ``fusion`` / ``fusion_raw`` (``--fusion-bound``): the same pipeline fitted on the noisy input labels
  fused per triangle of the exact mesh (pixel majority, :mod:`benchmarks.fusion`) and rendered back at
  the input views: the fitted fusion bound, what a fit reaches when every surface point gets the
  majority of the views that see it (no multiview method can undo an error most views share).

Cells: ``main/<semantic_grad>/seed<S>`` (noisy + ceiling fits of every identity) for every seed with
the default ``semantic_grad``, and the other ``semantic_grad`` settings on the first seed only.
The novel cameras of an identity are sampled once from the synthetic head's mesh (not from a fit), so
every labelling of that identity is scored on exactly the same views. Scores pool the confusion
counts over the identities of a seed; the summary gives mean and spread (min..max) over seeds.

Resumable: the results JSON holds finished cells, which are skipped on the next run with the same
configuration (a different configuration is refused unless ``--overwrite``), and, under ``partial``,
the finished fits of an unfinished cell (per identity and labelling), which are not redone.

The published table (``benchmarks/results/refine_quality.json``) is the default configuration
(``--preset fast --views 32 --resolution 256 --novel-views 100 --identities 2 --seeds 0 1 2``)
with ``--only-main``; seeds may run in parallel processes and be joined with ``--merge``::

    python -m benchmarks.refine_quality --only-main --seeds 0 1 --out /tmp/rq_s01.json
    python -m benchmarks.refine_quality --only-main --seeds 2 --out /tmp/rq_s2.json
    python -m benchmarks.refine_quality --out /tmp/rq_s01.json --merge /tmp/rq_s2.json

The demo's configuration: ``--preset tiny --views 16 --resolution 128 --novel-views 24 --identities 1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "refine_quality.json"
LABELLINGS = ("initial", "refined", "refined_raw", "ceiling", "ceiling_raw", "fusion", "fusion_raw")


def _parse_value(text: str):
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "," in text or text.startswith("("):
        return tuple(tuple(float(x) for x in part.split(":")) if ":" in part else float(part)
                     for part in text.strip("()").split(","))
    return text


def parse_sets(items: list[str] | None) -> dict:
    """``KEY=VALUE`` items (``--fit-set`` / ``--refine-set``) -> {key: parsed value}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--fit-set/--refine-set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v.strip())
    return out


def machine_info() -> dict:
    import torch

    from labelsplat import __version__

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"labelsplat": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__}
    for mod in ("gsplat", "numba"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - informational only
            versions[mod] = None
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "cuda": bool(torch.cuda.is_available()), "loadavg_at_start": load, "versions": versions}


# ----------------------------------------------------------------------------- data
def synth_inputs(work: Path, args, seed: int) -> list[tuple[Path, Path]]:
    """(noisy scene, exact-label scene) per identity for ``seed`` (cached under ``work``)."""
    from labelsplat.synth import SynthConfig, synthesize

    base = work / f"synth_v{args.views}_r{args.resolution}_{args.noise.replace(':', '-')}_n{args.identities}_s{seed}"
    if not (base / "DONE").is_file():
        if base.exists():
            shutil.rmtree(base)
        synthesize(base / "noisy", SynthConfig(identities=args.identities, views=args.views, rig="facescape",
                                               resolution=args.resolution, noise=args.noise, seed=seed),
                   overwrite=True)
        for sdir in sorted((base / "noisy").iterdir()):
            if not (sdir / "transforms.json").is_file():
                continue
            exact = base / "exact" / sdir.name
            shutil.copytree(sdir, exact)
            # the same scene with the exact labels as its input labels (the ceiling's input)
            for p in (exact / "gt_labels").iterdir():
                shutil.copyfile(p, exact / "labels" / p.name)
        (base / "DONE").write_text("ok\n")
    pairs = [(sdir, base / "exact" / sdir.name) for sdir in sorted((base / "noisy").iterdir())
             if (sdir / "transforms.json").is_file()]
    if getattr(args, "no_masks", False):  # the other scripts' argument namespaces have no such field
        pairs = [(_without_masks(noisy), _without_masks(exact)) for noisy, exact in pairs]
    if args.label_max_yaw is None:
        return pairs
    return [(_trust_pose(noisy, args.label_max_yaw), _trust_pose(exact, args.label_max_yaw)) for noisy, exact in pairs]


def _edited_copy(scene_dir: Path, tag: str, edit, ignore=None) -> Path:
    """A copy of ``scene_dir`` beside it (``<parent>_<tag>/<name>``) that ``edit(scene)`` changed in
    place; written under a temporary name and renamed when done, and reused once it exists."""
    from labelsplat.scene import load_scene

    out = scene_dir.parent.parent / f"{scene_dir.parent.name}_{tag}" / scene_dir.name
    if (out / "transforms.json").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(scene_dir, tmp, ignore=ignore)
    edit(load_scene(tmp))
    tmp.rename(out)
    return out


def _without_masks(scene_dir: Path) -> Path:
    """A copy of ``scene_dir`` without its mask files: the fit takes the foreground from the input
    labels, as it does for a capture without masks (cached beside it)."""
    from labelsplat.scene import save_scene

    def drop_masks(scene) -> None:
        for fr in scene.frames:
            fr.mask_path = None
        save_scene(scene)

    return _edited_copy(scene_dir, "nomasks", drop_masks, ignore=shutil.ignore_patterns("masks"))


def _trust_pose(scene_dir: Path, max_yaw: float) -> Path:
    """A copy of ``scene_dir`` whose input labels are ignore (255) in views with |yaw| > ``max_yaw``.

    Uses only the cameras and the head frame (no ground truth): the parser's labels are trusted
    at near-frontal poses only, the RGB of every view still shapes the geometry.
    """
    from labelsplat.io import read_label, write_png
    from labelsplat.scene import yaw_pitch

    def ignore_beyond(scene) -> None:
        for fr in scene.frames:
            yaw, _ = yaw_pitch(fr.camera.center, scene.head_frame)
            if abs(yaw) > max_yaw:
                p = scene.path(fr.label_path)
                write_png(p, np.full_like(read_label(p), 255))

    return _edited_copy(scene_dir, f"maxyaw{max_yaw:g}", ignore_beyond)


def fused_scene(noisy_dir: Path) -> Path:
    """A copy of ``noisy_dir`` (beside it, under ``fused/``) whose input labels are its labels fused per
    mesh triangle (:func:`benchmarks.fusion.fused_label_maps`); cached."""
    from benchmarks.fusion import fused_label_maps
    from labelsplat.io import write_png
    from labelsplat.scene import load_scene

    out = noisy_dir.parent.parent / f"fused_{noisy_dir.parent.name}" / noisy_dir.name
    if (out / "DONE").is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(noisy_dir, out)
    scene = load_scene(out)
    for fr, lab in zip(scene.frames, fused_label_maps(scene)):
        write_png(scene.path(fr.label_path), lab)
    (out / "DONE").write_text("ok\n")
    return out


def novel_cameras(scene_dir: Path, n: int, seed: int, sampler):
    """``n`` novel views drawn by ``sampler`` (a ViewSamplerConfig, e.g. a RefineConfig's ``sampler``)
    around the synthetic head (head points from its mesh), seeded."""
    from labelsplat.scene import load_scene
    from labelsplat.synth import build_head, load_head
    from labelsplat.views import sample_views

    scene = load_scene(scene_dir)
    mesh = build_head(load_head(scene.root))
    verts = np.asarray(mesh.vertices)
    rng = np.random.default_rng(0)
    pts = verts[rng.choice(len(verts), size=min(len(verts), 20000), replace=False)]
    sampled = sample_views(scene.cameras, scene.head_frame, n, sampler, seed=seed, head_points=pts)
    return scene, [v.camera for v in sampled], np.array([v.yaw for v in sampled])


# ----------------------------------------------------------------------------- one fit
def stack_views(rendered: list[dict], key: str) -> np.ndarray:
    """One array of the per-view ``key`` entries of ``label_novel_views``'s rendered views."""
    return np.stack([r[key] for r in rendered])


def fit_and_label(scene_dir: Path, run_dir: Path, fit_cfg, rcfg, cameras, yaws):
    """Fit ``scene_dir`` into ``run_dir``, render ``cameras``; returns (raw labels, post-processed, info)."""
    from labelsplat.extract import extract_argmax
    from labelsplat.pipeline import label_novel_views
    from labelsplat.scene import load_scene
    from labelsplat.splat import MEMBERS_DIR, fit, load_run

    scene = load_scene(scene_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t = time.perf_counter()
    res = fit(scene, run_dir, fit_cfg, device="cpu", progress=False, write_outputs=False)
    for k in range(1, rcfg.members):  # the refine's further fits (seed + k), averaged by every render
        fit(scene, run_dir / MEMBERS_DIR / str(k), dataclasses.replace(fit_cfg, seed=fit_cfg.seed + k), device="cpu",
            progress=False, write_outputs=False)
    t_fit = time.perf_counter() - t
    run = load_run(run_dir, "cpu")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    rendered, labels, report = label_novel_views(run, scene, cameras, rcfg, yaws=yaws, timings=timings)
    if "raw_labels" in rendered[0]:  # label_novel_views keeps the argmax before post-processing
        raw = stack_views(rendered, "raw_labels")
    elif rcfg.extract == "palette":
        from labelsplat.extract import extract_palette

        raw = extract_palette(stack_views(rendered, "seg_rgb"), scene.label_scheme, rcfg.palette_method,
                              alpha=stack_views(rendered, "alpha"), alpha_threshold=rcfg.export.alpha_threshold,
                              seed=rcfg.seed).labels
    else:
        raw = extract_argmax(stack_views(rendered, "logits"), stack_views(rendered, "alpha"),
                             alpha_threshold=rcfg.export.alpha_threshold).labels
    raw = raw.cpu().numpy() if hasattr(raw, "cpu") else np.asarray(raw)
    t_label = time.perf_counter() - t
    last = res.summary.get("last_log", {}) if hasattr(res, "summary") else {}
    info = {"fit_s": round(t_fit, 2), "label_s": round(t_label, 2), "n_gaussians": int(run.model.num_gaussians),
            "members": 1 + len(run.members),
            "train_label_acc_last": last.get("label_acc"), "train_psnr_last": last.get("psnr"),
            "accepted_views": int(np.asarray(report.accepted).sum()),
            "postprocess_config": report.config, "postprocess_steps": report.steps}
    shutil.rmtree(run_dir, ignore_errors=True)
    return raw.astype(np.uint8), np.asarray(labels, dtype=np.uint8), info


def run_cell(args, work: Path, seed: int, semantic_grad: str, fit_overrides: dict, refine_overrides: dict,
             palette: bool = False, partial: dict | None = None, save=None) -> dict:
    """One cell: every identity of ``seed`` fitted on noisy and exact labels; ``palette`` = the paper's
    variant (semantic_target=palette, labels by the nearest palette colour) instead of logits + argmax.
    ``partial`` ({identity: {fit name: {"info", "scores"}}}) holds fits finished by an earlier, killed
    run (they are not redone); ``save()`` is called after every fit (the caller writes it to the JSON)."""
    from labelsplat.eval import LabellingScores
    from labelsplat.config import apply_fit_overrides, fit_preset, preset, with_overrides
    from labelsplat.schemes import get_scheme
    from labelsplat.synth import load_head, load_synth, render_views

    if palette:
        refine_overrides = {**refine_overrides, "extract": "palette"}
        fit_overrides = {**fit_overrides, "semantic_target": "palette"}
    rcfg = with_overrides(preset(args.preset), seed=seed, device="cpu", novel_views=args.novel_views,
                          **refine_overrides)
    fit_cfg = apply_fit_overrides(fit_preset(args.preset, seed=seed, semantic_grad=semantic_grad),
                                  fit_overrides)  # "none" values apply too (= off)
    partial = {} if partial is None else partial
    for noisy_dir, exact_dir in synth_inputs(work, args, seed):
        ident = noisy_dir.name
        done = partial.setdefault(ident, {})  # finished fits of this identity: {name: {"info", "scores"}}
        runs = [("refined", noisy_dir)] + ([] if args.no_ceiling else [("ceiling", exact_dir)])
        if getattr(args, "fusion_bound", False):
            runs.append(("fusion", fused_scene(noisy_dir)))
        if all(name in done for name, _ in runs) and "initial" in done:
            continue
        scene, cams, yaws = novel_cameras(noisy_dir, args.novel_views, seed, rcfg.sampler)
        scheme = get_scheme(scene.label_scheme)
        gt_views = render_views(load_head(scene.root), cams, noise=load_synth(scene.root).get("noise", "none"))
        gt = np.stack([g.gt_labels for g in gt_views])

        def scores(pred) -> dict:
            acc = LabellingScores.for_scheme(scheme)
            for k in range(len(cams)):
                acc.add(pred[k], gt[k], float(yaws[k]))
            return acc.to_dict()

        if "initial" not in done:
            done["initial"] = {"scores": {"initial": scores(np.stack([g.labels for g in gt_views]))}}
        for name, sdir in runs:
            if name in done:
                continue
            raw, pp, info = fit_and_label(sdir, work / f"run_tmp_{os.getpid()}", fit_cfg, rcfg, cams, yaws)
            done[name] = {"info": {"identity": ident, "labelling": name, **info},
                          "scores": {name: scores(pp), name + "_raw": scores(raw)}}
            print(f"  seed {seed} {ident} {name}: fit {info['fit_s']:.0f}s "
                  f"train acc {info['train_label_acc_last']}", flush=True)
            if save is not None:
                save()  # a killed run resumes after the last finished fit
    infos = [done[name]["info"] for done in partial.values() for name in ("refined", "ceiling", "fusion")
             if name in done]
    pooled: dict = {}
    for done in partial.values():
        for entry in done.values():
            for name, d in entry["scores"].items():
                pooled.setdefault(name, []).append(LabellingScores.from_dict(d))
    acc = {k: LabellingScores.pool(pooled[k]) for k in LABELLINGS if k in pooled}
    out = {"seed": seed, "semantic_grad": semantic_grad, "extract": rcfg.extract, "fits": infos,
           "fit_config": fit_cfg.to_dict(), "refine_config": rcfg.to_dict()}
    out["labellings"] = {k: v.to_dict() for k, v in acc.items() if v.num_views > 0}
    return out


# ----------------------------------------------------------------------------- summary
def _brief(L: dict) -> dict:
    keep = ("miou", "mean_f1", "coverage")
    return {
        "overall": {k: L["overall"].get(k) for k in keep},
        "by_yaw": {b: (None if m is None else {k: m.get(k) for k in keep}) for b, m in L["by_yaw"].items()},
        "boundary_excluded": {
            "overall": {k: L["boundary_excluded"]["overall"].get(k) for k in keep},
            "by_yaw": {b: (None if m is None else {k: m.get(k) for k in keep})
                       for b, m in L["boundary_excluded"]["by_yaw"].items()},
        },
        "per_class_iou": {c: v.get("iou") for c, v in L["per_class"].items()},
    }


def summarize(doc: dict) -> dict:
    """Mean and spread over seeds of the main cells; the variants side by side (first seed)."""
    main_sg = doc["settings"]["semantic_grad"]
    cells = doc["cells"]
    summary: dict = {"main": {}, "variants": {}}
    seeds_done = [c for k, c in sorted(cells.items()) if k.startswith(f"main/{main_sg}/")]
    for name in LABELLINGS:
        vals = [c["labellings"][name] for c in seeds_done if name in c["labellings"]]
        if not vals:
            continue
        rec: dict = {"n_seeds": len(vals)}

        def stat(get):
            xs = [get(v) for v in vals]
            xs = [x for x in xs if x is not None]
            if not xs:
                return None
            return {"mean": float(np.mean(xs)), "min": float(np.min(xs)), "max": float(np.max(xs)),
                    "std": float(np.std(xs)), "values": [float(x) for x in xs]}

        for metric in ("miou", "mean_f1", "coverage"):
            rec[f"overall_{metric}"] = stat(lambda v, m=metric: v["overall"].get(m))
            rec[f"be_overall_{metric}"] = stat(lambda v, m=metric: v["boundary_excluded"]["overall"].get(m))
            for b in ("0-30", "30-60", "60-90", "90-180"):
                rec[f"{b}_{metric}"] = stat(lambda v, m=metric, b=b: (v["by_yaw"].get(b) or {}).get(m))
                rec[f"be_{b}_{metric}"] = stat(
                    lambda v, m=metric, b=b: (v["boundary_excluded"]["by_yaw"].get(b) or {}).get(m))
        summary["main"][name] = rec
    for key, c in sorted(cells.items()):
        if key.startswith("variant/") or (key.startswith(f"main/{main_sg}/") and c["seed"] == doc["settings"]["seeds"][0]):
            name = "palette" if c.get("extract") == "palette" else c["semantic_grad"]
            summary["variants"][name] = {n: _brief(L) for n, L in c["labellings"].items()}
    return summary


def print_table(doc: dict) -> None:
    s = doc.get("summary", {}).get("main", {})
    if not s:
        return
    print(f"\nmIoU by |yaw| bin, mean [min..max] over {max(r['n_seeds'] for r in s.values())} seed(s):")
    bins = ("overall", "0-30", "30-60", "60-90", "90-180")
    print(f"{'labelling':<13}" + "".join(f"{b:>22}" for b in bins))
    for name, rec in s.items():
        row = f"{name:<13}"
        for b in bins:
            st = rec.get(f"{b}_miou")
            row += f"{'-':>22}" if st is None else f"{st['mean']:>8.3f} [{st['min']:.3f}..{st['max']:.3f}]"
        print(row)


def write_results(path: Path, doc: dict) -> None:
    """Atomic JSON write with numeric arrays (confusion rows) kept on one line each."""
    import re

    from labelsplat.io import atomic_write_text

    if "schema_version" not in doc:
        doc = {"schema_version": 1, **doc}
    text = json.dumps(doc, indent=1, allow_nan=False)
    text = re.sub(r"\[\s*([-0-9.eE,\s]+?)\s*\]", lambda m: "[" + re.sub(r"\s+", "", m.group(1)) + "]", text)
    atomic_write_text(path, text + "\n")


# ----------------------------------------------------------------------------- main
def _settings_apart(settings: dict, *keys: str) -> dict:
    """``settings`` without ``keys``: what two results files must share to be joined or resumed."""
    return {k: v for k, v in settings.items() if k not in keys}


def merge_results(out: Path, others: list[Path]) -> int:
    """Add the finished cells of ``others`` (same settings apart from seeds, variants and the fusion
    bound) to ``out``. Files that differ in ``--fusion-bound`` merge too (the bound costs as many fits
    as the refine, so it may run on some seeds only): ``settings["fusion_bound_seeds"]`` then lists
    the seeds that measured it, and the summary's ``n_seeds`` per labelling says the same."""
    doc = json.loads(out.read_text())

    def core(d: dict) -> dict:
        return _settings_apart(d["settings"], "seeds", "variants", "fusion_bound", "fusion_bound_seeds")

    def fusion_seeds(d: dict) -> set:
        return set(d["settings"].get("fusion_bound_seeds",
                                     d["settings"]["seeds"] if d["settings"].get("fusion_bound") else []))

    with_fusion = fusion_seeds(doc)

    for path in others:
        other = json.loads(path.read_text())
        if core(other) != core(doc):
            print(f"error: {path} holds another configuration than {out}", file=sys.stderr)
            return 2
        added = [k for k in other["cells"] if k not in doc["cells"]]
        for k in added:
            doc["cells"][k] = other["cells"][k]
        doc["settings"]["seeds"] = sorted(set(doc["settings"]["seeds"]) | set(other["settings"]["seeds"]))
        doc["settings"]["variants"] = list(dict.fromkeys(doc["settings"]["variants"] + other["settings"]["variants"]))
        doc["runs"] = doc.get("runs", []) + [{**r, "merged_from": path.name} for r in other.get("runs", [])]
        with_fusion |= fusion_seeds(other)
        print(f"{path}: merged {len(added)} cell(s): {', '.join(added) or '-'}")
    if with_fusion and with_fusion != set(doc["settings"]["seeds"]):
        doc["settings"]["fusion_bound"] = True
        doc["settings"]["fusion_bound_seeds"] = sorted(with_fusion)
    doc["summary"] = summarize(doc)
    write_results(out, doc)
    print_table(doc)
    return 0


def ceiling_from(out: Path, exact_run: Path) -> int:
    """Take each seed's ceiling in ``out`` (a ``--no-ceiling`` run) from ``exact_run``: a run of the
    same configuration with ``--noise none``, whose synthetic heads, cameras and novel views are the
    same but whose input labels are the exact ones, so that its ``refined`` labelling is this
    configuration's ceiling. Lets the refine and its ceiling run as separate processes."""
    doc, other = json.loads(out.read_text()), json.loads(exact_run.read_text())

    def core(d: dict) -> dict:
        # the fusion bound is fitted beside the refine and leaves the ceiling as it is
        return _settings_apart(d["settings"], "seeds", "variants", "noise", "ceiling", "fusion_bound",
                               "fusion_bound_seeds")

    if core(doc) != core(other) or other["settings"]["noise"] != "none" or doc["settings"]["ceiling"] is not False:
        print(f"error: {exact_run} is not the --noise none run of {out}'s configuration, or {out} has a ceiling",
              file=sys.stderr)
        return 2
    taken = []
    for key, cell in doc["cells"].items():
        src = other["cells"].get(key)
        if src is None:
            continue
        for name in ("ceiling", "ceiling_raw"):
            cell["labellings"][name] = src["labellings"][name.replace("ceiling", "refined")]
        cell["fits"] = cell["fits"] + [{**f, "labelling": "ceiling"} for f in src["fits"]]
        taken.append(key)
    if len(taken) != len(doc["cells"]):
        print(f"error: {exact_run} lacks cells of {out}: {sorted(set(doc['cells']) - set(taken))}", file=sys.stderr)
        return 2
    doc["settings"]["ceiling"] = f"from {exact_run.name} (--noise none)"
    doc["runs"] = doc.get("runs", []) + [{**r, "merged_from": exact_run.name} for r in other.get("runs", [])]
    doc["summary"] = summarize(doc)
    write_results(out, doc)
    print_table(doc)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--views", type=int, default=32)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--novel-views", type=int, default=100)
    ap.add_argument("--identities", type=int, default=2)
    ap.add_argument("--noise", default="simulated:medium")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--semantic-grad", default=None, help="main setting (default: the preset's)")
    ap.add_argument("--variants", nargs="*", default=["full", "none", "scaled:0.1", "palette"],
                    help="semantic_grad settings run on the first seed; 'palette' = the main setting fitted "
                         "with semantic_target=palette and extracted by nearest palette colour")
    ap.add_argument("--fit-set", action="append", metavar="KEY=VALUE", help="fit config override (repeatable)")
    ap.add_argument("--refine-set", action="append", metavar="KEY=VALUE", help="RefineConfig override (repeatable)")
    ap.add_argument("--label-max-yaw", type=float, default=None,
                    help="ignore the input labels of views with |yaw| above this (degrees); RGB still used")
    ap.add_argument("--no-masks", action="store_true",
                    help="drop the synthetic scenes' mask files: the foreground comes from the input labels")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the exact-label fits")
    ap.add_argument("--fusion-bound", action="store_true",
                    help="also fit the noisy labels fused per triangle of the exact mesh (the fitted fusion bound)")
    ap.add_argument("--only-main", action="store_true", help="skip the variant cells")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--workdir", type=Path, default=None, help="synthetic scenes + temporary fits (default: OUT's stem + _work in /tmp)")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                    help="merge the finished cells of these results files (same configuration, e.g. seeds run in "
                         "parallel processes) into --out, then exit")
    ap.add_argument("--ceiling-from", type=Path, default=None, metavar="JSON",
                    help="take --out's ceiling (a --no-ceiling run) from this run of the same configuration with "
                         "--noise none (the same heads with their exact labels as input), then exit")
    args = ap.parse_args(argv)
    if args.merge:
        return merge_results(args.out, args.merge)
    if args.ceiling_from:
        return ceiling_from(args.out, args.ceiling_from)

    from labelsplat.config import fit_preset

    fit_overrides = parse_sets(args.fit_set)
    refine_overrides = parse_sets(args.refine_set)
    main_sg = args.semantic_grad or fit_preset(args.preset, **{k: v for k, v in fit_overrides.items()
                                                                if k != "semantic_grad"}).semantic_grad
    fit_overrides.pop("semantic_grad", None)
    settings = {"preset": args.preset, "views": args.views, "resolution": args.resolution, "novel_views": args.novel_views,
                "identities": args.identities, "noise": args.noise, "seeds": args.seeds, "semantic_grad": main_sg,
                "variants": [] if args.only_main else args.variants, "fit_overrides": fit_overrides,
                "refine_overrides": refine_overrides, "rig": "facescape", "sampler": "extreme",
                "ceiling": not args.no_ceiling, "device": "cpu",
                "label_max_yaw": args.label_max_yaw}
    if args.fusion_bound:  # only when asked: results files written without it keep their settings
        settings["fusion_bound"] = True
    if args.no_masks:  # the same
        settings["masks"] = False
    work = args.workdir or Path("/tmp") / f"{args.out.stem}_work"
    work.mkdir(parents=True, exist_ok=True)

    doc = None
    if args.out.is_file() and not args.overwrite:
        doc = json.loads(args.out.read_text())
        old = _settings_apart(doc.get("settings", {}), "seeds", "variants")
        new = _settings_apart(json.loads(json.dumps(settings)), "seeds", "variants")
        if old != new:
            print(f"error: {args.out} holds results of another configuration ({old}); pass --overwrite or another --out",
                  file=sys.stderr)
            return 2
        doc["settings"]["seeds"] = sorted(set(doc["settings"]["seeds"]) | set(args.seeds))
        doc["settings"]["variants"] = list(dict.fromkeys(doc["settings"].get("variants", []) + settings["variants"]))
    if doc is None:
        doc = {"schema_version": 1, "benchmark": "refine_quality", "settings": settings, "cells": {}, "runs": []}
    doc["runs"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_info()})

    plan = [(f"main/{main_sg}/seed{s}", s, main_sg) for s in args.seeds]
    if not args.only_main:
        plan += [(f"variant/{sg}/seed{args.seeds[0]}", args.seeds[0], sg) for sg in args.variants if sg != main_sg]
    for key, seed, sg in plan:
        palette = sg == "palette"
        if palette:
            sg = main_sg
        if key in doc["cells"]:
            print(f"{key}: done, skipped")
            continue
        print(f"{key}: running", flush=True)
        t = time.perf_counter()
        partial = doc.setdefault("partial", {}).setdefault(key, {})

        def save() -> None:
            write_results(args.out, doc)

        cell = run_cell(args, work, seed, sg, fit_overrides, refine_overrides, palette=palette, partial=partial,
                        save=save)
        doc["partial"].pop(key, None)
        cell["wall_s"] = round(time.perf_counter() - t, 1)
        cell["loadavg_after"] = list(os.getloadavg())
        doc["cells"][key] = cell
        doc["summary"] = summarize(doc)
        write_results(args.out, doc)
        L = cell["labellings"]
        print(f"{key}: " + ", ".join(f"{n} {L[n]['overall']['miou']:.3f}" for n in LABELLINGS if n in L)
              + f" ({cell['wall_s']:.0f} s)", flush=True)
    doc["summary"] = summarize(doc)
    write_results(args.out, doc)
    print_table(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
