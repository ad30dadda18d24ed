"""Orchestration: ``refine``, ``render`` and ``demo`` over the pipeline stages.

scene -> splat (fit) -> views (sample) -> splat (render) -> extract (+ post-process) ->
dataset (export). This is the one layer that may score against synthetic ground truth: when a
scene has ``synth.json``, the exact labels and the noise model's labels are rendered at the
same novel cameras with :mod:`labelsplat.synth` and scored with :mod:`labelsplat.eval`.

Output tree (docs/design.md)::

    OUT/scenes/<scene>/run/         the fit (checkpoint, PLY, renders, train_log.jsonl)
    OUT/scenes/<scene>/views/       this scene's refined novel views (dataset layout)
    OUT/scenes/<scene>/metrics.json initial / refined scores (synthetic scenes) + consistency
    OUT/scenes/<scene>/DONE.json    written last: the scene is complete
    OUT/dataset/                    all scenes' views merged (identity-level train/val split)
    OUT/metrics.json                pooled over scenes (confusion counts summed)
    OUT/report.html
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import SCHEMA_VERSION, __version__
from .config import RefineConfig, preset
from .dataset.export import DatasetWriter, merge_datasets
from .device import resolve_device
from .errors import LabelsplatError
from .eval import (LabellingScores, confusion_matrix, metrics_document, multiview_consistency, pool_metrics_documents,
                   summary_scores, write_metrics)
from .extract import extract_argmax, extract_palette, postprocess
from .io import (atomic_dir, atomic_write_json, read_json, read_json_or_none, read_jsonl, read_label, read_rgb, write_jpg,
                 write_mp4, write_png)
from .report import ReportView, write_report
from .rundir import RESUME, RunDir
from .scene import Camera, Scene, load_scene, yaw_bin, yaw_pitch
from .scene.fingerprint import fingerprint_diff, scene_fingerprint
from .schemes import colorize, get_scheme, overlay
from .splat import (MEMBERS_DIR, final_checkpoint, fit, latest_checkpoint, load_checkpoint, load_run, render_batches,
                    render_cameras, run_from_checkpoint, save_checkpoint)
from .splat.edits import EditFile, StoredEdits, apply_edits, box_points, read_edits, run_fingerprint
from .splat.ply import save_ply
from .splat.run import member_dirs
from .synth import SynthConfig, load_head, load_synth, render_views, synthesize
from .views import orbit_cameras, sample_views


DONE = "DONE.json"
ORBIT_FPS = 24
ORBIT_VIDEO = "orbit.mp4"  # labelsplat render --orbit; OUT/scenes/<scene>/orbit/orbit.mp4 shows in the report


@dataclass
class SceneOutcome:
    """What refining one scene produced (also stored in its DONE.json)."""

    name: str
    out_dir: Path
    metrics: dict | None
    timings: dict[str, float] = field(default_factory=dict)
    n_accepted: int = 0
    n_rejected: int = 0
    skipped: bool = False


# ----------------------------------------------------------------------------- helpers
def _is_synthetic(scene: Scene) -> bool:
    return (Path(scene.root) / "synth.json").is_file()


def _valid_done(path: Path) -> bool:
    if not path.is_file():
        return False
    doc = read_json_or_none(path)
    return isinstance(doc, dict) and doc.get("status") == "done" and (path.parent / "views" / "manifest.json").is_file()


def check_refine_output(out: Path, cfg: RefineConfig, scenes: list, *, resume: bool, overwrite: bool,
                        allow_outside: bool = False) -> RunDir:
    """The refine output's :class:`RunDir` after its rules are checked (nothing written yet): an
    existing OUT only with ``resume`` (the same configuration, and every finished scene refined
    from the scene given now) or ``overwrite``."""
    rd = RunDir(out, "refine", inputs=scenes, resumable=True)
    if rd.check(resume=resume, overwrite=overwrite) == RESUME:
        rd.check_resume_config(cfg.to_dict(), upgrade=lambda d: RefineConfig.from_dict(d).to_dict())
        for s in scenes:
            try:
                scene = load_scene(s, allow_outside=allow_outside)
            except LabelsplatError:
                continue  # an unreadable scene fails on its own (batch: recorded per scene)
            done = Path(out) / "scenes" / scene.name / DONE
            if _valid_done(done):
                _check_done_scene(done, scene_fingerprint(scene))
    return rd


def _any_scene_done(out: Path) -> bool:
    """Whether a refine output holds a finished scene (``--resume`` then completes it after a failure;
    otherwise a failed refine removes what it wrote, so a rerun starts afresh)."""
    return any(_valid_done(d / DONE) for d in (out / "scenes").glob("*"))


def start_refine_output(rd: RunDir, cfg: RefineConfig, scenes: list) -> None:
    """Record the refine output's configuration and inputs (inside :meth:`RunDir.writing`)."""
    rd.write_provenance(cfg.to_dict(), cfg.seed)
    atomic_write_json(rd.path / "refine.json", {"scenes": [str(Path(s).resolve()) for s in scenes],
                                               "config": cfg.to_dict(), "version": __version__,
                                               "schema_version": SCHEMA_VERSION})


def _stack(rendered: list[dict], key: str) -> np.ndarray:
    return np.stack([r[key] for r in rendered])


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- one scene
def _head_points(run, *, min_opacity: float = 0.3, min_share: float = 0.1, keep_quantile: float = 0.98) -> np.ndarray:
    """Centres (scene units) of the fitted model's solid Gaussians, without far floaters.

    Used by the view sampler to judge how much of a novel view the head covers. A model with few
    solid Gaussians (fewer than ``min_share`` of them, e.g. an MCMC fit of large, faint Gaussians)
    gives its most opaque ``min_share`` instead, so its head does not look smaller than it is.
    """
    p = run.model.params
    means = p["means"].detach().cpu().double()
    op = torch.sigmoid(p["opacities"].detach().cpu().double())
    keep = op >= min_opacity
    top = int(math.ceil(min_share * len(op)))
    if int(keep.sum()) < max(10, top):
        keep = torch.ones_like(keep)
        if top >= 10:
            keep = torch.zeros_like(keep)
            keep[torch.topk(op, top).indices] = True
    means = means[keep]
    dist = (means - means.median(dim=0).values).norm(dim=1)
    means = means[dist <= torch.quantile(dist, keep_quantile)]
    return run.norm.to_scene(means.numpy())


def _render_and_extract(run, scene: Scene, cams: list[Camera], cfg: RefineConfig, keep_logits: bool,
                        timings: dict[str, float]) -> dict[str, Any]:
    """Render one chunk of cameras and extract its labels on the model's device (the GPU when
    there is one); returns host arrays: ``ext`` (labels, confidence), ``low_vis``, ``host`` (rgb,
    alpha, depth), ``sem_key`` and ``sem`` (the semantic channels when ``keep_logits``)."""
    ex = cfg.export
    t = time.perf_counter()
    batches = list(render_batches(run, cams, batch_size=ex.render_batch, min_views=ex.min_views_seen))
    cat = {key: torch.cat([bt[key] for bt in batches]) for key in batches[0] if key != "start"}
    timings["render"] = timings.get("render", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    alpha = cat["alpha"]
    if cfg.extract == "palette":
        if "seg_rgb" not in cat:
            raise LabelsplatError("--extract palette needs a run fitted with semantic_target=palette",
                                  hint="refit with --extract palette (refine) or --semantic-target palette (fit)")
        ext = extract_palette(cat["seg_rgb"], scene.label_scheme, cfg.palette_method, alpha=alpha,
                              alpha_threshold=ex.alpha_threshold, seed=cfg.seed)
    else:
        if "logits" not in cat:
            raise LabelsplatError("the run was fitted in palette mode: use --extract palette")
        ext = extract_argmax(cat["logits"], alpha, alpha_threshold=ex.alpha_threshold)
    low_vis = ((cat["low_view_fraction"] > ex.low_view_threshold) & (alpha >= ex.alpha_threshold)).cpu().numpy()
    host = {key: cat[key].cpu().numpy() for key in ("rgb", "alpha", "depth")}
    sem_key = "seg_rgb" if "seg_rgb" in cat else "logits"
    sem = cat[sem_key].cpu().numpy() if keep_logits else None
    del cat, batches
    timings["extract"] = timings.get("extract", 0.0) + time.perf_counter() - t
    return {"ext": ext, "low_vis": low_vis, "host": host, "sem_key": sem_key, "sem": sem}


def _view_dicts(chunk: dict[str, Any]) -> list[dict]:
    """One render dict per view of a chunk from :func:`_render_and_extract`."""
    host, ext, sem = chunk["host"], chunk["ext"], chunk["sem"]
    out = []
    for b in range(len(ext.labels)):
        d = {key: host[key][b] for key in host}
        d["confidence"] = ext.confidence[b]
        d["raw_labels"] = ext.labels[b]
        d["low_visibility"] = chunk["low_vis"][b]
        if sem is not None:
            d[chunk["sem_key"]] = sem[b]
        out.append(d)
    return out


def label_novel_views(
    run,
    scene: Scene,
    cameras: list[Camera],
    cfg: RefineConfig,
    *,
    yaws: np.ndarray,
    timings: dict[str, float],
    keep_logits: bool | None = None,
) -> tuple[list[dict], np.ndarray, Any]:
    """Render ``cameras`` from a fitted run, extract and post-process labels (no file I/O).

    Works in chunks of ``cfg.export.label_chunk`` views: each chunk is rendered, its labels
    extracted on the model's device (the GPU when there is one) and post-processed before the
    next, so memory stays bounded by the chunk (500 views of 512x512x19 float logits would be
    10 GB). Returns (renders, labels (B, H, W) uint8, post-processing report). Each render dict
    holds numpy ``rgb``, ``alpha``, ``depth``, ``confidence``, ``raw_labels`` (the argmax before
    post-processing) and ``low_visibility`` (pixels dominated by rarely seen Gaussians);
    ``logits`` / ``seg_rgb`` are kept only when ``keep_logits`` (default: when
    all of them take less than 1 GB).
    """
    yaws = np.asarray(yaws)
    if keep_logits is None:
        k = max(1, run.num_classes)
        keep_logits = sum(c.width * c.height for c in cameras) * k * 4 < 1 << 30
    rendered: list[dict] = []
    jobs = []
    chunk = max(1, int(cfg.export.label_chunk))
    t_wall = time.perf_counter()

    def post(c0, labels, confidence, low_vis, cams, depth, alpha):
        t0 = time.perf_counter()
        h, w = labels.shape[1:]
        pp_cfg = dataclasses.replace(cfg.postprocess, min_area=cfg.export.min_area(cfg.postprocess, h, w))
        out = postprocess(labels, confidence, config=pp_cfg, scheme=scene.label_scheme, yaw=yaws[c0:c0 + len(cams)],
                          low_visibility_mask=low_vis, cameras=cams, head=scene.head_frame, depth=depth, alpha=alpha)
        return out, time.perf_counter() - t0

    # post-processing (numpy / scikit-image on the host) of chunk k overlaps rendering chunk k+1
    # (half the cores, at most 8: the other half serves rendering, extraction copies and the GIL)
    with ThreadPoolExecutor(max(1, min(8, (os.cpu_count() or 1) // 2))) as pool:
        for c0 in range(0, len(cameras), chunk):
            cams = cameras[c0:c0 + chunk]
            part = _render_and_extract(run, scene, cams, cfg, keep_logits, timings)
            ext, host = part["ext"], part["host"]
            jobs.append((c0, pool.submit(post, c0, ext.labels, ext.confidence, part["low_vis"], cams, host["depth"],
                                         host["alpha"])))
            rendered.extend(_view_dicts(part))
            del part
        labels_all, reports = [], []
        for c0, fut in jobs:
            (labels, report), seconds = fut.result()
            timings["postprocess"] = timings.get("postprocess", 0.0) + seconds
            labels_all.append(labels)
            reports.append((c0, report))
    timings["label_wall"] = timings.get("label_wall", 0.0) + time.perf_counter() - t_wall
    return rendered, np.concatenate(labels_all), _merge_reports(reports)


def _merge_reports(reports: list) -> Any:
    """One PostprocessReport from the reports of consecutive chunks (view indices made global)."""
    if len(reports) == 1:
        return reports[0][1]
    views = []
    for c0, rep in reports:
        for v in rep.views:
            views.append(dataclasses.replace(v, index=v.index + c0))
    first = reports[0][1]
    missing = sorted({m for _, rep in reports for m in rep.missing_single_instance})
    return dataclasses.replace(first, views=views, seconds=sum(rep.seconds for _, rep in reports),
                               missing_single_instance=missing)


def _score_synthetic(scene: Scene, cameras: list[Camera], yaws, refined: np.ndarray, accepted: np.ndarray):
    """GT scoring (orchestration only): render exact + noise-model labels at ``cameras``."""
    doc = load_synth(scene.root)
    head = load_head(scene.root)
    gt_views = render_views(head, cameras, noise=doc.get("noise", "none"))
    scheme = get_scheme(scene.label_scheme)
    initial, refined_s = LabellingScores.for_scheme(scheme), LabellingScores.for_scheme(scheme)
    for k, gv in enumerate(gt_views):
        if not accepted[k]:
            continue
        initial.add(gv.labels, gv.gt_labels, float(yaws[k]))
        refined_s.add(refined[k], gv.gt_labels, float(yaws[k]))
    return {"initial": initial, "refined": refined_s}, gt_views


def _consistency(run, scene: Scene, cfg: RefineConfig) -> dict:
    """The checks that need no ground truth: agreement of the input views' labels reprojected
    through rendered depth (before / after), and the fitted labels' agreement with the input labels
    at the trusted input views (:func:`input_agreement`)."""
    cams = scene.cameras
    rendered = render_cameras(run, cams, batch_size=cfg.export.render_batch, min_views=cfg.export.min_views_seen)
    depths = [np.where(r["alpha"] >= cfg.export.alpha_threshold, r["depth"], 0.0) for r in rendered]
    s = get_scheme(scene.label_scheme)
    before = [read_label(scene.path(f.label_path), s.num_classes, shape=(f.camera.height, f.camera.width),
                         palette=s.palette_array()) for f in scene.frames]
    after = [r["labels"] for r in rendered]
    return {
        "before": multiview_consistency(before, depths, cams),
        "after": multiview_consistency(after, depths, cams),
        "method": "labels of each input view reprojected into its 4 nearest views through the fitted "
        "model's rendered depth; agreement over visible pixels",
        "input_agreement": input_agreement(scene, before, after, cfg),
    }


def input_agreement(scene: Scene, inputs: list[np.ndarray], fitted: list[np.ndarray], cfg: RefineConfig) -> dict:
    """mIoU of the fitted labels rendered at the input views against the input labels, over the
    views with ``|yaw| <= cfg.export.trusted_yaw`` (where a parser is trusted), and a warning when it
    falls below ``cfg.export.min_input_agreement``: without ground truth, a refine that no longer
    reproduces the labels it was given where they are reliable has gone wrong (too few steps or
    views, a broken camera, labels of another scheme)."""
    ex = cfg.export
    k = get_scheme(scene.label_scheme).num_classes
    conf = np.zeros((k, k + 1), dtype=np.int64)
    used = []
    for fr, inp, fit_lab in zip(scene.frames, inputs, fitted):
        if abs(yaw_pitch(fr.camera.center, scene.head_frame)[0]) <= ex.trusted_yaw:
            conf += confusion_matrix(fit_lab, inp, k)
            used.append(fr.name)
    m = summary_scores(conf) if used else None
    miou = None if m is None else float(m["miou"])
    doc = {"miou": miou, "trusted_yaw": ex.trusted_yaw, "threshold": ex.min_input_agreement, "views": len(used),
           "warning": None}
    if miou is None:
        doc["warning"] = (f"{scene.name}: no input view within |yaw| <= {ex.trusted_yaw:g} deg, so the refined labels "
                          "could not be checked against trusted input labels")
    elif miou < ex.min_input_agreement:
        doc["warning"] = (f"{scene.name}: the refined labels agree with the input labels at the {len(used)} trusted "
                          f"input views (|yaw| <= {ex.trusted_yaw:g} deg) at mIoU {miou:.3f}, below "
                          f"{ex.min_input_agreement:g}: the refined labels are probably worse than the input "
                          "(try a larger preset or more --steps, and check the cameras and the label scheme)")
    return doc


def export_novel_views(
    run,
    scene: Scene,
    views: list,
    views_dir: Path,
    cfg: RefineConfig,
    *,
    timings: dict[str, float],
    gt_dir: Path | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Label ``views`` (SampledView-like: ``camera, yaw, pitch, roll, beyond_coverage``) and
    write them as a dataset at ``views_dir``. On a synthetic scene (and ``cfg.score_gt``) also
    score initial / refined against exact labels, writing GT and initial labels under ``gt_dir``.

    Returns (labellings for metrics.json, accepted mask).
    """
    cams = [v.camera for v in views]
    yaws = np.array([v.yaw for v in views])
    rendered, labels, report = label_novel_views(run, scene, cams, cfg, yaws=yaws, timings=timings)
    accepted = report.accepted

    t = time.perf_counter()
    names = [f"{scene.name}_nv{k:04d}" for k in range(len(cams))]
    # recorded with the views: the fit that made them (the run's own) and the post-processing that ran
    # (resolved thresholds, each step's status)
    pp = {"config": report.config, "steps": dict(report.steps)}
    config = {**cfg.to_dict(), "fit": run.meta.get("config"), "postprocess": pp}
    with DatasetWriter(views_dir, scene.label_scheme, overwrite=True, head_frame=scene.head_frame,
                       config=config, seed=cfg.seed, allow_empty=True) as writer:
        for k, (sv, r) in enumerate(zip(views, rendered)):
            vr = report.views[k]
            meta = {
                "source_scene": scene.name, "yaw": sv.yaw, "pitch": sv.pitch, "roll": sv.roll,
                "beyond_coverage": sv.beyond_coverage, "accepted": bool(vr.accepted), "reason": vr.reason,
                "mean_confidence": vr.mean_confidence, "ignore_fraction": vr.ignore_fraction,
            }
            writer.add_view(names[k], _to_uint8(r["rgb"]), labels[k], r["confidence"], sv.camera, meta)
    timings["export"] = timings.get("export", 0.0) + time.perf_counter() - t

    labellings: dict[str, Any] = {}
    if cfg.score_gt and _is_synthetic(scene):
        t = time.perf_counter()
        scores, gt_views = _score_synthetic(scene, cams, yaws, labels, accepted)
        labellings.update(scores)
        if gt_dir is not None:  # PNG encoding and fsync release the GIL: written on threads
            with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
                list(pool.map(lambda a: write_png(*a, compress_level=1), [
                    (gt_dir / sub / f"{names[k]}.png", arr) for k, gv in enumerate(gt_views)
                    for sub, arr in (("labels", gv.gt_labels), ("initial", gv.labels))]))
        timings["score_gt"] = time.perf_counter() - t
    return labellings, accepted


def _load_refine_scene(scene_dir: str | Path, allow_outside: bool) -> Scene:
    scene = load_scene(scene_dir, allow_outside=allow_outside)
    if scene.head_frame is None:
        raise LabelsplatError(
            "the scene has no head_frame: novel viewpoints are defined around it", path=Path(scene.root) / "transforms.json",
            hint="import it with --head-frame, or add head_frame {center, up, forward} to transforms.json",
        )
    get_scheme(scene.label_scheme)
    return scene


def _fit_scene(scene: Scene, run_dir: Path, cfg: RefineConfig, device, *, resume: bool, progress: bool,
               log: Callable[[str], None]) -> None:
    """The scene's fit in ``run_dir`` and, with ``cfg.members`` > 1, its further fits (seed + k) in
    ``run_dir/members/<k>``: each reused when finished (``resume``), continued from its last
    checkpoint when interrupted (``resume``), else fitted from scratch."""
    _fit_one(scene, run_dir, cfg.fit, cfg, device, resume=resume, progress=progress, log=log)
    for k in range(1, cfg.members):
        member_cfg = dataclasses.replace(cfg.fit, seed=cfg.fit.seed + k)
        _fit_one(scene, run_dir / MEMBERS_DIR / str(k), member_cfg, cfg, device, resume=resume, progress=progress,
                 log=log, write_outputs=False)


def _fit_one(scene: Scene, run_dir: Path, fit_cfg, cfg: RefineConfig, device, *, resume: bool, progress: bool,
             log: Callable[[str], None], write_outputs: bool = True) -> None:
    if (run_dir / "checkpoint.pt").is_file() and resume:
        log(f"{scene.name}: fit already finished, reusing {run_dir}")
        return
    can_resume = resume and run_dir.exists() and latest_checkpoint(run_dir) is not None
    if run_dir.exists() and not can_resume:
        shutil.rmtree(run_dir)  # an unfinished fit inside this refine output: start it again
    fit(scene, run_dir, None if can_resume else fit_cfg, device=device, backend=cfg.backend, resume=can_resume,
        progress=progress, write_outputs=write_outputs)


def _check_done_scene(done: Path, fingerprint: dict) -> None:
    """Refuse to skip a finished scene when the scene given now is not the one it was refined from."""
    diff = fingerprint_diff(read_json(done).get("scene_fingerprint"), fingerprint)
    if diff:
        raise LabelsplatError(f"cannot resume: this output's scene of the same name was refined from another "
                              f"scene: {'; '.join(diff)}", path=done,
                              hint="resume with the scenes the output was started on, or use another --out")


def _done_outcome(sdir: Path, name: str) -> SceneOutcome:
    doc = read_json(sdir / DONE)
    metrics = read_json(sdir / "metrics.json") if (sdir / "metrics.json").is_file() else None
    return SceneOutcome(name, sdir, metrics, doc.get("timings", {}), doc.get("accepted", 0), doc.get("rejected", 0), True)


def refine_scene(
    scene_dir: str | Path,
    out: str | Path,
    cfg: RefineConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    allow_outside: bool = False,
) -> SceneOutcome:
    """Fit, sample, render, extract, post-process and export one scene into ``out/scenes/<name>``.

    ``allow_outside``: accept scene file paths that leave the scene directory (see ``load_scene``).
    """
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    scene = _load_refine_scene(scene_dir, allow_outside)
    sdir = Path(out) / "scenes" / scene.name
    fingerprint = scene_fingerprint(scene)
    if resume and _valid_done(sdir / DONE):
        _check_done_scene(sdir / DONE, fingerprint)
        log(f"{scene.name}: already done, skipped")
        return _done_outcome(sdir, scene.name)
    sdir.mkdir(parents=True, exist_ok=True)
    timings["load"] = time.perf_counter() - t

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    t = time.perf_counter()
    _fit_scene(scene, sdir / "run", cfg, device, resume=resume, progress=progress, log=log)
    timings["fit"] = time.perf_counter() - t
    run = load_run(sdir / "run", device)

    t = time.perf_counter()
    sampled = sample_views(scene.cameras, scene.head_frame, cfg.export.novel_views, cfg.sampler, seed=cfg.seed,
                           beyond_coverage=cfg.beyond_coverage, head_points=_head_points(run))
    timings["sample_views"] = time.perf_counter() - t

    labellings, accepted = export_novel_views(run, scene, sampled, sdir / "views", cfg, timings=timings,
                                              gt_dir=sdir / "gt")
    t = time.perf_counter()
    consistency = _consistency(run, scene, cfg)
    if (sdir / "run" / "run.json").is_file():  # the views' agreement on the Gaussians' classes (fit summary)
        consistency["label_agreement"] = read_json(sdir / "run" / "run.json").get("summary", {}).get("label_agreement")
    timings["consistency"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    config = {"refine": cfg.to_dict(), "fit": run.meta.get("config"), "scene": str(Path(scene.root).resolve()),
              "timings_s": timings, "n_gaussians": int(run.model.num_gaussians)}
    metrics = metrics_document(labellings, consistency=consistency, config=config, seed=cfg.seed)
    write_metrics(sdir / "metrics.json", metrics)
    n_acc, n_rej = int(accepted.sum()), int((~accepted).sum())
    atomic_write_json(sdir / DONE, {"status": "done", "scene": str(Path(scene.root).resolve()), "accepted": n_acc,
                                    "rejected": n_rej, "timings": timings, "seed": cfg.seed, "version": __version__,
                                    "scene_fingerprint": fingerprint})
    return SceneOutcome(scene.name, sdir, metrics, timings, n_acc, n_rej)


# ----------------------------------------------------------------------------- many scenes
REPORT_VIEWS_PER_BIN = 6


def finish_outputs(out: Path, outcomes: list[SceneOutcome], cfg: RefineConfig, *, title: str) -> dict:
    """Merge the scenes' views into OUT/dataset, pool metrics into OUT/metrics.json, write the report."""
    merge_datasets([o.out_dir / "views" for o in outcomes], out / "dataset", overwrite=True,
                   val_fraction=cfg.export.val_fraction, seed=cfg.seed, celebamask_layout=cfg.export.celebamask_layout)
    docs = [o.metrics for o in outcomes if o.metrics is not None]
    if docs and any(d.get("labellings") for d in docs):
        pooled = pool_metrics_documents(docs, names=[o.name for o in outcomes], config={"refine": cfg.to_dict()}, seed=cfg.seed)
    else:
        pooled = metrics_document({}, config={"refine": cfg.to_dict()}, seed=cfg.seed)
    pooled["consistency"] = {o.name: (o.metrics or {}).get("consistency") for o in outcomes}
    pooled["warnings"] = [w for c in pooled["consistency"].values() for check in ("label_agreement", "input_agreement")
                          if (w := ((c or {}).get(check) or {}).get("warning"))]
    pooled["timings_s"] = {o.name: o.timings for o in outcomes}
    write_metrics(out / "metrics.json", pooled)

    manifest = read_json(out / "dataset" / "manifest.json")
    by_name = {o.name: o for o in outcomes}
    views = []
    shown: dict[str, int] = {}
    for v in manifest["views"]:
        # the report shows the first REPORT_VIEWS_PER_BIN views of each |yaw| bin: only those
        # get colourised GT / initial copies (500 views would otherwise cost 1000 PNG writes)
        b = yaw_bin(float(v.get("yaw") or 0.0))
        if shown.get(b, 0) >= REPORT_VIEWS_PER_BIN:
            continue
        shown[b] = shown.get(b, 0) + 1
        o = by_name.get(v.get("source_scene"))
        images: dict[str, Path] = {}
        if v.get("image"):
            images["RGB (splat)"] = out / "dataset" / v["image"]
        if o is not None:
            orig = v.get("original_name", v["name"])
            for col, sub in (("initial labels", "initial"), ("GT", "labels")):
                p = o.out_dir / "gt" / sub / f"{orig}.png"
                if p.is_file():
                    images[col] = _colour_copy(p, out / "report_files" / sub / v["name"], manifest["label_scheme"],
                                               rgb=images.get("RGB (splat)"))
        if v.get("overlay"):
            images["refined labels"] = out / "dataset" / v["overlay"]
        if v.get("confidence"):
            images["confidence"] = out / "dataset" / v["confidence"]
        note = "" if v.get("accepted", True) else f"rejected: {v.get('reason')}"
        if v.get("rejected_overlay"):
            images["refined labels"] = out / "dataset" / v["rejected_overlay"]
        views.append(ReportView(v["name"], float(v.get("yaw") or 0.0), float(v.get("pitch") or 0.0), images, note))
    logs = {}
    for o in outcomes:
        p = o.out_dir / "run" / "train_log.jsonl"
        if p.is_file():
            logs[o.name] = [rec for _, rec in read_jsonl(p) if isinstance(rec, dict)]
    videos = {o.name: o.out_dir / "orbit" / ORBIT_VIDEO for o in outcomes
              if (o.out_dir / "orbit" / ORBIT_VIDEO).is_file()}
    viewer = {o.name: f"labelsplat view {os.path.relpath(o.out_dir / 'run', out)}" for o in outcomes
              if (o.out_dir / "run").is_dir()}
    write_report(out / "report.html", title=title, metrics=pooled, views=views, train_logs=logs,
                 max_views_per_bin=REPORT_VIEWS_PER_BIN, videos=videos, viewer_commands=viewer,
                 notes=[f"labelsplat {__version__}; preset {cfg.preset}; seed {cfg.seed}; "
                        f"{sum(o.n_accepted for o in outcomes)} views accepted, "
                        f"{sum(o.n_rejected for o in outcomes)} rejected"],
                 warnings=pooled["warnings"])
    return pooled


def _colour_copy(label_png: Path, dst_stem: Path, scheme: str, *, rgb: Path | None = None) -> Path:
    """The report's GT / initial column for a label PNG: blended over the view's image like the
    refined labels (the dataset's overlays: alpha 0.5, JPEG); a flat colour map when there is no
    image of the same size (rejected views)."""
    lab = read_label(label_png)
    img = read_rgb(rgb) if rgb is not None and Path(rgb).is_file() else None
    if img is not None and img.shape[:2] == lab.shape:
        return write_jpg(dst_stem.with_suffix(".jpg"), overlay(img, lab, get_scheme(scheme), alpha=0.5))
    return write_png(dst_stem.with_suffix(".png"), colorize(lab, get_scheme(scheme)))


def refine(
    scenes: list[str | Path],
    out: str | Path,
    cfg: RefineConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    title: str = "labelsplat refine",
    allow_outside: bool = False,
) -> tuple[dict, list[SceneOutcome]]:
    """Refine every scene into one output tree (module docstring); returns (pooled metrics, outcomes)."""
    if not scenes:
        raise LabelsplatError("no scenes given")
    names = [load_scene(s, allow_outside=allow_outside).name for s in scenes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise LabelsplatError(f"scene names must be unique within one run, repeated: {sorted(dup)}")
    out = Path(out)
    rd = check_refine_output(out, cfg, scenes, resume=resume, overwrite=overwrite, allow_outside=allow_outside)
    with rd.writing(resume=resume, overwrite=overwrite, log=log,  # one writer per output
                    resumable=lambda: _any_scene_done(out)):
        start_refine_output(rd, cfg, scenes)
        outcomes = [refine_scene(s, out, cfg, resume=resume, progress=progress, log=log,
                                 allow_outside=allow_outside) for s in scenes]
        pooled = finish_outputs(out, outcomes, cfg, title=title)
    return pooled, outcomes


# ----------------------------------------------------------------------------- render from a run
@dataclass
class GivenView:
    """A novel view given by the user (``--cameras``) rather than sampled."""

    camera: Camera
    yaw: float
    pitch: float
    roll: float = 0.0
    beyond_coverage: bool = False


def render_run(
    run_dir: str | Path,
    out: str | Path,
    cfg: RefineConfig,
    *,
    cameras: str | Path | None = None,
    scene_dir: str | Path | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[dict, int, int]:
    """``labelsplat render``: novel views of an existing fit -> labels -> ``OUT/dataset``.

    The views are sampled as in ``refine`` or, with ``cameras`` (a transforms.json or scene
    directory), exactly those cameras in their order. The run's scene (``run.json``) gives the
    head frame and label scheme (``scene_dir`` overrides where it moved). Synthetic scenes are
    scored into ``OUT/metrics.json``. Returns (metrics, accepted, rejected).
    """
    run_dir = Path(run_dir)
    scene = _render_scene(run_dir, scene_dir)
    out = Path(out)
    rd = RunDir(out, "render", inputs=[run_dir, scene.root, cameras])
    with rd.writing(overwrite=overwrite, log=log):  # one writer per output
        return _render_into(rd, run_dir, scene, cfg, cameras, log)


def _render_into(rd: RunDir, run_dir: Path, scene: Scene, cfg: RefineConfig, cameras, log) -> tuple[dict, int, int]:
    out = rd.path
    run = load_run(run_dir, resolve_device(cfg.device))
    if getattr(run.config, "semantic_target", "logits") == "palette" and cfg.extract != "palette":
        cfg = dataclasses.replace(cfg, extract="palette")  # a palette fit has no logits to argmax
    # the run's own fit configuration is in its run.json; this command's fit subtree is unused
    record = {k: v for k, v in cfg.to_dict().items() if k != "fit"}
    rd.write_provenance(record, cfg.seed)
    timings: dict[str, float] = {}
    if cameras is not None:
        views = []
        for cam in load_scene(cameras).cameras:
            yaw, pitch = yaw_pitch(cam.center, scene.head_frame)
            views.append(GivenView(cam, yaw, pitch))
    else:
        views = sample_views(scene.cameras, scene.head_frame, cfg.export.novel_views, cfg.sampler, seed=cfg.seed,
                             beyond_coverage=cfg.beyond_coverage, head_points=_head_points(run))
    labellings, accepted = export_novel_views(run, scene, views, out / "dataset", cfg, timings=timings,
                                              gt_dir=out / "gt")
    doc = metrics_document(labellings, config={"render": record, "run": str(run_dir.resolve()),
                                               "timings_s": timings}, seed=cfg.seed)
    write_metrics(out / "metrics.json", doc)
    log(f"rendered {len(views)} views from {run_dir}")
    return doc, int(accepted.sum()), int((~accepted).sum())


def orbit_frames(run, scene: Scene, n: int, *, chunk: int = 8) -> list[np.ndarray]:
    """``n`` frames once around the head (pitch 0, the inputs' mean distance; see
    :func:`labelsplat.views.orbit_cameras`), each the RGB render and its label overlay side by side."""
    cams = orbit_cameras(scene.cameras, scene.head_frame, n)
    frames = []
    for c0 in range(0, len(cams), chunk):
        for r in render_cameras(run, cams[c0:c0 + chunk]):
            rgb = _to_uint8(r["rgb"])
            side = overlay(rgb, r["labels"], scene.label_scheme) if "labels" in r else rgb
            frames.append(np.concatenate([rgb, side], axis=1))
    return frames


def render_orbit(run_dir: str | Path, out: str | Path, n: int, *, device: str = "auto", frames: bool = False,
                 scene_dir: str | Path | None = None, overwrite: bool = False,
                 log: Callable[[str], None] = print) -> Path:
    """``labelsplat render --orbit N``: ``OUT/orbit.mp4`` (RGB | label overlay, N frames at 24 fps)
    and, with ``frames``, ``OUT/orbit/NNNN.png``. Returns the video's path."""
    run_dir = Path(run_dir)
    scene = _render_scene(run_dir, scene_dir)
    rd = RunDir(Path(out), "render", inputs=[run_dir, scene.root])
    rd.check(overwrite=overwrite)
    run = load_run(run_dir, resolve_device(device))
    pics = orbit_frames(run, scene, n)
    with rd.writing(overwrite=overwrite, log=log):  # one writer per output
        rd.write_provenance({"orbit": int(n), "frames": bool(frames), "device": device}, None)
        if frames:
            for i, f in enumerate(pics):
                write_png(rd.path / "orbit" / f"{i:04d}.png", f)
        video = write_mp4(rd.path / ORBIT_VIDEO, pics, ORBIT_FPS)
    log(f"rendered an orbit of {n} frames from {run_dir}")
    return video


def _run_scene_source(run_dir: str | Path, scene_dir: str | Path | None) -> tuple[Path, dict, str | Path]:
    """(run.json's path, its content, the scene to load): ``scene_dir`` where the scene moved, else
    the one run.json names."""
    run_json = Path(run_dir) / "run.json"
    meta = read_json(run_json)
    src = scene_dir if scene_dir is not None else meta.get("scene")
    if not src:
        raise LabelsplatError("run.json does not name its scene", path=run_json, hint="pass --scene SCENE")
    return run_json, meta, src


def _render_scene(run_dir: Path, scene_dir: str | Path | None) -> Scene:
    """The scene a run was fitted on (``scene_dir`` where it moved), checked against the run."""
    run_json, meta, src = _run_scene_source(run_dir, scene_dir)
    scene = load_scene(src)
    if meta.get("label_scheme") != scene.label_scheme:
        raise LabelsplatError(
            f"the run was fitted with label scheme {meta.get('label_scheme')!r} but the scene uses "
            f"{scene.label_scheme!r}", path=run_json, hint="render the run with the scene it was fitted on",
        )
    if scene.head_frame is None:
        raise LabelsplatError("the run's scene has no head_frame", path=Path(scene.root) / "transforms.json")
    return scene


# ----------------------------------------------------------------------------- 3D label edits
def run_head_frame(run_dir: str | Path, scene_dir: str | Path | None = None):
    """The head frame of a run's scene (``scene_dir`` where it moved; None: the scene has none)."""
    run_json, _, src = _run_scene_source(run_dir, scene_dir)
    if scene_dir is None and not Path(src).exists():
        raise LabelsplatError(f"the run's scene {src} is gone", path=run_json, hint="pass --scene SCENE")
    return load_scene(src).head_frame


def edit_run(run_dir: str | Path, edits_path: str | Path, out: str | Path, *, scene_dir: str | Path | None = None,
             overwrite: bool = False, log: Callable[[str], None] = print) -> list[int]:
    """``labelsplat edit``: a new run ``out`` = ``run_dir`` with the 3D label edits of ``edits_path``
    (:mod:`labelsplat.splat.edits`) applied and stored (they are applied again after any later
    label assignment). The original run is untouched; edits it already carries are not applied
    twice. Everything is checked before anything is written. Returns the Gaussians each new edit
    selected."""
    run_dir, out = Path(run_dir), Path(out)
    ck_path = final_checkpoint(run_dir)
    ck = load_checkpoint(ck_path)
    run = run_from_checkpoint(ck, ck_path, "cpu")
    stored = StoredEdits.from_dict(run.meta.get("label_edits"))
    head = stored.head_frame if stored is not None else run_head_frame(run_dir, scene_dir)
    fp = run_fingerprint(run.model)
    doc = read_edits(edits_path, scheme=run.label_scheme, num_gaussians=run.model.num_gaussians, fingerprint=fp)
    rd = RunDir(out, "fit", inputs=[run_dir, edits_path])
    rd.check(overwrite=overwrite)
    new = stored.new_edits(doc.edits) if stored is not None else list(doc.edits)
    counts = apply_edits(run.model, new, scheme=run.label_scheme, norm=run.norm, head=head, scale=run.config.bg_logit)
    every = StoredEdits((stored.edits if stored is not None else []) + new, head, fp)
    ck["model"]["params"]["sem"] = run.model.params["sem"].detach().cpu().clone()
    ck["meta"]["label_edits"] = every.to_dict()
    run_json = read_json(run_dir / "run.json")
    run_json.update(label_edits=every.to_dict(), edited_from=str(run_dir.resolve()), label_edits_selected=counts)
    members = _edited_members(run_dir, doc.edits, head, log)
    with atomic_dir(out, overwrite=True) as tmp:
        save_checkpoint(tmp / "checkpoint.pt", ck)
        save_ply(tmp / "point_cloud.ply", run.model, run.norm)
        atomic_write_json(tmp / "run.json", run_json)
        atomic_write_json(tmp / "edits.json", EditFile(every.edits, fp, run.label_scheme).to_dict())
        for name, member_ck in members:
            save_checkpoint(tmp / MEMBERS_DIR / name / "checkpoint.pt", member_ck)
    rd.write_provenance({"edits": str(Path(edits_path).resolve()), "applied": len(new)}, None)
    log(f"applied {len(new)} edit(s) ({len(doc.edits) - len(new)} already in the run): {counts} Gaussians selected")
    empty = [i for i, c in enumerate(counts) if c == 0]
    if empty:
        pts = box_points(run.model, run.norm, head)
        lo, hi = np.percentile(pts, 2, axis=0).round(3).tolist(), np.percentile(pts, 98, axis=0).round(3).tolist()
        log(f"warning: new edit(s) {empty} selected no Gaussian; the run's Gaussians lie within {lo} .. {hi} "
            f"in the {'head' if head is not None else 'world'} frame (scene units), where boxes are given")
    return counts


def _edited_members(run_dir: Path, edits: list, head, log: Callable[[str], None]) -> list[tuple[str, dict]]:
    """(folder name, checkpoint) of each further fit of ``run_dir`` (``RUN/members/<k>``) with ``edits``
    applied as to the first fit, so that the edited run averages as many fits as the original. An
    edit by Gaussian ids names the first fit's Gaussians only: then the members are left out (said)."""
    dirs = [d for d in member_dirs(run_dir) if (d / "checkpoint.pt").is_file()]
    if not dirs:
        return []
    if any(e.ids is not None for e in edits):
        log(f"note: the run averages {len(dirs) + 1} fits, but an edit by Gaussian ids applies to the first fit "
            "only: the edited run is that fit alone")
        return []
    out = []
    for d in dirs:
        ck = load_checkpoint(d / "checkpoint.pt")
        member = run_from_checkpoint(ck, d / "checkpoint.pt", "cpu")
        stored = StoredEdits.from_dict(member.meta.get("label_edits"))
        new = stored.new_edits(edits) if stored is not None else list(edits)
        apply_edits(member.model, new, scheme=member.label_scheme, norm=member.norm, head=head,
                    scale=member.config.bg_logit)
        every = StoredEdits((stored.edits if stored is not None else []) + new, head, run_fingerprint(member.model))
        ck["model"]["params"]["sem"] = member.model.params["sem"].detach().cpu().clone()
        ck["meta"]["label_edits"] = every.to_dict()
        out.append((d.name, ck))
    return out


# ----------------------------------------------------------------------------- demo
def demo(out: str | Path, cfg: RefineConfig | None = None, *, views: int = 16, resolution: int = 128,
         noise: str = "simulated:medium", overwrite: bool = False, progress: bool = True,
         log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """The embedded default: one synthetic head with simulated noise, refined with ``cfg``
    (default: the ``tiny`` preset). A previous demo output at ``out`` is replaced; any other
    labelsplat output only with ``overwrite``, and a directory labelsplat did not write never.

    Returns (pooled metrics, timings).
    """
    cfg = cfg if cfg is not None else preset("tiny")
    out = Path(out)
    rd = RunDir(out, "demo")
    with rd.writing(overwrite=overwrite or (rd.path.is_dir() and _is_demo_output(rd)), log=log):  # one writer
        rd.write_provenance(cfg.to_dict(), cfg.seed)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        synthesize(out / "input", SynthConfig(identities=1, views=views, rig="facescape", resolution=resolution,
                                              noise=noise, seed=cfg.seed), overwrite=True)
        timings["synth"] = time.perf_counter() - t
        t = time.perf_counter()
        pooled, _ = refine([out / "input" / "head_000"], out / "refined", cfg, overwrite=True, progress=progress,
                           log=log, title="labelsplat demo: one synthetic head, simulated parser noise")
        timings["refine"] = time.perf_counter() - t
    return pooled, timings


def _is_demo_output(rd: RunDir) -> bool:
    """A previous ``demo`` output: its marker says so, or (older versions) it holds input/ and refined/refine.json."""
    kind = rd.existing_kind()
    if kind is not None:
        return kind == "demo"
    return rd.origin() == "legacy" and (rd.path / "input").is_dir() and (rd.path / "refined" / "refine.json").is_file()
