"""The joint fit as a loop of small units: :class:`FitLoop` and the thin :func:`fit` over it.

:func:`fit` turns a scene directory into a run directory::

    RUN/checkpoint.pt          final state (plain tensors + JSON-able metadata, weights_only loadable)
    RUN/ckpt/step_XXXXXX.pt    rolling periodic checkpoints (the last ``keep_checkpoints``)
    RUN/point_cloud.ply        Inria 3DGS PLY in scene units + label, sem_* (palette runs: seg_r/g/b), n_views_seen
    RUN/renders/{rgb,labels,confidence}/<frame>.png   training-view renders (palette runs also seg_rgb/)
    RUN/renders/{labels_colour,overlay}/<frame>.png   labels in the scheme's palette / over the input image
    RUN/train_log.jsonl        one JSON line every ``log_every`` steps
    RUN/run.json               scene, scheme, config, seed, versions, normalisation, summary
    RUN/noise_transition.json  the label-noise transition matrix T (only with ``cfg.label_noise`` != none)

:class:`FitLoop` runs it in three phases: :meth:`~FitLoop.setup` (resume rules, views,
initial model, optimisers), :meth:`~FitLoop.step` (one optimisation step, returns
:class:`StepStats`) and :meth:`~FitLoop.finish` (label assignment, views seen, outputs, final
checkpoint). Callbacks (:class:`FitCallback`, in the spirit of gsplat's strategy hooks) write
the training log, drive the progress bar and write the periodic checkpoints.

The semantic head (``cfg.semantic_target``, :mod:`.heads`) decides what the ``sem`` channels
fit and how; the label assignment after the fit (``cfg.semantic_lift``) is an
:class:`~.assign.LabelAssigner`.

Determinism: everything random draws from ``torch.manual_seed(seed)`` (global, used by gsplat's
split) and one ``torch.Generator`` (camera order, background colours); both states, the Adam
moments and the densification statistics are checkpointed, so a resumed CPU fit is bitwise
identical to an uninterrupted one.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import LabelsplatError
from ..io import atomic_write_text, clean_leftovers, ensure_dir, read_jsonl
from ..scene import Scene, load_scene
from ..scene.fingerprint import scene_fingerprint
from ..schemes import get_scheme
from .assign import label_agreement, make_assigner
from .checkpoint import (RunState, check_resumable, latest_checkpoint, periodic_checkpoint_path,
                         prune_checkpoints, resume_rules)
from .config import FitConfig
from .data import (CameraOrder, ViewPyramid, apply_colour_weights, check_cameras, class_weight_tensor, few_views_note,
                   load_views, scheme_classes, semantic_view_weights)
from .edits import StoredEdits
from .heads import make_head
from .init import initial_points
from .losses import alpha_loss, psnr, rgb_loss
from .model import GaussianModel
from .normalize import Normalization, estimate_normalization
from .optim import make_optimizers, make_strategy, means_lr, semantic_grad_plan
from .outputs import versions, write_run_json, write_run_outputs
from .render import count_views_seen, render_model, resolve_backend


@dataclass
class FitResult:
    run_dir: Path
    model: GaussianModel
    norm: Normalization
    config: FitConfig
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class StepStats:
    """One step's numbers. The losses are detached scalars on the fit's device (reading them
    syncs a GPU); ``record`` is the ``train_log.jsonl`` line on a log step, else None."""

    step: int  # the step just taken (0-based)
    loss: torch.Tensor
    rgb_loss: torch.Tensor
    sem_loss: torch.Tensor
    alpha_loss: torch.Tensor
    n_gaussians: int
    resolution_scale: float
    active_sh: int
    record: dict[str, Any] | None = None

    @property
    def done(self) -> int:
        """Steps done after this one."""
        return self.step + 1


class FitCallback(Protocol):
    def on_setup(self, loop: "FitLoop") -> None:
        """After :meth:`FitLoop.setup` (the run directory exists, ``loop.start_step`` is known)."""
        ...

    def on_step(self, stats: StepStats) -> None:
        """After each step (the optimisers and the densification have stepped)."""
        ...

    def on_finish(self, loop: "FitLoop") -> None:
        """Once, when the step loop is over (also after an error)."""
        ...


class TrainLog:
    """``RUN/train_log.jsonl``: one JSON line per log step; a resumed fit drops the lines written
    after its checkpoint (and a line cut by a kill)."""

    def on_setup(self, loop: "FitLoop") -> None:
        self.path = loop.out_dir / "train_log.jsonl"
        start = loop.start_step
        if loop.resumed and self.path.exists():
            def before(rec) -> bool:
                return isinstance(rec, dict) and isinstance(rec.get("step", 0), int) and rec.get("step", 0) < start

            kept = [ln for ln, rec in read_jsonl(self.path) if before(rec)]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))
        elif not loop.resumed:
            atomic_write_text(self.path, "")

    def on_step(self, stats: StepStats) -> None:
        if stats.record is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(stats.record) + "\n")

    def on_finish(self, loop: "FitLoop") -> None:
        pass


class ProgressBar:
    """A rich progress bar named after the scene, with the last log step's PSNR, label accuracy and
    Gaussian count."""

    def on_setup(self, loop: "FitLoop") -> None:
        # rich: imported only when a bar is shown
        from rich.markup import escape
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        label = f"fit {escape(loop.scene.name)}"  # names the scene: refine and batch fit several in a row
        self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self.task = self.bar.add_task("fit", total=loop.cfg.steps, completed=loop.start_step, stats="")
        self.bar.start()

    def on_step(self, stats: StepStats) -> None:
        rec = stats.record
        if rec is None:
            self.bar.update(self.task, completed=stats.done)
            return
        acc = "" if rec["label_acc"] is None else f" acc {rec['label_acc']:.3f}"
        self.bar.update(self.task, completed=stats.done, stats=f"psnr {rec['psnr']:.2f}{acc} n {rec['n_gaussians']}")

    def on_finish(self, loop: "FitLoop") -> None:
        self.bar.stop()


class PeriodicCheckpoints:
    """``RUN/ckpt/step_XXXXXX.pt`` every ``checkpoint_every`` steps before the last, keeping
    the last ``keep_checkpoints``."""

    def on_setup(self, loop: "FitLoop") -> None:
        self.loop = loop

    def on_step(self, stats: StepStats) -> None:
        cfg = self.loop.cfg
        if stats.done % cfg.checkpoint_every == 0 and stats.done < cfg.steps:
            self.loop.save_checkpoint(periodic_checkpoint_path(self.loop.out_dir, stats.done))
            prune_checkpoints(self.loop.out_dir, cfg.keep_checkpoints)

    def on_finish(self, loop: "FitLoop") -> None:
        pass


def default_callbacks(progress: bool = False) -> list[FitCallback]:
    """The training log, the progress bar (``progress``) and the periodic checkpoints, in that order."""
    return [TrainLog()] + ([ProgressBar()] if progress else []) + [PeriodicCheckpoints()]


class _Phases:
    """Wall seconds of a fit's phases (run.json summary ``phases_s``): where the time outside the
    step loop goes."""

    def __init__(self) -> None:
        self.t_start = self.t_mark = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self.t_mark, 4)
        self.t_mark = now


def _import_in_background(module: str):
    """Start importing ``module`` on a daemon thread (None if it is already imported).

    torch.optim's first optimizer imports ``torch._dynamo`` (1.6 s on the 2-core dev box, more
    where triton is installed): the fit starts that import while its views load (PNG decoding,
    numpy; no module the import touches), and joins the thread before creating the optimizers.
    A failed import is left to the main thread to raise.
    """
    if module in sys.modules:
        return None

    def run() -> None:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the main thread's own import reports it
            pass

    th = threading.Thread(target=run, name=f"import {module}", daemon=True)
    th.start()
    return th


class FitLoop:
    """One fit of the joint model to a scene, step by step.

    ``loop.setup()`` prepares everything (or restores it from the run's latest checkpoint with
    ``resume``), ``loop.step()`` takes one optimisation step and returns its :class:`StepStats`,
    ``loop.finish()`` writes the final outputs and returns the :class:`FitResult`;
    ``loop.run()`` does all three. ``stop_after`` ends the loop after that many total steps:
    :meth:`finish` then only writes the checkpoint at that step. ``callbacks`` default to
    :func:`default_callbacks` (no progress bar).
    """

    def __init__(self, scene: Scene | str | Path, out_dir: str | Path, cfg: FitConfig | None = None, *,
                 device: str | torch.device = "cpu", backend: str | None = None, resume: bool = False,
                 write_outputs: bool = True, stop_after: int | None = None,
                 callbacks: list[FitCallback] | None = None) -> None:
        self.scene_arg, self.out_dir, self.cfg = scene, Path(out_dir), cfg
        self.device = device if isinstance(device, torch.device) else torch.device(device)
        self.backend_arg, self.resumed, self.write_outputs = backend, bool(resume), write_outputs
        self.stop_after = stop_after
        self.callbacks = default_callbacks() if callbacks is None else list(callbacks)
        self._set_up = self._loop_over = False

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        """Resume rules, views, normalisation, initial (or restored) model, optimisers, callbacks."""
        if self._set_up:
            raise RuntimeError("FitLoop.setup() was already called")
        self.phases = _Phases()
        warm = _import_in_background("torch._dynamo")
        ckpt = self._configure()
        self._load_data(ckpt)
        self._init_state(ckpt, warm)
        self._prepare_loop()
        for cb in self.callbacks:
            cb.on_setup(self)
        self.phases.mark("setup")
        self._start_clock()
        self._set_up = True

    def _configure(self) -> dict | None:
        """The scene, backend, configuration (resume rules), classes and semantic head."""
        scene = self.scene_arg
        self.scene = scene if isinstance(scene, Scene) else load_scene(scene)
        self.backend = resolve_backend(self.backend_arg, self.device)
        clean_leftovers(self.out_dir)  # temporaries of a killed run (never another live process's)
        self.cfg, ckpt = resume_rules(self.out_dir, self.cfg, self.resumed)
        self.cfg.validate()
        self.scheme_name, K = scheme_classes(self.scene)
        self.num_classes = K if self.cfg.semantics else 0
        self.head = make_head(self.cfg, self.scheme_name, self.num_classes, self.device)
        return ckpt

    def _load_data(self, ckpt: dict | None) -> None:
        """Views (with colour weights), normalisation, camera checks, batch size."""
        cfg, K = self.cfg, self.num_classes
        self.views = views = load_views(self.scene, cfg, K)
        self.fingerprint = scene_fingerprint(self.scene)
        apply_colour_weights(views, cfg, K)
        self.phases.mark("load_views")
        self.norm = (Normalization.from_dict(ckpt["meta"]["normalization"]) if ckpt is not None
                     else estimate_normalization(views.cameras, views.masks, self.scene.head_frame))
        self.notes = check_cameras(self.scene, views.cameras, views.masks, self.norm)
        few = few_views_note(len(views.names))
        if few is not None:
            self.notes.insert(0, few)
        self.cams_n = [self.norm.camera_to_norm(c) for c in views.cameras]
        sizes = {(c.width, c.height) for c in self.cams_n}
        self.batch_size = min(cfg.batch_size if len(sizes) == 1 else 1, len(self.cams_n))

    def _init_state(self, ckpt: dict | None, warm) -> None:
        """Seeds, the model, the optimisers and the strategy: the :class:`RunState` (restored on resume)."""
        cfg, K = self.cfg, self.num_classes
        torch.manual_seed(cfg.seed)
        order = CameraOrder(len(self.cams_n), cfg.seed)
        model, init_source = self._model(ckpt)
        self.phases.mark("init_model")
        if warm is not None:
            warm.join()
        optimizers = make_optimizers(model, cfg)
        self.strategy = make_strategy(cfg)
        self.strategy.check_sanity(model.params, optimizers)
        sstate = self.strategy.initialize_state(scene_scale=1.0)
        meta = {
            "scene": str(Path(self.scene.root).resolve()), "label_scheme": self.scheme_name, "num_classes": K,
            "config": cfg.to_dict(), "seed": cfg.seed, "normalization": self.norm.to_dict(), "backend": self.backend,
            "device": str(self.device), "init_source": init_source, "frame_names": self.views.names,
            "scene_fingerprint": self.fingerprint, "versions": versions(),
        }
        if ckpt is not None and ckpt["meta"].get("label_edits"):
            meta["label_edits"] = ckpt["meta"]["label_edits"]  # 3D label edits stay with the run
        self.state = RunState(model, optimizers, sstate, order, self.head, meta, self.device)
        if ckpt is not None:
            self.state.load_state_dict(ckpt, self.out_dir)
        self.start_step = self.state.step
        self.elapsed_before = self.state.elapsed_s

    def _model(self, ckpt: dict | None) -> tuple[GaussianModel, str]:
        """(initial model, its source), or the checkpoint's model with the fit's head."""
        cfg, K = self.cfg, self.num_classes
        if ckpt is None:
            init, source = initial_points(self.scene, self.cams_n, self.views.images, self.views.labels,
                                          self.views.masks, self.norm, cfg, K)
            self.notes.extend(init.notes)
            model = GaussianModel.from_points(init.means, init.colors, init.labels if K > 0 else None,
                                              sh_degree=cfg.sh_degree, num_classes=K, init_opacity=cfg.init_opacity,
                                              device=self.device, head=self.head,
                                              rasterize_mode=cfg.rasterize_mode)
            return model, source
        check_resumable(ckpt, self.out_dir, frame_names=self.views.names, num_classes=K,
                        semantic_target=cfg.semantic_target, fingerprint=self.fingerprint)
        model = GaussianModel.from_state_dict(ckpt["model"], self.device)
        model.head = self.head  # the fit's head: the same, with its semantic loss
        return model, ckpt["meta"].get("init_source", "?")

    def _prepare_loop(self) -> None:
        """The run directory, the resolution pyramid, the loss weights and the label assigner."""
        cfg, K = self.cfg, self.num_classes
        ensure_dir(self.out_dir)
        self.levels = ViewPyramid(self.views, self.norm, self.device)
        self.levels.build([sc for _, sc in cfg.coarse_to_fine] + [1.0])  # every resolution of the schedule, up front
        self.class_w = class_weight_tensor(cfg, self.scene.label_scheme, K, self.device)
        self.render_sem_w, self.sem_loss_factor = semantic_grad_plan(cfg.semantic_grad_weight, self.backend, K)
        self.view_w = semantic_view_weights(self.scene, cfg) if K > 0 else None
        self.assigner = make_assigner(cfg, K, edits=StoredEdits.from_dict(self.state.meta.get("label_edits")),
                                      norm=self.norm, scheme=self.scheme_name)
        self.end_step = cfg.steps if self.stop_after is None else min(cfg.steps, int(self.stop_after))
        self.last_record: dict[str, Any] = {}

    def _start_clock(self) -> None:
        self.t_loop = time.perf_counter()
        # On CUDA the finiteness test is accumulated on the device and read only every log_every /
        # checkpoint_every steps and at the end (a host sync per step would stall the GPU queue);
        # checkpoints are written only after a clean read, so the last one on disk is always
        # finite. On the CPU it is read every step (no cost).
        self.defer_nan = self.device.type == "cuda"
        # On CUDA the random backgrounds of every step are drawn up front (their own generator,
        # indexed by step: resumable) and kept on the device; a per-step host->device copy would
        # synchronise the GPU queue. The CPU keeps its single generator stream.
        self.bg_table = None
        if self.device.type == "cuda" and self.cfg.random_background:
            g_bg = torch.Generator().manual_seed(int(self.cfg.seed) * 7919 + 17)
            self.bg_table = torch.rand(self.cfg.steps, self.batch_size, 3, generator=g_bg).to(self.device)
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)

    # ------------------------------------------------------------------ steps
    @property
    def model(self) -> GaussianModel:
        return self.state.model

    @property
    def next_step(self) -> int:
        """The index of the next step (= steps done so far)."""
        return self.state.step

    @property
    def done(self) -> bool:
        """Whether the loop has reached its last step (``stop_after`` or ``cfg.steps``)."""
        return self.state.step >= self.end_step

    def elapsed(self) -> float:
        """Seconds of fitting so far, those before a resume included."""
        return self.elapsed_before + time.perf_counter() - self.t_loop

    def step(self) -> StepStats:
        """One optimisation step: a batch of views, render, losses, backward, optimisers, densification."""
        if not self._set_up:
            raise RuntimeError("call FitLoop.setup() before step()")
        if self.done:
            raise RuntimeError(f"the fit has no steps left (step {self.state.step} of {self.end_step})")
        cfg, model, step = self.cfg, self.state.model, self.state.step
        optimizers, sstate = self.state.optimizers, self.state.strategy_state
        scale = cfg.resolution_scale(step)
        lv = self.levels.get(scale)
        idx = self.state.order.next(self.batch_size)
        bg = self._background(step)
        optimizers["means"].param_groups[0]["lr"] = means_lr(cfg, step, self.batch_size)
        active_sh = min(step // max(1, cfg.sh_degree_interval), cfg.sh_degree)
        cams = [lv.cameras[i] for i in idx]
        cam_t = tuple(torch.stack([lv.cam_t[i][j] for i in idx]) for j in range(3))
        img = torch.stack([lv.images[i] for i in idx])
        m = torch.stack([lv.masks[i] for i in idx])
        target = img * m[..., None] + bg[:, None, None, :] * (1 - m[..., None])
        out = render_model(model, cams, backend=self.backend, active_sh=active_sh, bg_rgb=bg, bg_logit=cfg.bg_logit,
                           semantic_grad_weight=self.render_sem_w, cam_tensors=cam_t)
        self.strategy.step_pre_backward(model.params, optimizers, sstate, step, out["info"])
        lab = torch.stack([lv.labels[i] for i in idx]) if lv.labels else None
        loss, l_rgb, l_sem, l_alpha = self._losses(step, idx, lv, out, target, m, lab)
        self._check_finite(step, loss, l_rgb, l_sem, l_alpha)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        self.head.semantic_loss.after_backward(step, cfg.steps)
        self.strategy.step_post_backward(model.params, optimizers, sstate, step, out["info"], packed=False)
        self.state.step = done = step + 1
        if self._health_step(done):
            self._check_parameters(done)  # before the step's callbacks write a checkpoint
        stats = StepStats(step, loss.detach(), l_rgb.detach(), l_sem.detach(), l_alpha.detach(), model.num_gaussians,
                          scale, active_sh)
        if done % cfg.log_every == 0 or done == cfg.steps or step == self.start_step:
            stats.record = self.last_record = self._record(stats, out, target, lab)
        for cb in self.callbacks:
            cb.on_step(stats)
        return stats

    def _background(self, step: int) -> torch.Tensor:
        """(B, 3) background colours of the step (drawn after the step's camera indices)."""
        if self.bg_table is not None:
            return self.bg_table[step]
        if self.cfg.random_background:
            return torch.rand(self.batch_size, 3, generator=self.state.order.generator).to(self.device)
        return torch.zeros(self.batch_size, 3, device=self.device)

    def _losses(self, step, idx, lv, out, target, m, lab):
        """(total, rgb, semantic, alpha) losses of a step's render."""
        cfg = self.cfg
        l_rgb = rgb_loss(out["rgb"], target, cfg.ssim_lambda)
        loss = l_rgb
        l_sem = torch.zeros((), device=self.device)
        if lab is not None and step >= cfg.sem_warmup:
            conf = torch.stack([lv.confidences[i] for i in idx]) if lv.confidences else None
            l_sem = self.head.semantic_loss(out[self.head.key], lab, step=step, steps=cfg.steps,
                                            class_weights=self.class_w, confidence=conf)
            if self.view_w is not None:  # the batch's mean view weight scales its semantic loss
                l_sem = l_sem * float(np.mean([self.view_w[i] for i in idx]))
            loss = loss + (cfg.sem_weight * self.sem_loss_factor) * l_sem
        l_alpha = torch.zeros((), device=self.device)
        if cfg.alpha_weight > 0:
            l_alpha = alpha_loss(out["alpha"], m)
            loss = loss + cfg.alpha_weight * l_alpha
        loss = loss + self.strategy.regularization(self.state.model.params)  # 0.0 for the default strategy
        return loss, l_rgb, l_sem, l_alpha

    def _health_step(self, done: int) -> bool:
        """Whether the loss and parameters are checked after ``done`` steps: where a log line, a
        checkpoint or the final outputs are written."""
        cfg = self.cfg
        return done % cfg.log_every == 0 or done % cfg.checkpoint_every == 0 or done >= self.end_step

    def _check_finite(self, step, loss, l_rgb, l_sem, l_alpha) -> None:
        """Stop with a LabelsplatError naming the last good checkpoint once the loss is not finite."""
        if self.defer_nan:
            self.nonfinite = self.nonfinite | ~torch.isfinite(loss.detach())
            check = self._health_step(step + 1)
        else:
            check = True
        if check and not bool(torch.isfinite(loss) & ~self.nonfinite if self.defer_nan else torch.isfinite(loss)):
            last_ck = latest_checkpoint(self.out_dir)
            raise LabelsplatError(
                f"the loss became NaN/infinite {'by' if self.defer_nan else 'at'} step {step} "
                f"(rgb {float(l_rgb.detach()):.4g}, semantic {float(l_sem.detach()):.4g}, "
                f"alpha {float(l_alpha.detach()):.4g}); the fit stopped",
                path=self.out_dir,
                hint=(f"the last good checkpoint is {last_ck}; " if last_ck else "no checkpoint was written yet; ")
                + "lower the learning rates (--preset) or check the input images/labels",
            )

    @torch.no_grad()
    def _check_parameters(self, done: int) -> None:
        """Stop with a LabelsplatError naming the last good checkpoint once a parameter is not finite
        (checked where a checkpoint, a log line or the final outputs would be written)."""
        params = self.state.model.params
        finite = torch.stack([torch.isfinite(p).all() for p in params.values()]).cpu()  # one device sync
        if bool(finite.all()):
            return
        bad = [name for name, ok in zip(params.keys(), finite.tolist()) if not ok]
        last_ck = latest_checkpoint(self.out_dir)
        raise LabelsplatError(
            f"the fit's parameters became NaN/infinite by step {done} ({', '.join(sorted(bad))}); the fit stopped",
            path=self.out_dir,
            hint=(f"the last good checkpoint is {last_ck} (continue with --resume once the cause is fixed); "
                  if last_ck else "no checkpoint was written yet; ")
            + "lower the learning rates (--preset, --fit-set lr_scale=...) or check the input images/labels",
        )

    @torch.no_grad()
    def _record(self, stats: StepStats, out, target, lab) -> dict[str, Any]:
        """The train_log.jsonl line of a step."""
        rec = {
            "step": stats.step, "loss": float(stats.loss), "rgb_loss": float(stats.rgb_loss),
            "sem_loss": float(stats.sem_loss), "alpha_loss": float(stats.alpha_loss),
            "psnr": psnr(out["rgb"].clamp(0, 1), target),
            "label_acc": None if lab is None else self.head.accuracy(out[self.head.key], lab),
            "n_gaussians": stats.n_gaussians, "resolution_scale": stats.resolution_scale,
            "active_sh": stats.active_sh, "time_s": round(self.elapsed(), 4),
        }
        if rec["label_acc"] is not None and not math.isfinite(rec["label_acc"]):
            rec["label_acc"] = None
        return rec

    def save_checkpoint(self, path: str | Path) -> Path:
        """The run state at the current step (elapsed time now) to ``path``."""
        self.state.elapsed_s = self.elapsed()
        return self.state.save(path)

    # ------------------------------------------------------------------ the end
    def _end_loop(self) -> None:
        if self._set_up and not self._loop_over:
            self._loop_over = True
            for cb in self.callbacks:
                cb.on_finish(self)

    def run(self) -> FitResult:
        """:meth:`setup`, every step, :meth:`finish`."""
        self.setup()
        try:
            while not self.done:
                self.step()
        finally:
            self._end_loop()
        return self.finish()

    def finish(self) -> FitResult:
        """After the last step: the checkpoint at ``stop_after`` (an early stop), or the label
        assignment, views seen, outputs, final checkpoint and ``run.json``."""
        if not self.done:
            raise RuntimeError(f"FitLoop.finish() before the last step ({self.state.step} of {self.end_step})")
        self._end_loop()
        elapsed = self.elapsed()
        self.phases.mark("loop")
        cfg, model, out_dir = self.cfg, self.state.model, self.out_dir
        self.state.elapsed_s = elapsed
        if self.end_step < cfg.steps:
            self.state.save(periodic_checkpoint_path(out_dir, self.end_step))
            return FitResult(out_dir, model, self.norm, cfg, {"step": self.end_step, "stopped_early": True}, self.notes)
        full = self.levels.get(1.0)
        assigned = None
        if not (self.resumed and self.start_step >= cfg.steps):  # a final checkpoint carries its assignment
            assigned = self.assigner.assign(model, full, backend=self.backend, class_weights=self.class_w,
                                            view_weights=self.view_w, scale=cfg.bg_logit)
        self.phases.mark("semantic_lift")
        agreement = None
        if self.num_classes > 0 and full.labels:
            agreement, warning = label_agreement(model, full, self.scene.name, backend=self.backend,
                                                 view_weights=self.view_w)
            if warning is not None and warning not in self.notes:
                self.notes.append(warning)
        self.phases.mark("label_agreement")
        model.n_views_seen = count_views_seen(model, full.cameras, backend=self.backend, threshold=cfg.seen_threshold)
        self.phases.mark("views_seen")
        summary: dict[str, Any] = {
            "steps": cfg.steps, "n_gaussians": model.num_gaussians, "fit_time_s": round(elapsed, 3),
            "total_time_s": round(time.perf_counter() - self.phases.t_start, 3), "last_log": self.last_record,
        }
        if assigned is not None:
            summary["semantic_lift"] = assigned
        if agreement is not None:
            summary["label_agreement"] = agreement
        summary.update(self.head.semantic_loss.finish(out_dir, list(get_scheme(self.scheme_name).classes)))
        if self.write_outputs:
            summary.update(write_run_outputs(out_dir, model, self.norm, full, self.views.names, self.backend,
                                             cfg.bg_logit, scheme=self.scheme_name))
        self.phases.mark("outputs")
        self.state.step = cfg.steps
        self.state.save(out_dir / "checkpoint.pt")
        self.phases.mark("checkpoint")
        summary["phases_s"] = self.phases.seconds
        if self.write_outputs:
            write_run_json(out_dir, self.state.meta, summary, self.notes, self.start_step if self.resumed else None)
        return FitResult(out_dir, model, self.norm, cfg, summary, self.notes)


def fit(
    scene: Scene | str | Path,
    out_dir: str | Path,
    cfg: FitConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    backend: str | None = None,
    resume: bool = False,
    progress: bool = False,
    write_outputs: bool = True,
    stop_after: int | None = None,
    torch_threads: int | None = 1,
) -> FitResult:
    """Fit the joint model to ``scene`` and write the run directory ``out_dir``.

    ``cfg`` is required for a new fit (e.g. ``labelsplat.config.fit_preset("tiny")``); on
    ``resume`` it defaults to the run's stored config (a different explicit config is refused). ``stop_after`` ends the loop after that many
    total steps without writing final outputs (used to test resume; the checkpoint at
    that step is written). Raises :class:`LabelsplatError` for bad input and NaN losses.

    ``torch_threads``: torch's intra-op threads during a CPU fit (restored afterwards). The
    default 1 leaves the cores to the numba rasteriser: torch's small per-step tensors gain
    nothing from a second thread, and its OpenMP pool spins badly on a busy machine (measured:
    SSIM fwd+bwd at 128^2 took 0.35-0.6 s CPU with 2 threads vs 0.01 s with 1 on the shared
    2-core box). ``None`` keeps torch's setting.
    """
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    prev_threads = torch.get_num_threads()
    if torch_threads is not None and dev.type == "cpu":
        torch.set_num_threads(int(torch_threads))
    try:
        loop = FitLoop(scene, out_dir, cfg, device=dev, backend=backend, resume=resume, write_outputs=write_outputs,
                       stop_after=stop_after, callbacks=default_callbacks(progress))
        return loop.run()
    finally:
        torch.set_num_threads(prev_threads)


__all__ = ["FitCallback", "FitLoop", "FitResult", "PeriodicCheckpoints", "ProgressBar",
           "StepStats", "TrainLog", "default_callbacks", "fit"]
