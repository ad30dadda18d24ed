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
"""

from __future__ import annotations

import io as _io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import LabelsplatError
from ..io import atomic_write_bytes, atomic_write_json


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults are the original recipe (80k iters at 512)."""

    data: list[str]
    out: str
    mix: list[tuple[str, float]] = field(default_factory=list)
    init: str | None = None
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


def _save_torch(path: Path, obj) -> None:
    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _versions() -> dict:
    import platform

    import numpy
    import torch

    from .. import __version__

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
    from .distributed import setup

    cfg = config.resolved()
    cfg.validate()
    ctx = setup(cfg.device)
    ok = False
    try:
        res = _train(cfg, ctx, resume=resume, overwrite=overwrite, progress=progress, on_step=on_step)
        ok = True
        return res
    finally:
        ctx.close(success=ok)


def _load_resume_state(cfg: TrainConfig, paths: dict[str, Path], n_micro: int) -> dict:
    import torch

    if not paths["state"].is_file():
        raise LabelsplatError("--resume: no resume state next to the output", path=paths["state"],
                              hint="run without --resume to start training")
    try:
        state = torch.load(paths["state"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LabelsplatError(f"cannot read the resume state ({type(exc).__name__})", path=paths["state"]) from exc
    saved = state.get("config", {})
    for key in ("data", "mix", "scheme", "input_size", "crop_size", "batch_size", "seed", "init"):
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


def _train(cfg: TrainConfig, ctx, *, resume: bool, overwrite: bool, progress: bool,
           on_step: Callable[[int, float], None] | None) -> TrainResult:
    import contextlib

    import torch

    from ..parsers.bisenet import bisenet_from_state_dict, extract_state_dict, load_bisenet
    from ..parsers.registry import create_model, get_model_info
    from ..schemes import get_scheme
    from .data import TrainData
    from .distributed import frozen_buffers, micro_batch_index
    from .loss import ohem_ce_loss
    from .optim import WarmupPoly, make_optimizer, set_lr

    paths = artifact_paths(cfg.out)
    scheme = get_scheme(cfg.scheme)
    info = get_model_info("bisenet")
    device = ctx.device
    use_amp = bool(cfg.amp and device.type == "cuda")
    n_acc = cfg.accumulate
    n_micro = ctx.world_size * n_acc  # micro-batches per optimiser step, all processes together
    main = ctx.is_main

    # Setup: every process checks and loads the same files; nothing is written before all agree.
    error: BaseException | None = None
    state = None
    try:
        if cfg.sync_bn and device.type != "cuda":
            raise LabelsplatError("--sync-bn needs CUDA: SyncBatchNorm does not run on CPU",
                                  hint="drop --sync-bn; each process then normalises its own micro-batch")
        if resume:
            state = _load_resume_state(cfg, paths, n_micro)
        elif not overwrite:
            for key in ("weights", "state"):
                if paths[key].exists():
                    raise LabelsplatError("the output already exists", path=paths[key],
                                          hint="pass --resume to continue it, --overwrite to start again, or another --out")
        data = TrainData(cfg.data, cfg.mix, scheme=cfg.scheme, input_size=cfg.input_size, crop_size=cfg.crop_size,
                         mean=info.mean, std=info.std, split=cfg.split)
        torch.manual_seed(cfg.seed)
        if state is not None:
            model = bisenet_from_state_dict(extract_state_dict(state["model"], paths["state"]), n_classes=scheme.num_classes)
        elif cfg.init is not None:
            model = load_bisenet(cfg.init, n_classes=scheme.num_classes)
        else:
            model = create_model("bisenet", n_classes=scheme.num_classes)
        if cfg.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(device).train()
        opt = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        start = 0
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            if use_amp and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            start = int(state["step"])
            torch.set_rng_state(state["rng_torch"])
            if start > cfg.iters:
                raise LabelsplatError(f"--resume: the run already has {start} steps, more than --iters {cfg.iters}")
    except Exception as exc:  # reported to every process before anyone raises
        error = exc
    ctx.agree(error)
    if ctx.enabled:
        s1, s2 = ctx.all_reduce_sum([start, start * start])
        if s1 * s1 != s2 * ctx.world_size:  # all equal iff the variance is 0
            raise LabelsplatError("--resume: the processes loaded different resume states",
                                  path=paths["state"], hint="put the output on storage every process sees")
    sched = WarmupPoly(cfg.lr, cfg.iters, cfg.warmup_iters, cfg.warmup_start_lr, cfg.power)
    net = ctx.wrap(model)  # DistributedDataParallel under torchrun; `model` stays the plain module

    if main:
        if state is not None and paths["log"].exists():
            # drop log lines written after the checkpoint
            keep = []
            for ln in paths["log"].read_text().splitlines():
                try:
                    if json.loads(ln).get("step", 0) <= start:
                        keep.append(ln)
                except (ValueError, AttributeError):
                    pass  # a line cut short by the interruption
            atomic_write_bytes(paths["log"], ("\n".join(keep) + ("\n" if keep else "")).encode())
        elif state is None and paths["log"].exists():
            paths["log"].unlink()

    n_min = cfg.batch_size * cfg.crop_size * cfg.crop_size // cfg.n_min_divisor

    def save_state(step: int) -> None:
        _save_torch(paths["state"], {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if use_amp else {},
            "step": int(step),
            "rng_torch": torch.get_rng_state(),
            "config": _config_dict(cfg),
            "world_size": ctx.world_size,
        })

    workers = cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 0)
    executor = None
    pending: dict = {}
    if workers > 0:
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labelsplat-data")
    n_local = cfg.iters * n_acc  # this process's micro-batches over the run

    def load_micro(k: int):
        # k-th micro-batch of this process; batches depend only on (seed, index), so preparing
        # them ahead in threads changes nothing
        m = micro_batch_index(k // n_acc, k % n_acc, rank=ctx.rank, world_size=ctx.world_size, accumulate=n_acc)
        return data.batch(m, cfg.batch_size, cfg.seed)

    def get_batch(k: int):
        if executor is None:
            return load_micro(k)
        for t in range(k, min(k + workers + 1, n_local)):
            if t not in pending:
                pending[t] = executor.submit(load_micro, t)
        return pending.pop(k).result()

    losses: list[float] = []
    t0 = time.perf_counter()
    step = start
    prog = None
    if progress and main:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        prog = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                        TimeElapsedColumn(), TimeRemainingColumn())
        task = prog.add_task("train", total=cfg.iters, completed=start, loss="-")
        prog.start()
    log_fh = open(paths["log"], "a", encoding="utf-8") if main else None
    step_buffers = None  # buffers at the start of the step in progress (restored if it is cut short)
    try:
        while step < cfg.iters:
            lr = sched(step)
            set_lr(opt, lr)
            step_buffers = [(b, b.detach().clone()) for b in model.buffers()]
            opt.zero_grad(set_to_none=True)
            sums = torch.zeros(4, dtype=torch.float64)
            for a in range(n_acc):
                x, y = get_batch(step * n_acc + a)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                # gradients are all-reduced on the last micro-batch only; BN running statistics
                # follow the first micro-batch of the step only (see .distributed)
                no_sync = net.no_sync() if ctx.enabled and a < n_acc - 1 else contextlib.nullcontext()
                keep_bn = frozen_buffers(model) if a > 0 else contextlib.nullcontext()
                with no_sync, keep_bn:
                    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                        outs = net(x)
                    head_losses = [ohem_ce_loss(o.float(), y, thresh=cfg.ohem_thresh, n_min=n_min) for o in outs]
                    loss = head_losses[0] + head_losses[1] + head_losses[2]
                    scaler.scale(loss if n_acc == 1 else loss / n_acc).backward()
                sums += torch.stack([loss.detach(), *(h.detach() for h in head_losses)]).double().cpu()
            tot = ctx.all_reduce_sum(sums.tolist())
            lv, l_main, l16, l32 = (v / n_micro for v in tot)
            if not math.isfinite(lv):
                raise LabelsplatError(f"the loss became {lv} at step {step}", hint="lower --lr")
            scaler.step(opt)
            scaler.update()
            step += 1
            step_buffers = None
            losses.append(lv)
            if main and (step % cfg.log_every == 0 or step == cfg.iters or step == start + 1):
                rec = {"step": step, "loss": lv, "loss_main": l_main, "loss16": l16, "loss32": l32,
                       "lr": lr, "seconds": round(time.perf_counter() - t0, 3)}
                log_fh.write(json.dumps(rec) + "\n")
                log_fh.flush()
            if prog is not None:
                prog.update(task, completed=step, loss=f"{lv:.4f}")
            if main and cfg.ckpt_every > 0 and step % cfg.ckpt_every == 0 and step < cfg.iters:
                save_state(step)
            if on_step is not None:
                on_step(step, lv)
    except BaseException:
        if step_buffers is not None:  # cut short inside a step: undo its BN running-stat update
            with torch.no_grad():
                for b, v in step_buffers:
                    b.copy_(v)
        if main and step > start:
            save_state(step)
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if log_fh is not None:
            log_fh.close()
        if prog is not None:
            prog.stop()
    if main:
        save_state(step)
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        _save_torch(paths["weights"], weights)
        meta = {
            "model": "bisenet",
            "label_scheme": cfg.scheme,
            "lr_convention": scheme.lr_convention,
            "n_classes": scheme.num_classes,
            "input_size": cfg.input_size,
            "mean": list(info.mean),
            "std": list(info.std),
            "steps": step,
            "final_loss": losses[-1] if losses else None,
            "data": data.describe(),
            "config": _config_dict(cfg),
            "seed": cfg.seed,
            "device": str(device),
            "amp": use_amp,
            "world_size": ctx.world_size,
            "accumulate": n_acc,
            "global_batch": cfg.batch_size * n_micro,
            "versions": _versions(),
        }
        atomic_write_json(paths["meta"], meta)
    return TrainResult(paths["weights"], step, start, losses[0] if losses else None, losses[-1] if losses else None,
                       time.perf_counter() - t0, losses, rank=ctx.rank, world_size=ctx.world_size)
