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

    ``on_step(step, loss)`` is called after every optimiser step (``step`` counts completed
    steps); an exception it raises interrupts training after the resume state is saved.
    """
    import torch

    from ..device import resolve_device
    from ..parsers.bisenet import bisenet_from_state_dict, extract_state_dict, load_bisenet
    from ..parsers.registry import create_model, get_model_info
    from ..schemes import get_scheme
    from .data import TrainData
    from .loss import ohem_ce_loss
    from .optim import WarmupPoly, make_optimizer, set_lr

    cfg = config.resolved()
    cfg.validate()
    paths = artifact_paths(cfg.out)
    scheme = get_scheme(cfg.scheme)
    info = get_model_info("bisenet")
    device = resolve_device(cfg.device)
    use_amp = bool(cfg.amp and device.type == "cuda")

    state = None
    if resume:
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
    model = model.to(device).train()
    opt = make_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    sched = WarmupPoly(cfg.lr, cfg.iters, cfg.warmup_iters, cfg.warmup_start_lr, cfg.power)
    start = 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        if use_amp and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        torch.set_rng_state(state["rng_torch"])
        if start > cfg.iters:
            raise LabelsplatError(f"--resume: the run already has {start} steps, more than --iters {cfg.iters}")
        # drop log lines written after the checkpoint
        if paths["log"].exists():
            keep = []
            for ln in paths["log"].read_text().splitlines():
                try:
                    if json.loads(ln).get("step", 0) <= start:
                        keep.append(ln)
                except (ValueError, AttributeError):
                    pass  # a line cut short by the interruption
            atomic_write_bytes(paths["log"], ("\n".join(keep) + ("\n" if keep else "")).encode())
    elif paths["log"].exists():
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
        })

    workers = cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 0)
    executor = None
    pending: dict = {}
    if workers > 0:
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labelsplat-data")

    def get_batch(s: int):
        # batches depend only on (seed, step), so preparing them ahead in threads changes nothing
        if executor is None:
            return data.batch(s, cfg.batch_size, cfg.seed)
        for t in range(s, min(s + workers + 1, cfg.iters)):
            if t not in pending:
                pending[t] = executor.submit(data.batch, t, cfg.batch_size, cfg.seed)
        return pending.pop(s).result()

    losses: list[float] = []
    t0 = time.perf_counter()
    step = start
    prog = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        prog = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                        TimeElapsedColumn(), TimeRemainingColumn())
        task = prog.add_task("train", total=cfg.iters, completed=start, loss="-")
        prog.start()
    log_fh = open(paths["log"], "a", encoding="utf-8")
    try:
        while step < cfg.iters:
            lr = sched(step)
            set_lr(opt, lr)
            x, y = get_batch(step)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                outs = model(x)
            head_losses = [ohem_ce_loss(o.float(), y, thresh=cfg.ohem_thresh, n_min=n_min) for o in outs]
            loss = head_losses[0] + head_losses[1] + head_losses[2]
            if not torch.isfinite(loss):
                raise LabelsplatError(f"the loss became {loss.item()} at step {step}", hint="lower --lr")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            lv = float(loss.detach())
            losses.append(lv)
            if step % cfg.log_every == 0 or step == cfg.iters or step == start + 1:
                rec = {"step": step, "loss": lv, "loss_main": float(head_losses[0].detach()),
                       "loss16": float(head_losses[1].detach()), "loss32": float(head_losses[2].detach()),
                       "lr": lr, "seconds": round(time.perf_counter() - t0, 3)}
                log_fh.write(json.dumps(rec) + "\n")
                log_fh.flush()
            if prog is not None:
                prog.update(task, completed=step, loss=f"{lv:.4f}")
            if cfg.ckpt_every > 0 and step % cfg.ckpt_every == 0 and step < cfg.iters:
                save_state(step)
            if on_step is not None:
                on_step(step, lv)
    except BaseException:
        if step > start:
            save_state(step)
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        log_fh.close()
        if prog is not None:
            prog.stop()
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
        "versions": _versions(),
    }
    atomic_write_json(paths["meta"], meta)
    return TrainResult(paths["weights"], step, start, losses[0] if losses else None, losses[-1] if losses else None,
                       time.perf_counter() - t0, losses)
