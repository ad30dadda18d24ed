"""The paper's full loop, measured: does fine-tuning a parser on refined
extreme-view labels make it better at extreme poses without losing frontal accuracy?

Per seed (every stage writes its outputs and then a ``<stage>.done.json`` marker under
``WORK/seed_<s>/``; a rerun skips finished stages, and interrupted BiSeNet trainings and
refine fits continue from their checkpoints):

1. ``frontal``     synthetic identities (split "train") rendered at near-frontal cameras
                   (|yaw| < 30 deg, |pitch| <= 20 deg), exact labels -> dataset via
                   :func:`labelsplat.train.scenes_dataset.dataset_from_scenes` (face crop as
                   ``labelsplat parse`` does).
2. ``baseline``    BiSeNet trained from scratch on it (:func:`labelsplat.train.train`).
3. ``multiview``   held-out identities (split "multiview"), facescape rig; the baseline parses
                   every input view (face crop + ``Parser.predict``, as ``labelsplat parse SCENE``) -> the
                   initial (noisy) labels are the parser's real errors. Their scores against the
                   exact labels are recorded.
4. ``refine``      :func:`labelsplat.pipeline.refine` (extreme sampler) on those scenes.
5. ``aux``         the refined novel views, face-cropped exactly like the frontal set, become
                   two datasets with the SAME images: ``refined`` (the refined labels) and
                   ``noisy`` (the baseline parser's own labels of those images = self-training;
                   see docs/paper_loop.md for why this is the reading of "raw noisy multiview
                   labels, same images" used here). Both label sets are scored against the exact
                   labels rendered at the same novel cameras.
6. ``ft_refined`` / ``ft_noisy``  fine-tune the baseline on each, mixed with the frontal set
                   (``mix`` = the frontal set's share of samples), identical schedule and seed.
7. ``evalset``     further held-out identities (split "eval"), orbit rig (all yaw bins incl.
                   60-90 and 90-180), exact labels.
8. ``eval_<model>`` each of baseline / ft_refined / ft_noisy parses the eval views (face crop as
                   ``parse``), scored with :class:`labelsplat.eval.LabellingScores` (the metrics of
                   docs/design.md: pooled confusion, by |yaw| bin, per class, boundary-excluded).

Identities of the three splits never overlap (different synth seeds per split and seed).
The results JSON (``benchmarks/results/paper_loop_<config>.json``) is rebuilt from the markers
after every stage: machine, versions, settings, timings, all scores incl. confusions, and a
summary over the finished seeds (mean, min, max, std) with the loop's targets checked.

Usage::

    python -m benchmarks.paper_loop --config cpu3 --seeds 0,1,2 --threads 1     # resumable
    python -m benchmarks.paper_loop --config gpu --seeds 0,1,2 --device cuda
    python -m benchmarks.paper_loop --config micro --seeds 0 --work /tmp/pl --results /tmp/pl.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = ("baseline", "ft_refined", "ft_noisy")
EXTREME_BINS = ("60-90", "90-180")
FRONTAL_BIN = "0-30"


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class LoopConfig:
    """Sizes of one configuration. Resolutions in pixels, angles in degrees."""

    name: str
    # 1. frontal training set
    train_identities: int
    train_views: int
    train_resolution: int
    frontal_max_yaw: float = 28.0  # |yaw| drawn uniformly below this (< 30: the 0-30 bin)
    frontal_max_pitch: float = 20.0
    # 2. baseline
    input_size: int = 128
    batch_size: int = 8
    base_iters: int = 600
    base_lr: float = 1e-2
    # 3. multiview scenes (facescape rig)
    mv_identities: int = 4
    mv_views: int = 16
    mv_resolution: int = 128
    # 4. refine
    refine_preset: str = "tiny"
    novel_views: int = 48
    refine_steps: int | None = None  # None: the preset's fit steps
    # FitConfig overrides of the refine's fits, "KEY=VALUE;KEY=VALUE" as --fit-set takes them, e.g.
    # "label_view_weight=yaw:30:0.1" (the input labels of views beyond 30 deg weigh less); "" = none
    refine_fit_set: str = ""
    # 6. fine-tuning
    ft_iters: int = 300
    ft_lr: float = 2.5e-3
    ft_warmup: int = 10
    frontal_mix: float = 0.5  # share of fine-tuning samples drawn from the frontal set
    # 5. aux images: "black" = refine's splat renders as they are (black background);
    # "synth" = re-rendered with alpha and composited onto backgrounds drawn like the synthetic
    # inputs' (labelsplat.synth.render.background_image), seeded; both arms get the same images
    aux_background: str = "black"
    # 7. evaluation scenes (orbit rig)
    eval_identities: int = 4
    eval_views: int = 24
    eval_resolution: int = 128
    parse_batch: int = 8
    ckpt_every: int = 100


CONFIGS: dict[str, LoopConfig] = {
    # tests: seconds
    "micro": LoopConfig(
        name="micro", train_identities=2, train_views=2, train_resolution=48, input_size=32, batch_size=2,
        base_iters=2, mv_identities=1, mv_views=6, mv_resolution=48, refine_preset="micro", novel_views=3, refine_steps=12,
        ft_iters=2, ft_warmup=0, aux_background="synth", eval_identities=1, eval_views=4, eval_resolution=48,
        parse_batch=4, ckpt_every=0,
    ),
    # a first end-to-end check of the real pipeline (minutes)
    "small": LoopConfig(
        name="small", train_identities=12, train_views=4, train_resolution=128, input_size=64, batch_size=4,
        base_iters=40, mv_identities=1, mv_views=16, mv_resolution=128, refine_preset="tiny", novel_views=12,
        ft_iters=20, ft_warmup=2, eval_identities=1, eval_views=12, eval_resolution=128, ckpt_every=20,
    ),
    # 2 CPU cores, 128x128 input: the first configuration measured (its baseline is too weak)
    "cpu": LoopConfig(
        name="cpu", train_identities=60, train_views=8, train_resolution=128, input_size=128, batch_size=6,
        base_iters=500, base_lr=1e-2, mv_identities=4, mv_views=16, mv_resolution=128, refine_preset="tiny",
        novel_views=40, ft_iters=200, ft_lr=2.5e-3, ft_warmup=10, frontal_mix=0.5, eval_identities=4,
        eval_views=24, eval_resolution=128, ckpt_every=50,
    ),
    # cpu with 6x the baseline steps (the 500-step
    # parser never learnt eyes/nose/lips), 2x the frontal identities (data cost ~1 min), the
    # refined views composited onto input-like backgrounds (render-domain gap), 300 fine-tune steps
    "cpu2": LoopConfig(
        name="cpu2", train_identities=120, train_views=8, train_resolution=128, input_size=128, batch_size=6,
        base_iters=3000, base_lr=1e-2, mv_identities=4, mv_views=16, mv_resolution=128, refine_preset="tiny",
        novel_views=40, ft_iters=300, ft_lr=2.5e-3, ft_warmup=10, frontal_mix=0.5, aux_background="synth",
        eval_identities=4, eval_views=24, eval_resolution=128, ckpt_every=100,
    ),
    # the configuration of the published table (docs/paper_loop.md): the refine's fits weigh each
    # input view's labels by its pose (1 up to |yaw| 30, 0.1 at 90), and 2500 fine-tune steps with
    # 60 % frontal samples (the refined exposure of 2000 steps at 0.5, 1.5x the frontal exposure)
    "cpu3": LoopConfig(
        name="cpu3", train_identities=120, train_views=8, train_resolution=128, input_size=128, batch_size=6,
        base_iters=3000, base_lr=1e-2, mv_identities=4, mv_views=16, mv_resolution=128, refine_preset="tiny",
        novel_views=40, refine_fit_set="label_view_weight=yaw:30:0.1", ft_iters=2500, ft_lr=2.5e-3, ft_warmup=10,
        frontal_mix=0.6, aux_background="synth", eval_identities=4, eval_views=24, eval_resolution=128,
        ckpt_every=100,
    ),
    # one GPU, 512x512 input (face-parsing.PyTorch's size); run with --device cuda
    "gpu": LoopConfig(
        name="gpu", train_identities=300, train_views=8, train_resolution=512, input_size=512, batch_size=16,
        base_iters=20000, base_lr=1e-2, mv_identities=8, mv_views=32, mv_resolution=512, refine_preset="fast",
        novel_views=200, ft_iters=4000, ft_lr=2.5e-3, ft_warmup=100, frontal_mix=0.5, aux_background="synth",
        eval_identities=8,
        eval_views=36, eval_resolution=512, parse_batch=16, ckpt_every=1000,
    ),
}

SPLITS = {"train": 0, "multiview": 1, "eval": 2}


def split_seed(seed: int, split: str) -> int:
    """The synth seed of a split for experiment seed ``seed`` (disjoint identities per split)."""
    return 1000 * int(seed) + 17 + SPLITS[split]


# ----------------------------------------------------------------------------- small helpers
@functools.lru_cache(maxsize=1)
def machine() -> dict:
    import numba
    import torch

    from labelsplat import __version__

    return {
        "platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": {"labelsplat": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "numba": numba.__version__},
    }


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except Exception:
        return None


def load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class Stage:
    """A resumable stage: ``done`` when its marker exists; ``finish`` writes the marker last."""

    def __init__(self, root: Path, name: str):
        self.root, self.name = root, name
        self.marker = root / f"{name}.done.json"

    @property
    def done(self) -> bool:
        return self.marker.is_file()

    def read(self) -> dict:
        return json.loads(self.marker.read_text())

    def finish(self, record: dict) -> dict:
        from labelsplat.io import atomic_write_json

        atomic_write_json(self.marker, record)
        return self.read()


# Fields read only by the fine-tunes: runs that differ only in these share every other stage.
FT_ONLY_FIELDS = ("ft_iters", "ft_lr", "ft_warmup", "frontal_mix", "ckpt_every")
# Fields read by the refine, the aux images and the fine-tunes only: runs that differ in these
# (and the fine-tune fields) share the frontal set, the baseline, the parsed multiview scenes and the
# evaluation of the baseline.
REFINE_FIELDS = ("refine_preset", "novel_views", "refine_steps", "refine_fit_set", "aux_background")
# Stages (and the files the later stages read by path) that ``--reuse`` takes from another work dir.
REUSABLE_STAGES = ("frontal", "baseline", "multiview", "refine", "aux", "evalset", "eval_baseline")
REUSABLE_FILES = ("baseline.pth", "baseline.pth.json", "refined_dataset", "noisy_dataset")


def reuse_mismatch(cfg: "LoopConfig", other: dict) -> list[str]:
    """Fields where ``other`` (a work dir's config.json) differs from ``cfg``, ``name`` left out."""
    mine = asdict(cfg)
    return sorted(k for k in mine if k != "name"
                  and other.get(k, LoopConfig.__dataclass_fields__[k].default) != mine[k])


def reusable(mismatch: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(stages, files) that a work dir differing from this run in ``mismatch`` can lend it, or None
    when it differs in a field every stage reads."""
    if set(mismatch) <= set(FT_ONLY_FIELDS):
        return REUSABLE_STAGES, REUSABLE_FILES
    if set(mismatch) <= set(FT_ONLY_FIELDS) | set(REFINE_FIELDS):
        return (tuple(s for s in REUSABLE_STAGES if s not in ("refine", "aux")), ("baseline.pth", "baseline.pth.json"))
    return None


def adopt_stages(src: Path, root: Path, stages: tuple[str, ...] = REUSABLE_STAGES,
                 files: tuple[str, ...] = REUSABLE_FILES) -> list[str]:
    """Take the finished ``stages`` of ``src`` (one seed's directory of another work dir) into
    ``root``: their records are copied (they name ``src``'s files by absolute path) and ``files``
    (those later stages read by path) are symlinked. Returns the stage names adopted."""

    got = []
    for name in stages:
        m = src / f"{name}.done.json"
        if m.is_file() and not Stage(root, name).done:
            shutil.copyfile(m, root / f"{name}.done.json")
            got.append(name)
    for f in files:
        if (src / f).exists() and not (root / f).exists():
            (root / f).symlink_to((src / f).resolve(), target_is_directory=(src / f).is_dir())
    return got


# ----------------------------------------------------------------------------- data
def write_synth_scene(out: Path, head_seed: int, cameras: list, *, identity: int, split: str) -> None:
    """One synthetic identity at ``cameras`` as a canonical scene (exact labels in both
    ``labels/`` and ``gt_labels/``; noise "none"), written atomically."""
    from labelsplat import SCHEMA_VERSION
    from labelsplat.io import atomic_dir, atomic_write_json, write_png
    from labelsplat.scene import Frame, Scene, save_scene
    from labelsplat.synth import head_frame, render_views, sample_head
    from labelsplat.synth.regions import SCHEME

    params = sample_head(head_seed)
    views = render_views(params, cameras, noise="none")
    with atomic_dir(out, overwrite=True) as tmp:
        frames = []
        for k, v in enumerate(views):
            name = f"view_{k:03d}"
            write_png(tmp / "images" / f"{name}.png", v.rgb)
            write_png(tmp / "labels" / f"{name}.png", v.gt_labels)
            write_png(tmp / "gt_labels" / f"{name}.png", v.gt_labels)
            write_png(tmp / "masks" / f"{name}.png", v.mask.astype(np.uint8) * 255)
            frames.append(Frame(name=name, camera=v.camera, file_path=f"images/{name}.png",
                                label_path=f"labels/{name}.png", gt_label_path=f"gt_labels/{name}.png",
                                mask_path=f"masks/{name}.png",
                                extra={"yaw": round(v.yaw, 4), "pitch": round(v.pitch, 4)}))
        save_scene(Scene(root=tmp, frames=frames, label_scheme=SCHEME, head_frame=head_frame(),
                         extra={"synthetic": True, "units": "cm"}))
        atomic_write_json(tmp / "synth.json", {
            "schema_version": SCHEMA_VERSION, "generator": "labelsplat.synth (benchmarks/paper_loop.py)",
            "label_scheme": SCHEME, "units": "cm", "head": params.to_dict(), "noise": "none",
            "identity_index": identity, "head_seed": head_seed, "split": split, "rig": "frontal",
        })


def frontal_cameras(cfg: LoopConfig, rng: np.random.Generator) -> list:
    from labelsplat.synth import camera_at
    from labelsplat.synth.rigs import DISTANCE_CM

    cams = []
    for _ in range(cfg.train_views):
        yaw = rng.uniform(-cfg.frontal_max_yaw, cfg.frontal_max_yaw)
        pitch = rng.uniform(-cfg.frontal_max_pitch, cfg.frontal_max_pitch)
        dist = DISTANCE_CM * (1.0 + rng.uniform(-0.08, 0.08))
        cams.append(camera_at(float(yaw), float(pitch), distance=dist, resolution=cfg.train_resolution,
                              focal_scale=1.0 + rng.uniform(-0.08, 0.08)))
    return cams


def stage_frontal(root: Path, cfg: LoopConfig, seed: int, log) -> dict:
    from labelsplat.synth.scene import head_seed
    from labelsplat.train.scenes_dataset import dataset_from_scenes

    t0 = time.perf_counter()
    sseed = split_seed(seed, "train")
    scenes = []
    for i in range(cfg.train_identities):
        d = root / "frontal_scenes" / f"id_{i:03d}"
        if not (d / "transforms.json").is_file():
            hs = head_seed(sseed, i)
            write_synth_scene(d, hs, frontal_cameras(cfg, np.random.default_rng([sseed, i, 0xF0])), identity=i,
                              split="train")
        scenes.append(d)
        if (i + 1) % 10 == 0:
            log(f"  frontal scenes {i + 1}/{cfg.train_identities}")
    s = dataset_from_scenes(scenes, root / "frontal_dataset", labels="gt", crop=True, overwrite=True, seed=seed)
    return {"dataset": str(root / "frontal_dataset"), "n_views": s.n_views, "n_cropped": s.n_cropped,
            "synth_seed": sseed, "seconds": round(time.perf_counter() - t0, 2)}


def run_train(out: Path, *, data: list[str], mix: list[tuple[str, float]], init: str | None, iters: int, lr: float,
              warmup: int | None, cfg: LoopConfig, seed: int, device: str, log) -> dict:
    """Train (init None) or fine-tune; continues from the resume state of an interrupted run."""
    from labelsplat.train import TrainConfig, artifact_paths, train

    tc = TrainConfig(data=data, out=str(out), mix=mix, init=init, input_size=cfg.input_size, iters=iters,
                     batch_size=cfg.batch_size, lr=lr, warmup_iters=warmup, split=None, seed=seed, device=device,
                     ckpt_every=cfg.ckpt_every, log_every=max(1, min(20, iters // 10)))
    resume = artifact_paths(out)["state"].is_file()
    if resume:
        log(f"  resuming {out.name} from its checkpoint")
    t0 = time.perf_counter()
    res = train(tc, resume=resume, overwrite=not resume)
    log_lines = [json.loads(ln) for ln in artifact_paths(out)["log"].read_text().splitlines() if ln.strip()]
    return {"weights": str(res.weights), "steps": res.steps, "resumed_from": res.start_step,
            "first_loss": log_lines[0]["loss"] if log_lines else None,
            "last_loss": res.last_loss, "loss_curve": [[r["step"], round(r["loss"], 4)] for r in log_lines],
            "seconds": round(time.perf_counter() - t0, 2), "config": asdict(tc.resolved())}


def stage_multiview(root: Path, cfg: LoopConfig, seed: int, device: str, log) -> dict:
    from labelsplat.parsers.infer import load_parser
    from labelsplat.synth import SynthConfig, synthesize

    t0 = time.perf_counter()
    mv = root / "multiview"
    sseed = split_seed(seed, "multiview")
    synthesize(mv, SynthConfig(identities=cfg.mv_identities, views=cfg.mv_views, rig="facescape",
                               resolution=cfg.mv_resolution, noise="none", seed=sseed), overwrite=True)
    parser = load_parser(root / "baseline.pth", device=device, input_size=cfg.input_size)
    scenes = [str(p) for p in sorted(mv.iterdir()) if (p / "transforms.json").is_file()]
    # what `labelsplat parse SCENE --weights baseline.pth` does (face crop around the projected
    # head centre, labels/<stem>.png = label_path), done here with the same functions
    scores, _ = parse_and_score(parser, scenes, cfg, write_labels=True)
    return {"scenes": scenes, "synth_seed": sseed, "initial_vs_gt": scores.to_dict(),
            "seconds": round(time.perf_counter() - t0, 2)}


def stage_refine(root: Path, cfg: LoopConfig, seed: int, device: str, scenes: list[str], log) -> dict:
    from labelsplat.config import parse_fit_set, preset, with_overrides
    from labelsplat.pipeline import refine

    t0 = time.perf_counter()
    out = root / "refine"
    given = {} if cfg.refine_steps is None else {"steps": cfg.refine_steps}
    rc = with_overrides(preset(cfg.refine_preset), novel_views=cfg.novel_views, sampler="extreme", seed=seed,
                        device=device, fit=parse_fit_set([x for x in cfg.refine_fit_set.split(";") if x.strip()]),
                        **given)
    resume = (out / "refine.json").is_file()
    pooled, outcomes = refine(scenes, out, rc, resume=resume, overwrite=not resume, progress=False,
                              log=lambda m: log("  refine: " + m), title="paper_loop refine")
    refined = (pooled.get("labellings") or {}).get("refined")
    return {"out": str(out), "config": rc.to_dict(), "accepted": sum(o.n_accepted for o in outcomes),
            "rejected": sum(o.n_rejected for o in outcomes),
            "fit_seconds": {o.name: round(o.timings.get("fit", float("nan")), 2) for o in outcomes},
            # the synth noise model of these scenes is "none", so refine's own "initial" labelling is
            # the exact labels; the parser's initial labels are scored in the multiview stage
            "refined_vs_gt": refined, "seconds": round(time.perf_counter() - t0, 2)}


def predict_scene(parser, scene, batch_size: int) -> list[np.ndarray]:
    """Labels (parser's scheme, image resolution) of every frame of ``scene``, each view cropped
    around the projected head centre with the radius ``labelsplat parse`` uses (15 cm)."""
    from labelsplat.io import read_rgb
    from labelsplat.parsers.preprocess import DEFAULT_CROP_RADIUS_CM, face_crop_box, scene_units_per_cm

    radius = DEFAULT_CROP_RADIUS_CM * scene_units_per_cm(scene)
    imgs = [read_rgb(scene.path(f.file_path)) for f in scene.frames]
    boxes = [face_crop_box(f.camera, scene.head_frame.center, radius) for f in scene.frames]
    return parser.predict(imgs, boxes, batch_size=batch_size)


def stage_aux(root: Path, cfg: LoopConfig, seed: int, device: str, log) -> dict:
    """The refined novel views -> two datasets with the same (face-cropped) images:
    ``refined_dataset`` (refined labels) and ``noisy_dataset`` (baseline parser's labels)."""
    from labelsplat.dataset.export import DatasetWriter
    from labelsplat.dataset.read import read_dataset
    from labelsplat.eval import LabellingScores
    from labelsplat.io import read_json, read_label, read_rgb
    from labelsplat.parsers.infer import load_parser
    from labelsplat.parsers.preprocess import DEFAULT_CROP_RADIUS_CM, face_crop_box
    from labelsplat.scene import Camera, HeadFrame, load_scene, yaw_pitch
    from labelsplat.schemes import get_scheme

    t0 = time.perf_counter()
    src = root / "refine" / "dataset"
    ds = read_dataset(src)
    scheme = get_scheme(ds.label_scheme)
    cams = {f.name: f for f in load_scene(src).frames}
    tj = read_json(src / "transforms.json")
    manifest = {v["name"]: v for v in read_json(src / "manifest.json")["views"]}
    parser = load_parser(root / "baseline.pth", device=device, input_size=cfg.input_size)
    if parser.info.label_scheme != scheme.name:
        raise RuntimeError(f"parser scheme {parser.info.label_scheme} != dataset scheme {scheme.name}")
    sc_ref, sc_noisy = LabellingScores.for_scheme(scheme), LabellingScores.for_scheme(scheme)
    n_gt = 0
    items = []
    for v in ds.views:
        fr = cams.get(v.name)
        if fr is None:
            raise RuntimeError(f"view {v.name} missing from {src / 'transforms.json'}")
        hf = v.extra.get("head_frame") or tj.get("head_frame")
        head = HeadFrame.from_dict(hf) if isinstance(hf, dict) else None
        rgb = read_rgb(v.image)
        lab = read_label(v.label, scheme.num_classes, shape=rgb.shape[:2])
        cam = fr.camera
        box = face_crop_box(cam, head.center, DEFAULT_CROP_RADIUS_CM) if head is not None else None
        gt = None
        entry = manifest.get(v.name, {})
        gtp = root / "refine" / "scenes" / str(v.source_scene) / "gt" / "labels" / f"{entry.get('original_name', v.name)}.png"
        if gtp.is_file():
            gt = read_label(gtp, scheme.num_classes, shape=rgb.shape[:2])
        if box is not None:
            sl = (slice(box.y0, box.y1), slice(box.x0, box.x1))
            rgb, lab = np.ascontiguousarray(rgb[sl]), np.ascontiguousarray(lab[sl])
            gt = None if gt is None else np.ascontiguousarray(gt[sl])
            cam = Camera(cam.fx, cam.fy, cam.cx - box.x0, cam.cy - box.y0, box.width, box.height, cam.c2w)
        yaw = v.yaw if v.yaw is not None else (yaw_pitch(cam.center, head)[0] if head is not None else None)
        items.append((v, rgb, lab, gt, cam, box, yaw))
    comp = None
    if cfg.aux_background == "synth":
        # replace every image by the splat render composited onto an input-like background
        # (same for both arms: the noisy arm's labels are the parser's labels of THESE images)
        rgbs, comp = composite_views(root / "refine" / "scenes", [(v, cams[v.name].camera) for v, *_ in items],
                                     bg_seed=split_seed(seed, "multiview") + 0xB6, device=device,
                                     reference=[read_rgb(v.image) for v, *_ in items])
        for k, it in enumerate(items):
            box = it[5]
            img = rgbs[k] if box is None else np.ascontiguousarray(rgbs[k][box.y0:box.y1, box.x0:box.x1])
            items[k] = (it[0], img, *it[2:])
    elif cfg.aux_background != "black":
        raise ValueError(f"aux_background must be 'black' or 'synth', got {cfg.aux_background!r}")
    noisy = parser.predict([it[1] for it in items], batch_size=cfg.parse_batch)
    for d in ("refined_dataset", "noisy_dataset"):
        if (root / d).exists():
            shutil.rmtree(root / d)
    with DatasetWriter(root / "refined_dataset", scheme, seed=seed, config={"from": str(src), "labels": "refined"}) as wr, \
            DatasetWriter(root / "noisy_dataset", scheme, seed=seed,
                          config={"from": str(src), "labels": "baseline parser (self-training)"}) as wn:
        for (v, rgb, lab, gt, cam, box, yaw), nl in zip(items, noisy):
            meta = {"source_scene": v.source_scene, "yaw": v.yaw, "pitch": v.pitch,
                    "crop_box": box.to_list() if box is not None else None}
            wr.add_view(v.name, rgb, lab, None, cam, dict(meta))
            wn.add_view(v.name, rgb, nl, None, cam, dict(meta))
            if gt is not None:
                n_gt += 1
                sc_ref.add(lab, gt, yaw)
                sc_noisy.add(nl, gt, yaw)
    return {"n_views": len(items), "n_cropped": sum(it[5] is not None for it in items), "n_with_gt": n_gt,
            "aux_background": cfg.aux_background, "composite": comp,
            "refined_labels_vs_gt": sc_ref.to_dict() if n_gt else None,
            "noisy_labels_vs_gt": sc_noisy.to_dict() if n_gt else None,
            "seconds": round(time.perf_counter() - t0, 2)}


def composite_views(scenes_dir: Path, views: list, *, bg_seed: int, device: str,
                    reference: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], dict]:
    """Re-render refine's novel views from each source scene's fitted run (``scenes_dir/<scene>/run``)
    at their cameras (full image, scene frame) and composite them onto backgrounds drawn like the
    synthetic inputs' (:func:`labelsplat.synth.render.background_image`, seeded by ``bg_seed`` and
    the view's index): ``rgb + (1 - alpha) * background`` (the render is premultiplied over black).

    ``views``: list of (dataset view, Camera). Returns the uint8 (H, W, 3) images in order and a
    record: how many views, and the mean / max absolute difference (0-255) between the re-render
    over black and ``reference`` (refine's saved images), which checks that the same model and
    cameras were used."""
    from labelsplat.splat import load_run, render_cameras
    from labelsplat.synth.render import background_image

    by_scene: dict[str, list[int]] = {}
    for k, (v, _) in enumerate(views):
        by_scene.setdefault(str(v.source_scene), []).append(k)
    out: list[np.ndarray | None] = [None] * len(views)
    diffs, alpha_mean = [], []
    for name, idx in sorted(by_scene.items()):
        run = load_run(scenes_dir / name / "run", device=device)
        rends = render_cameras(run, [views[k][1] for k in idx], batch_size=4)
        for k, r in zip(idx, rends):
            rgb, a = r["rgb"].astype(np.float64), r["alpha"].astype(np.float64)[..., None]
            h, w = a.shape[:2]
            bg = background_image(bg_seed, k, w, h)
            out[k] = np.clip(np.round((rgb + (1.0 - a) * bg) * 255.0), 0, 255).astype(np.uint8)
            alpha_mean.append(float(a.mean()))
            if reference is not None:
                black = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.int16)
                diffs.append(np.abs(black - reference[k].astype(np.int16)))
        del run
    rec = {"n_views": len(views), "bg_seed": int(bg_seed), "mean_alpha": float(np.mean(alpha_mean)) if alpha_mean else None}
    if diffs:
        rec["rerender_vs_saved_abs_diff"] = {"mean": float(np.mean([d.mean() for d in diffs])),
                                             "max": int(max(int(d.max()) for d in diffs))}
    return [o for o in out], rec


def stage_evalset(root: Path, cfg: LoopConfig, seed: int, log) -> dict:
    from labelsplat.synth import SynthConfig, synthesize

    t0 = time.perf_counter()
    sseed = split_seed(seed, "eval")
    res = synthesize(root / "evalset", SynthConfig(identities=cfg.eval_identities, views=cfg.eval_views, rig="orbit",
                                                   resolution=cfg.eval_resolution, noise="none", seed=sseed),
                     overwrite=True)
    return {"scenes": [str(s.root) for s, _ in res], "synth_seed": sseed, "seconds": round(time.perf_counter() - t0, 2)}


def parse_and_score(parser, scenes: list[str], cfg: LoopConfig, *, write_labels: bool):
    """Parse every frame of ``scenes`` (:func:`predict_scene`) and score against the exact labels
    over the whole image; ``write_labels`` also writes the predictions as the frames' ``label_path``.
    Returns (LabellingScores, number of views)."""
    from labelsplat.eval import LabellingScores
    from labelsplat.io import read_label, write_png
    from labelsplat.scene import load_scene, yaw_pitch
    from labelsplat.schemes import get_scheme

    scores, n = None, 0
    for d in scenes:
        sc = load_scene(d)
        scheme = get_scheme(sc.label_scheme)
        if parser.info.label_scheme != scheme.name:
            raise RuntimeError(f"parser scheme {parser.info.label_scheme} != scene scheme {scheme.name}")
        scores = scores or LabellingScores.for_scheme(scheme)
        preds = predict_scene(parser, sc, cfg.parse_batch)
        for fr, pred in zip(sc.frames, preds):
            if write_labels:
                write_png(sc.path(fr.label_path), pred)
            gt = read_label(sc.path(fr.gt_label_path), scheme.num_classes, shape=pred.shape)
            scores.add(pred, gt, yaw_pitch(fr.camera.center, sc.head_frame)[0])
            n += 1
    return scores, n


def evaluate_model(weights: Path, scenes: list[str], cfg: LoopConfig, device: str) -> dict:
    """Parse every eval view as ``labelsplat parse`` does (face crop around the projected head
    centre) and score against the exact labels over the whole image."""
    from labelsplat.parsers.infer import load_parser

    t0 = time.perf_counter()
    parser = load_parser(weights, device=device, input_size=cfg.input_size)
    scores, n = parse_and_score(parser, scenes, cfg, write_labels=False)
    return {"weights": str(weights), "n_views": n, "scores": scores.to_dict(),
            "seconds": round(time.perf_counter() - t0, 2)}


# ----------------------------------------------------------------------------- one seed
def run_seed(work: Path, cfg: LoopConfig, seed: int, device: str, log, on_stage: Callable[[], None],
             arms: tuple[str, ...] = ("refined", "noisy"), reuse: Path | None = None,
             reuse_parts: tuple[tuple[str, ...], tuple[str, ...]] = (REUSABLE_STAGES, REUSABLE_FILES)) -> dict:
    """All stages of one seed; ``arms`` limits the fine-tunes (and their evaluations) to a subset
    (a seed with an arm left out has no summary entry, its other records are kept). ``reuse``:
    another work dir whose finished stages ``reuse_parts`` (stages, files) are adopted (``adopt_stages``)."""
    root = work / f"seed_{seed}"
    root.mkdir(parents=True, exist_ok=True)
    if reuse is not None and (reuse / f"seed_{seed}").is_dir():
        got = adopt_stages(reuse / f"seed_{seed}", root, *reuse_parts)
        if got:
            log(f"seed {seed}: reused {', '.join(got)} from {reuse}")
    rec: dict[str, Any] = {}

    def stage(name: str, fn: Callable[[], dict]) -> dict:
        st = Stage(root, name)
        if st.done:
            log(f"seed {seed}: {name} already done")
            rec[name] = st.read()
            return rec[name]
        log(f"seed {seed}: {name} ... (load {load_avg()})")
        t = time.perf_counter()
        out = fn()
        out.setdefault("seconds", round(time.perf_counter() - t, 2))
        out["load_avg_at_end"] = load_avg()
        out["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rec[name] = st.finish(out)
        log(f"seed {seed}: {name} done in {out['seconds']:.1f} s")
        on_stage()
        return rec[name]

    fr = stage("frontal", lambda: stage_frontal(root, cfg, seed, log))
    stage("baseline", lambda: run_train(root / "baseline.pth", data=[fr["dataset"]], mix=[], init=None,
                                        iters=cfg.base_iters, lr=cfg.base_lr, warmup=None, cfg=cfg, seed=seed,
                                        device=device, log=log))
    mv = stage("multiview", lambda: stage_multiview(root, cfg, seed, device, log))
    stage("refine", lambda: stage_refine(root, cfg, seed, device, mv["scenes"], log))
    stage("aux", lambda: stage_aux(root, cfg, seed, device, log))
    for arm in arms:
        stage(f"ft_{arm}", lambda arm=arm: run_train(
            root / f"ft_{arm}.pth", data=[str(root / f"{arm}_dataset")], mix=[(fr["dataset"], cfg.frontal_mix)],
            init=str(root / "baseline.pth"), iters=cfg.ft_iters, lr=cfg.ft_lr, warmup=cfg.ft_warmup, cfg=cfg,
            seed=seed, device=device, log=log))
    ev = stage("evalset", lambda: stage_evalset(root, cfg, seed, log))
    for m in ("baseline", *[f"ft_{a}" for a in arms]):
        stage(f"eval_{m}", lambda m=m: evaluate_model(root / f"{m}.pth", ev["scenes"], cfg, device))
    return rec


def read_seed(work: Path, seed: int) -> dict:
    root = work / f"seed_{seed}"
    rec = {}
    if root.is_dir():
        for p in sorted(root.glob("*.done.json")):
            rec[p.name[: -len(".done.json")]] = json.loads(p.read_text())
    return rec


# ----------------------------------------------------------------------------- summary
def f1_of(scores: dict, bins: tuple[str, ...]) -> float | None:
    """Mean F1 (docs/design.md: classes present in GT, background excluded) of the pooled confusion
    of the given |yaw| bins."""
    from labelsplat.eval.metrics import scores_from_confusion

    mats = [np.asarray(scores["confusion_by_yaw"][b], dtype=np.int64) for b in bins]
    conf = sum(mats)
    if int(conf.sum()) == 0:
        return None
    v = scores_from_confusion(conf)["mean_f1"]
    return None if v is None else float(v)


def headline(rec: dict) -> dict | None:
    """F1 at |yaw| >= 60 and frontal (0-30) per model, for one seed (None if eval not finished)."""
    out = {}
    for m in MODELS:
        e = rec.get(f"eval_{m}")
        if e is None:
            return None
        s = e["scores"]
        out[m] = {"f1_extreme": f1_of(s, EXTREME_BINS), "f1_frontal": f1_of(s, (FRONTAL_BIN,)),
                  "f1_overall": s["overall"]["mean_f1"],
                  "f1_by_yaw": {b: (s["by_yaw"][b] or {}).get("mean_f1") for b in s["by_yaw"]}}
    return out


def stats(xs: list[float]) -> dict:
    a = np.asarray([x for x in xs if x is not None], dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "values": [float(x) for x in a]}


def summarize(seeds: dict[int, dict]) -> dict:
    heads = {s: h for s, r in seeds.items() if (h := headline(r)) is not None}
    summ: dict[str, Any] = {"seeds_finished": sorted(heads), "per_seed": {str(s): h for s, h in heads.items()}}
    if not heads:
        return summ
    agg = {}
    for m in MODELS:
        agg[m] = {k: stats([heads[s][m][k] for s in heads]) for k in ("f1_extreme", "f1_frontal", "f1_overall")}
    summ["models"] = agg
    d_ref = stats([heads[s]["ft_refined"]["f1_extreme"] - heads[s]["baseline"]["f1_extreme"] for s in heads])
    d_noisy = stats([heads[s]["ft_refined"]["f1_extreme"] - heads[s]["ft_noisy"]["f1_extreme"] for s in heads])
    d_front = stats([heads[s]["ft_refined"]["f1_frontal"] - heads[s]["baseline"]["f1_frontal"] for s in heads])
    summ["differences"] = {"extreme_refined_minus_baseline": d_ref, "extreme_refined_minus_noisy": d_noisy,
                           "frontal_refined_minus_baseline": d_front}
    spread_noisy = max(agg["ft_refined"]["f1_extreme"].get("std", 0.0), agg["ft_noisy"]["f1_extreme"].get("std", 0.0))
    spread_front = agg["baseline"]["f1_frontal"].get("std", 0.0)
    multi = len(heads) >= 2  # a seed spread needs two seeds: with one, spread targets are None
    summ["targets"] = {
        "note": "F1 = mean F1 in [0, 1]; 10 points = 0.10. 'spread' = sample std over seeds; targets that "
                "need a spread are null with fewer than 2 finished seeds",
        "extreme_gain_ge_0.10": bool(d_ref["mean"] >= 0.10),
        "extreme_above_noisy_beyond_spread": bool(d_noisy["mean"] > 0 and d_noisy["min"] > 0
                                                  and d_noisy["mean"] > spread_noisy) if multi else None,
        "frontal_within_spread_and_ge_minus_0.005": bool(d_front["mean"] >= -0.005
                                                         and d_front["mean"] >= -spread_front - 1e-12)
        if multi else None,
        "n_seeds": len(heads),
    }
    return summ


def compact(rec: dict) -> dict:
    """The seed record for the JSON: full scores incl. confusions, without bulky duplicates."""
    out = {}
    for k, v in rec.items():
        v = dict(v)
        v.pop("schema_version", None)
        out[k] = v
    return out


def write_results(path: Path, cfg: LoopConfig, seeds: list[int], work: Path, device: str, started: str) -> dict:
    from labelsplat import SCHEMA_VERSION
    from labelsplat.io import atomic_write_text

    recs = {s: read_seed(work, s) for s in seeds}
    stages = ["frontal", "baseline", "multiview", "refine", "aux", "ft_refined", "ft_noisy", "evalset",
              *[f"eval_{m}" for m in MODELS]]
    prev = {}
    if path.is_file():
        try:
            prev = json.loads(path.read_text())
        except ValueError:
            prev = {}
    all_seeds = {int(s): r for s, r in (prev.get("seeds") or {}).items()}
    for s, r in recs.items():
        if r:
            all_seeds[s] = compact(r)
    doc = {
        "what": "the paper's loop: baseline BiSeNet (frontal synthetic) -> initial parser on multiview scenes -> "
                "refine -> fine-tune on refined vs on the parser's own (noisy) labels of the same images -> "
                "evaluate on held-out identities by |yaw| bin",
        "config": asdict(cfg), "device": device, "machine": machine(), "git_commit": git_commit(),
        "work_dir": str(work), "last_update_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_started_utc": started,
        "status": {str(s): {st: (st in r) for st in stages} for s, r in sorted(all_seeds.items())},
        "summary": summarize(all_seeds),
        "seeds": {str(s): r for s, r in sorted(all_seeds.items())},
        "note": "CPU shared with other jobs while measured: stage seconds are noisy (load_avg_at_end per stage).",
    }
    atomic_write_text(path, compact_json({"schema_version": SCHEMA_VERSION, **doc}))
    return doc


def compact_json(obj: Any) -> str:
    """Indented JSON with every list of plain numbers on one line (confusion matrices stay readable)."""
    text = json.dumps(obj, indent=1, allow_nan=False)
    return re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text) + "\n"


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated experiment seeds")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--work", type=Path, default=None, help="work directory (default runs/paper_loop/<config>)")
    ap.add_argument("--results", type=Path, default=None,
                    help="results JSON (default benchmarks/results/paper_loop_<config>.json)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads for this run (default: torch's). On a machine shared with "
                         "other jobs, 1 was measured 3-8x faster than 2 for BiSeNet steps (OpenMP threads "
                         "waiting for descheduled peers)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a LoopConfig field (recorded; use another --work/--results)")
    ap.add_argument("--arms", default="refined,noisy",
                    help="fine-tuning arms to run (comma-separated subset of refined,noisy; default both; "
                         "'none' runs every stage but the fine-tunes, e.g. to prepare seeds whose fine-tunes run "
                         "later in another --work with --reuse). A seed without both arms is left out of the summary")
    ap.add_argument("--reuse", default=None, metavar="WORK",
                    help="another work dir whose configuration differs from this run only in the fine-tune "
                         f"fields ({', '.join(FT_ONLY_FIELDS)}): its finished stages before the fine-tunes are "
                         "adopted (records copied, baseline and datasets symlinked) instead of rerun; if it also "
                         f"differs in the refine fields ({', '.join(REFINE_FIELDS)}), only the frontal set, the "
                         "baseline, the parsed multiview scenes, the eval set and the baseline's evaluation")
    ap.add_argument("--summarize", action="store_true",
                    help="run nothing: rebuild the results JSON from the finished stages in --work (e.g. after "
                         "seeds ran in parallel processes, each with its own --results)")
    args = ap.parse_args(argv)
    arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    if arms == ("none",):
        arms = ()
    elif not arms or any(a not in ("refined", "noisy") for a in arms) or len(set(arms)) != len(arms):
        ap.error(f"--arms must be a subset of refined,noisy, got {args.arms!r}")
    cfg = CONFIGS[args.config]
    for kv in args.set:
        k, _, v = kv.partition("=")
        if k not in LoopConfig.__dataclass_fields__ or k == "name":
            ap.error(f"unknown config field {k!r}")
        cur = getattr(cfg, k)
        conv = type(cur) if cur is not None else (lambda x: None if x.lower() == "none" else int(x))
        cfg = replace(cfg, **{k: conv(v)})
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    work = (args.work or REPO / "runs" / "paper_loop" / cfg.name).resolve()
    results = (args.results or REPO / "benchmarks" / "results" / f"paper_loop_{cfg.name}.json").resolve()
    work.mkdir(parents=True, exist_ok=True)
    reuse, reuse_parts = None, (REUSABLE_STAGES, REUSABLE_FILES)
    if args.reuse is not None:
        reuse = Path(args.reuse).resolve()
        rc = reuse / "config.json"
        if not rc.is_file():
            ap.error(f"--reuse {reuse}: no config.json there (not a paper_loop work dir)")
        diff = reuse_mismatch(cfg, json.loads(rc.read_text()))
        reuse_parts = reusable(diff)
        if reuse_parts is None:
            bad = sorted(set(diff) - set(FT_ONLY_FIELDS) - set(REFINE_FIELDS))
            ap.error(f"--reuse {rc}: configuration differs beyond the fine-tune and refine fields in {', '.join(bad)}")
        if reuse == work:
            ap.error("--reuse names the work dir itself")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    cfg_path = work / "config.json"
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        old.pop("schema_version", None)
        fields = LoopConfig.__dataclass_fields__
        for k, v in asdict(cfg).items():  # fields added after the run started, at their defaults
            if k not in old and fields[k].default == v:
                old[k] = v
        mine = asdict(cfg)
        # a configuration is its fields: the name is a label (cpu3 is cpu2 with its overrides set)
        old.pop("name", None)
        mine.pop("name")
        if old != mine:
            log(f"error: {work} was started with another configuration ({cfg_path}); use another --work")
            return 2
    else:
        from labelsplat.io import atomic_write_json

        atomic_write_json(cfg_path, asdict(cfg))
    import torch

    threads_before = torch.get_num_threads()
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
        machine.cache_clear()
    log(f"paper_loop config={cfg.name} seeds={seeds} work={work} results={results} "
        f"torch threads={torch.get_num_threads()}")
    try:
        for s in ([] if args.summarize else seeds):
            t = time.perf_counter()
            run_seed(work, cfg, s, args.device, log,
                     lambda: write_results(results, cfg, seeds, work, args.device, started), arms=arms,
                     reuse=reuse, reuse_parts=reuse_parts)
            log(f"seed {s} finished in {time.perf_counter() - t:.0f} s this invocation")
        doc = write_results(results, cfg, seeds, work, args.device, started)
    finally:
        torch.set_num_threads(threads_before)
        machine.cache_clear()
    log(json.dumps(doc["summary"].get("models", {}), indent=1)[:4000])
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    import signal

    # SIGTERM (and SIGINT, which shells ignore for background jobs) interrupt like Ctrl-C, so an
    # interrupted training saves its resume state before exiting
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    sys.exit(main())
