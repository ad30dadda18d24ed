"""Hooks of a training run (:class:`~labelsplat.train.loop.TrainLoop`): what happens around the
optimiser steps without being part of them.

A callback has three methods, called in every process that has it:

* ``on_setup(loop)`` — after the model, optimiser and resume state are loaded (``loop.start``
  is the first step to run, ``loop.resumed`` says whether a resume state was loaded);
* ``on_step(loop, stats)`` — after every optimiser step, with its :class:`StepStats`;
* ``on_finish(loop)`` — once when the loop ends, completed or interrupted (release files and
  displays here; the run's outputs are written after it).

:func:`default_callbacks` gives the run's usual ones in their order: the ``train_log.jsonl``
writer, the progress bar and the periodic resume state (rank 0 only), then the caller's
``on_step(step, loss)`` function (every process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..io import atomic_write_bytes, read_jsonl
from .validation import Validation


@dataclass(frozen=True)
class StepStats:
    """One optimiser step: ``step`` counts completed steps; losses are means over all micro-batches
    of the step (all processes); ``seconds`` since this process's loop started."""

    step: int
    loss: float
    loss_main: float
    loss16: float
    loss32: float
    lr: float
    seconds: float

    def log_record(self) -> dict[str, Any]:
        return {"step": self.step, "loss": self.loss, "loss_main": self.loss_main, "loss16": self.loss16,
                "loss32": self.loss32, "lr": self.lr, "seconds": round(self.seconds, 3)}


class TrainCallback(Protocol):
    def on_setup(self, loop: Any) -> None: ...

    def on_step(self, loop: Any, stats: StepStats) -> None: ...

    def on_finish(self, loop: Any) -> None: ...


class TrainLog:
    """``<out>.train_log.jsonl``: one JSON line every ``every`` steps, at the first step of the run
    and at the last. A resumed run first drops the lines written after its resume state; a new run
    starts an empty log."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = Path(path), every
        self._fh = None

    def on_setup(self, loop) -> None:
        if loop.resumed and self.path.exists():
            keep = [ln for ln, rec in read_jsonl(self.path)  # a line cut short by the interruption is dropped
                    if isinstance(rec, dict) and isinstance(rec.get("step", 0), (int, float))
                    and rec.get("step", 0) <= loop.start]
            atomic_write_bytes(self.path, ("\n".join(keep) + ("\n" if keep else "")).encode())
        elif not loop.resumed and self.path.exists():
            self.path.unlink()
        self._fh = open(self.path, "a", encoding="utf-8")

    def on_step(self, loop, stats: StepStats) -> None:
        if stats.step % self.every == 0 or stats.step == loop.cfg.iters or stats.step == loop.start + 1:
            self._fh.write(json.dumps(stats.log_record()) + "\n")
            self._fh.flush()

    def write(self, record: dict[str, Any]) -> None:
        """One extra line (e.g. the validation scores of a step)."""
        if self._fh is not None:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()

    def on_finish(self, loop) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class ProgressBar:
    """A rich progress bar: steps done out of ``--iters``, the last step's loss, times."""

    def __init__(self):
        self._prog = None
        self._task = None

    def on_setup(self, loop) -> None:
        self._prog = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn())
        self._task = self._prog.add_task("train", total=loop.cfg.iters, completed=loop.start, loss="-")
        self._prog.start()

    def on_step(self, loop, stats: StepStats) -> None:
        self._prog.update(self._task, completed=stats.step, loss=f"{stats.loss:.4f}")

    def on_finish(self, loop) -> None:
        if self._prog is not None:
            self._prog.stop()
            self._prog = None


class Checkpointer:
    """The resume state every ``every`` steps (not after the last step: the run's end writes it)."""

    def __init__(self, every: int):
        self.every = every

    def on_setup(self, loop) -> None:
        pass

    def on_step(self, loop, stats: StepStats) -> None:
        if self.every > 0 and stats.step % self.every == 0 and stats.step < loop.cfg.iters:
            loop.save_state()

    def on_finish(self, loop) -> None:
        pass


class StepHook:
    """Calls ``fn(step, loss)`` after every step; an exception it raises interrupts the run (the
    resume state is saved first)."""

    def __init__(self, fn: Callable[[int, float], None]):
        self.fn = fn

    def on_setup(self, loop) -> None:
        pass

    def on_step(self, loop, stats: StepStats) -> None:
        self.fn(stats.step, stats.loss)

    def on_finish(self, loop) -> None:
        pass


def default_callbacks(cfg, paths: dict[str, Path], *, main: bool, progress: bool = False,
                      on_step: Callable[[int, float], None] | None = None) -> Sequence[TrainCallback]:
    """The log writer, the validation mIoU (when a ``val`` split exists), progress bar (``progress``)
    and periodic resume state on the main process, then ``on_step`` (every process)."""
    callbacks: list[TrainCallback] = []
    if main:
        callbacks.append(TrainLog(paths["log"], cfg.log_every))
        callbacks.append(Validation(cfg.ckpt_every))
        if progress:
            callbacks.append(ProgressBar())
        callbacks.append(Checkpointer(cfg.ckpt_every))
    if on_step is not None:
        callbacks.append(StepHook(on_step))
    return callbacks


__all__ = ["StepStats", "TrainCallback", "TrainLog", "ProgressBar", "Checkpointer", "StepHook", "default_callbacks"]
