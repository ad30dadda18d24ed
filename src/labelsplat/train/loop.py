"""Training and fine-tuning BiSeNet (face-parsing.PyTorch recipe) with checkpoints and resume.

Outputs for ``out = model.pth`` (all written atomically):

* ``model.pth`` — a plain state dict with face-parsing.PyTorch's parameter names (like
  ``79999_iter.pth``): ``labelsplat parse --weights model.pth`` and the original project load it.
* ``model.pth.json`` — metadata sidecar: model, label scheme, class count, input size,
  mean/std, training config, data, seed, steps, final loss, versions. ``parse`` reads it to
  pick the scheme and input size.
* ``model.pth.state.pt`` — resume state: weights, optimiser, AMP scaler, step, torch RNG,
  config (every value loadable with ``torch.load(weights_only=True)``); written every
  ``ckpt_every`` steps, on Ctrl-C and at the end. ``resume=True`` continues from it; batches
  depend only on (seed, step), so an interrupted-and-resumed CPU run gives the same weights
  as an uninterrupted one.
* ``model.pth.train_log.jsonl`` — one JSON line per ``log_every`` steps (step, loss, per-head
  losses, lr, seconds).

Loss: OHEM CE (``thresh`` 0.7, ``n_min`` = batch x crop^2 / 16) on each of the three heads,
summed, 255 ignored. SGD momentum 0.9, weight decay 5e-4, 10x lr on fusion + heads,
exponential warm-up then poly(0.9) decay (:mod:`.optim`). AMP (float16 + GradScaler) on CUDA.

Data parallel: under ``torchrun`` every process runs :func:`train` on its own micro-batches
with a DistributedDataParallel model; ``accumulate`` micro-batches per step per process (one
process with ``accumulate = N`` reproduces N processes). ``batch_size`` is per micro-batch;
rank 0 alone writes the files above. Sharding, BN statistics and resume: :mod:`.distributed`.

Structure: :class:`TrainLoop` runs :meth:`~TrainLoop.setup`, :meth:`~TrainLoop.step` per optimiser
step and :meth:`~TrainLoop.finish`; the log writer, progress bar, periodic resume state and the
caller's ``on_step`` are callbacks around the steps (:mod:`.callbacks`).
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import math
import platform
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy
import torch

from .. import __version__
from ..errors import LabelsplatError
from ..io import atomic_write_bytes, atomic_write_json
from ..parsers.bisenet import bisenet_from_state_dict, extract_state_dict, load_backbone_weights, load_bisenet
from ..parsers.registry import create_model, get_model_info
from ..schemes import get_scheme
from .callbacks import StepStats, TrainCallback, TrainLog, default_callbacks
from .data import TrainData
from .distributed import DistContext, frozen_buffers, micro_batch_index, setup
from .loss import ohem_ce_loss
from .optim import WarmupPoly, make_optimizer, set_lr


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults are the original recipe (80k iters at 512)."""

    data: list[str]
    out: str
    mix: list[tuple[str, float]] = field(default_factory=list)
    init: str | None = None
    backbone_weights: str | None = None  # a torchvision ResNet-18 state dict for the backbone (train from scratch)
    scheme: str = "celebamask19-zll"
    input_size: int = 512
    crop_size: int | None = None  # default: input_size * 448 / 512, as the original
    iters: int = 80000
    batch_size: int = 16
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_iters: int | None = None  # default: iters / 80 (1000 for 80k, as the original)
    warmup_start_lr: float = 1e-5
    power: float = 0.9
    ohem_thresh: float = 0.7
    n_min_divisor: int = 16
    augment: bool = True
    split: str | None = "train"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    log_every: int = 20
    ckpt_every: int = 1000
    workers: int | None = None  # batch-preparing threads; default 0 on CPU, 4 on CUDA
    accumulate: int = 1  # micro-batches (of batch_size) per optimiser step per process, gradients averaged
    sync_bn: bool = False  # SyncBatchNorm across torchrun processes (CUDA only)

    def resolved(self) -> "TrainConfig":
        c = TrainConfig(**asdict(self))
        c.mix = [(str(d), float(r)) for d, r in self.mix]
        c.data = [str(d) for d in self.data]
        if c.crop_size is None:
            c.crop_size = max(16, int(round(c.input_size * 448 / 512)))
        if c.warmup_iters is None:
            c.warmup_iters = max(0, min(int(round(c.iters / 80)), c.iters - 1))
        return c

    def validate(self) -> None:
        if self.iters < 1:
            raise LabelsplatError(f"--iters must be >= 1, got {self.iters}")
        if self.batch_size < 2:
            raise LabelsplatError(
                f"--batch-size must be >= 2 (BatchNorm needs two samples per batch), got {self.batch_size}"
            )
        if self.input_size < 32 or self.input_size % 32:
            raise LabelsplatError(f"--input-size must be a multiple of 32 (>= 32), got {self.input_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise LabelsplatError(f"--lr must be positive, got {self.lr}")
        if self.accumulate < 1:
            raise LabelsplatError(f"--accumulate must be >= 1, got {self.accumulate}")
        if self.workers is not None and self.workers < 0:
            raise LabelsplatError(f"--workers must be >= 0, got {self.workers}")
        if self.warmup_iters is not None and not 0 <= self.warmup_iters < self.iters:
            raise LabelsplatError(f"warm-up ({self.warmup_iters}) must be shorter than --iters ({self.iters})")


def artifact_paths(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    return {
        "weights": out,
        "meta": Path(str(out) + ".json"),
        "state": Path(str(out) + ".state.pt"),
        "log": Path(str(out) + ".train_log.jsonl"),
    }


@dataclass
class TrainResult:
    weights: Path
    steps: int
    start_step: int
    first_loss: float | None
    last_loss: float | None
    seconds: float
    losses: list[float]
    rank: int = 0  # this process's rank under torchrun (0 for a single process)
    world_size: int = 1
    validation: list[dict] = field(default_factory=list)  # {"step", "val_miou", ...} when a val split exists


def _save_torch(path: Path, obj) -> None:
    buf = _io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _versions() -> dict:
    return {"labelsplat": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["mix"] = [[m, r] for m, r in cfg.mix]
    return d


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (``init=None``) or fine-tune (``init`` = weights) a BiSeNet; see the module doc.

    Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) every process calls this; they
    train one DistributedDataParallel model, each on its own micro-batches
    (:mod:`.distributed`), and only rank 0 writes files or shows progress.

    ``on_step(step, loss)`` is called (in every process) after every optimiser step (``step``
    counts completed steps; ``loss`` is the mean over all micro-batches of the step); an
    exception it raises interrupts training after the resume state is saved.
    """
    cfg = config.resolved()
    cfg.validate()
    ctx = setup(cfg.device)
    ok = False
    try:
        callbacks = default_callbacks(cfg, artifact_paths(cfg.out), main=ctx.is_main, progress=progress,
                                      on_step=on_step)
        res = TrainLoop(cfg, ctx, resume=resume, overwrite=overwrite, callbacks=callbacks).run()
        ok = True
        return res
    finally:
        ctx.close(success=ok)


def _load_resume_state(cfg: TrainConfig, paths: dict[str, Path], n_micro: int) -> dict:
    if not paths["state"].is_file():
        raise LabelsplatError("--resume: no resume state next to the output", path=paths["state"],
                              hint="run without --resume to start training")
    try:
        state = torch.load(paths["state"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LabelsplatError(f"cannot read the resume state ({type(exc).__name__})", path=paths["state"]) from exc
    saved = state.get("config", {})
    for key in ("data", "mix", "scheme", "input_size", "crop_size", "batch_size", "seed", "init", "backbone_weights"):
        a, b = saved.get(key), _config_dict(cfg).get(key)
        if json.dumps(a) != json.dumps(b):
            raise LabelsplatError(
                f"--resume: '{key}' differs from the interrupted run ({a!r} vs now {b!r})",
                path=paths["state"], hint="resume with the same settings, or start again with --overwrite",
            )
    saved_ws, saved_acc = int(state.get("world_size", 1)), int(saved.get("accumulate", 1))
    if saved_ws * saved_acc != n_micro:
        raise LabelsplatError(
            f"--resume: the interrupted run took {saved_ws * saved_acc} micro-batches per step "
            f"({saved_ws} process(es) x --accumulate {saved_acc}), now {n_micro}",
            path=paths["state"],
            hint=f"resume with processes x --accumulate = {saved_ws * saved_acc} (e.g. --accumulate "
                 f"{saved_ws * saved_acc} on one device)",
        )
    return state


class _Batches:
    """This process's micro-batches in order, prepared ``workers`` ahead in threads (a batch
    depends only on (seed, index), so preparing them ahead changes nothing)."""

    def __init__(self, data: TrainData, cfg: TrainConfig, ctx: DistContext, workers: int):
        self.data, self.cfg, self.ctx, self.workers = data, cfg, ctx, workers
        self.n_local = cfg.iters * cfg.accumulate  # this process's micro-batches over the run
        self.pending: dict[int, Future] = {}
        self.executor = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labelsplat-data")
                         if workers > 0 else None)

    def load(self, k: int):
        """The ``k``-th micro-batch of this process."""
        n_acc = self.cfg.accumulate
        m = micro_batch_index(k // n_acc, k % n_acc, rank=self.ctx.rank, world_size=self.ctx.world_size,
                              accumulate=n_acc)
        return self.data.batch(m, self.cfg.batch_size, self.cfg.seed)

    def get(self, k: int):
        if self.executor is None:
            return self.load(k)
        for t in range(k, min(k + self.workers + 1, self.n_local)):
            if t not in self.pending:
                self.pending[t] = self.executor.submit(self.load, t)
        return self.pending.pop(k).result()

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


class TrainLoop:
    """One training run, in three parts that tests can drive one by one:

    * :meth:`setup` — checks the outputs, loads the data, builds (or restores) the model,
      optimiser, AMP scaler, step and RNG; every process agrees before anything is written;
    * :meth:`step` — one optimiser step over ``accumulate`` micro-batches per process; a step cut
      short leaves the BN running statistics as they were before it;
    * :meth:`finish` — the final resume state, the weights and their metadata (rank 0).

    :meth:`run` does all three with the callbacks (:mod:`.callbacks`) around the steps, and saves
    the resume state when the steps are interrupted.
    """

    def __init__(self, cfg: TrainConfig, ctx: DistContext, *, resume: bool = False, overwrite: bool = False,
                 callbacks: Sequence[TrainCallback] = ()):
        self.cfg, self.ctx = cfg, ctx
        self.resume, self.overwrite = resume, overwrite
        self.callbacks = list(callbacks)
        self.paths = artifact_paths(cfg.out)
        self.scheme = get_scheme(cfg.scheme)
        self.info = get_model_info("bisenet")
        self.device = ctx.device
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        self.n_micro = ctx.world_size * cfg.accumulate  # micro-batches per optimiser step, all processes together
        self.main = ctx.is_main
        self.n_min = cfg.batch_size * cfg.crop_size * cfg.crop_size // cfg.n_min_divisor
        self.state: dict | None = None  # the resume state loaded, if any
        self.start = 0
        self.step_count = 0  # completed optimiser steps
        self.losses: list[float] = []
        self.val_results: list[dict] = []  # validation scores logged by the Validation callback

    @property
    def resumed(self) -> bool:
        return self.state is not None

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Everything before the first step; every process checks and loads the same files and
        nothing is written before all agree."""
        cfg, ctx = self.cfg, self.ctx
        error: BaseException | None = None
        try:
            self._load()
        except Exception as exc:  # reported to every process before anyone raises
            error = exc
        ctx.agree(error)
        if ctx.enabled:
            s1, s2 = ctx.all_reduce_sum([self.start, self.start * self.start])
            if s1 * s1 != s2 * ctx.world_size:  # all equal iff the variance is 0
                raise LabelsplatError("--resume: the processes loaded different resume states",
                                      path=self.paths["state"], hint="put the output on storage every process sees")
        self.sched = WarmupPoly(cfg.lr, cfg.iters, cfg.warmup_iters, cfg.warmup_start_lr, cfg.power)
        self.net = ctx.wrap(self.model)  # DistributedDataParallel under torchrun; `model` stays the plain module
        workers = cfg.workers if cfg.workers is not None else (4 if self.device.type == "cuda" else 0)
        self.batches = _Batches(self.data, cfg, ctx, workers)
        self.step_count = self.start
        self.t0 = time.perf_counter()

    def _load(self) -> None:
        cfg = self.cfg
        if cfg.sync_bn and self.device.type != "cuda":
            raise LabelsplatError("--sync-bn needs CUDA: SyncBatchNorm does not run on CPU",
                                  hint="drop --sync-bn; each process then normalises its own micro-batch")
        if self.resume:
            self.state = _load_resume_state(cfg, self.paths, self.n_micro)
        elif not self.overwrite:
            for key in ("weights", "state"):
                if self.paths[key].exists():
                    raise LabelsplatError("the output already exists", path=self.paths[key],
                                          hint="pass --resume to continue it, --overwrite to start again, or another --out")
        self.data = TrainData(cfg.data, cfg.mix, scheme=cfg.scheme, input_size=cfg.input_size,
                              crop_size=cfg.crop_size, mean=self.info.mean, std=self.info.std, split=cfg.split)
        torch.manual_seed(cfg.seed)
        self.model = self._build_model()
        self.opt = make_optimizer(self.model, cfg.lr, cfg.momentum, cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        if self.state is not None:
            self._restore(self.state)

    def _build_model(self):
        cfg, n_classes = self.cfg, self.scheme.num_classes
        if self.state is not None:
            model = bisenet_from_state_dict(extract_state_dict(self.state["model"], self.paths["state"]),
                                            n_classes=n_classes)
        elif cfg.init is not None:
            model = load_bisenet(cfg.init, n_classes=n_classes)
        else:
            model = create_model("bisenet", n_classes=n_classes)
            if cfg.backbone_weights is not None:
                load_backbone_weights(model, cfg.backbone_weights)
        if cfg.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model.to(self.device).train()

    def _restore(self, state: dict) -> None:
        """Optimiser, AMP scaler, step and torch RNG from a resume state."""
        self.opt.load_state_dict(state["optimizer"])
        if self.use_amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start = int(state["step"])
        torch.set_rng_state(state["rng_torch"])
        if self.start > self.cfg.iters:
            raise LabelsplatError(f"--resume: the run already has {self.start} steps, more than --iters {self.cfg.iters}")

    # ------------------------------------------------------------------ steps
    def step(self) -> StepStats:
        """One optimiser step. Cut short (an error, Ctrl-C), it puts the BN running statistics
        back as they were before it, so the saved resume state is the previous step's."""
        buffers = [(b, b.detach().clone()) for b in self.model.buffers()]
        try:
            return self._step()
        except BaseException:
            with torch.no_grad():
                for b, v in buffers:
                    b.copy_(v)
            raise

    def _step(self) -> StepStats:
        cfg, ctx, step = self.cfg, self.ctx, self.step_count
        lr = self.sched(step)
        set_lr(self.opt, lr)
        self.opt.zero_grad(set_to_none=True)
        sums = torch.zeros(4, dtype=torch.float64)
        for a in range(cfg.accumulate):
            sums += self._micro_batch(step, a)
        tot = ctx.all_reduce_sum(sums.tolist())
        lv, l_main, l16, l32 = (v / self.n_micro for v in tot)
        if not math.isfinite(lv):
            raise LabelsplatError(f"the loss became {lv} at step {step}", hint="lower --lr")
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step_count = step + 1
        self.losses.append(lv)
        return StepStats(self.step_count, lv, l_main, l16, l32, lr, time.perf_counter() - self.t0)

    def _micro_batch(self, step: int, a: int):
        """Forward and backward of micro-batch ``a`` of ``step``; its (total, main, 16, 32) losses."""
        cfg, ctx, device, n_acc = self.cfg, self.ctx, self.device, self.cfg.accumulate
        x, y = self.batches.get(step * n_acc + a)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        # gradients are all-reduced on the last micro-batch only; BN running statistics
        # follow the first micro-batch of the step only (see .distributed)
        no_sync = self.net.no_sync() if ctx.enabled and a < n_acc - 1 else contextlib.nullcontext()
        keep_bn = frozen_buffers(self.model) if a > 0 else contextlib.nullcontext()
        with no_sync, keep_bn:
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=self.use_amp):
                outs = self.net(x)
            head_losses = [ohem_ce_loss(o.float(), y, thresh=cfg.ohem_thresh, n_min=self.n_min) for o in outs]
            loss = head_losses[0] + head_losses[1] + head_losses[2]
            self.scaler.scale(loss if n_acc == 1 else loss / n_acc).backward()
        return torch.stack([loss.detach(), *(h.detach() for h in head_losses)]).double().cpu()

    def run(self) -> TrainResult:
        """:meth:`setup`, the steps with the callbacks, :meth:`finish`. Interrupted steps (an error,
        Ctrl-C, a callback raising) save the resume state on rank 0 before the error propagates."""
        self.setup()
        try:
            for cb in self.callbacks:
                cb.on_setup(self)
            while self.step_count < self.cfg.iters:
                stats = self.step()
                for cb in self.callbacks:
                    cb.on_step(self, stats)
        except BaseException:
            if self.main and self.step_count > self.start:
                self.save_state()
            raise
        finally:
            self.batches.close()
            for cb in self.callbacks:
                cb.on_finish(self)
        return self.finish()

    # ------------------------------------------------------------------ outputs
    def log_extra(self, record: dict) -> None:
        """Write ``record`` (validation scores) as a train_log line and keep it for the sidecar."""
        self.val_results.append(record)
        for cb in self.callbacks:
            if isinstance(cb, TrainLog):
                cb.write(record)

    def save_state(self) -> None:
        """The resume state after the completed steps (``<out>.state.pt``)."""
        _save_torch(self.paths["state"], {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else {},
            "step": int(self.step_count),
            "rng_torch": torch.get_rng_state(),
            "config": _config_dict(self.cfg),
            "world_size": self.ctx.world_size,
        })

    def finish(self) -> TrainResult:
        """Rank 0: the final resume state, the weights and their metadata sidecar."""
        if self.main:
            self.save_state()
            weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            _save_torch(self.paths["weights"], weights)
            atomic_write_json(self.paths["meta"], self._metadata())
        losses = self.losses
        return TrainResult(self.paths["weights"], self.step_count, self.start, losses[0] if losses else None,
                           losses[-1] if losses else None, time.perf_counter() - self.t0, losses,
                           rank=self.ctx.rank, world_size=self.ctx.world_size, validation=list(self.val_results))

    def _metadata(self) -> dict:
        cfg, info = self.cfg, self.info
        return {
            "model": "bisenet",
            "label_scheme": cfg.scheme,
            "lr_convention": self.scheme.lr_convention,
            "n_classes": self.scheme.num_classes,
            "input_size": cfg.input_size,
            "mean": list(info.mean),
            "std": list(info.std),
            "steps": self.step_count,
            "final_loss": self.losses[-1] if self.losses else None,
            "validation": self.val_results,
            "data": self.data.describe(),
            "config": _config_dict(cfg),
            "seed": cfg.seed,
            "device": str(self.device),
            "amp": self.use_amp,
            "world_size": self.ctx.world_size,
            "accumulate": cfg.accumulate,
            "global_batch": cfg.batch_size * self.n_micro,
            "versions": _versions(),
        }


__all__ = ["TrainConfig", "TrainResult", "TrainLoop", "train", "artifact_paths"]
