"""Data-parallel training under ``torchrun`` (DistributedDataParallel) and its single-process twin.

Launch: ``torchrun --nproc_per_node N -m labelsplat.cli finetune ...`` (or ``train``). torchrun
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (+ ``MASTER_ADDR``/``MASTER_PORT``) in every
process; :func:`detect_env` reads them and :func:`setup` joins the process group (``nccl`` on
CUDA, ``gloo`` on CPU), with process ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``. Without those
variables (or with ``WORLD_SIZE=1``) everything is the plain single-process path.

Data sharding (the deterministic equivalent of a ``DistributedSampler`` with ``set_epoch``):
the training stream is a sequence of micro-batches; micro-batch ``m`` is
``TrainData.batch(m, batch_size, seed)`` and depends only on ``(seed, m)``. With ``W``
processes and ``A`` accumulated micro-batches per process, optimiser step ``s`` consumes the
``N = W * A`` micro-batches ``s*N .. s*N + N-1``; process ``r`` takes ``s*N + r*A + a`` for
``a < A`` (:func:`micro_batch_index`). With ``W = A = 1`` this is the single-process order
(micro-batch ``m`` = step ``m``), so nothing changes for a plain run. ``--batch-size`` is per
micro-batch (per process); the global batch is ``batch_size * W * A``; nothing is rescaled
(learning rate, OHEM ``n_min`` = per micro-batch, schedule in optimiser steps).

Equivalence: DDP averages the gradients of the ``W`` processes (all-reduce sum / W). The
single-process run with ``accumulate = W`` back-propagates each micro-batch's loss divided by
``W`` into the same gradients, so it takes the same steps up to float summation order.
Batch-norm *batch* statistics are per micro-batch in both (``SyncBatchNorm``, CUDA only, makes
them global instead). Batch-norm *running* statistics: DDP broadcasts rank 0's buffers before
each step's first forward (``broadcast_buffers=True``, the default), so the saved model
carries the running statistics of rank 0's micro-batches only; to keep one rule for every
(W, A), running statistics are updated by the first micro-batch of each step only
(``s * N``: rank 0, ``a = 0``) and restored after the others (:func:`frozen_buffers`). So
``--accumulate N`` on one device reproduces ``torchrun --nproc_per_node N`` parameters *and*
buffers, which is what ``tests/train/test_ddp.py`` checks.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from ..device import resolve_device
from ..errors import LabelsplatError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun job (all 0/1 for a plain run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as torchrun sets them; none set -> single process."""
    env = os.environ if environ is None else environ
    present = [k for k in ENV_KEYS if env.get(k, "") != ""]
    if not present:
        return DistEnv()
    if "WORLD_SIZE" not in present:
        raise LabelsplatError(f"{', '.join(present)} set but WORLD_SIZE is not",
                              hint="launch with torchrun, or unset RANK/LOCAL_RANK for a single process")
    vals = {}
    for k in ENV_KEYS:
        raw = env.get(k, "") or ("0" if k != "WORLD_SIZE" else "1")
        try:
            vals[k] = int(raw)
        except ValueError:
            raise LabelsplatError(f"environment variable {k}={raw!r} is not an integer",
                                  hint="launch with torchrun, which sets it") from None
    ws, rank, local = vals["WORLD_SIZE"], vals["RANK"], vals["LOCAL_RANK"]
    if ws < 1 or not 0 <= rank < ws or local < 0:
        raise LabelsplatError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={ws} LOCAL_RANK={local}")
    if ws > 1:
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
        if missing:
            raise LabelsplatError(f"WORLD_SIZE={ws} but {', '.join(missing)} not set",
                                  hint="launch with torchrun, which sets them")
    return DistEnv(rank=rank, world_size=ws, local_rank=local)


def micro_batch_index(step: int, a: int, *, rank: int = 0, world_size: int = 1, accumulate: int = 1) -> int:
    """Index of the ``a``-th micro-batch of process ``rank`` at optimiser step ``step`` (see module doc)."""
    if not 0 <= a < accumulate or not 0 <= rank < world_size:
        raise ValueError(f"micro_batch_index: a={a} (accumulate {accumulate}), rank={rank} (world {world_size})")
    return (int(step) * world_size + rank) * accumulate + a


def unwrap(model):
    """The plain module inside a DistributedDataParallel wrapper (state dict without ``module.``)."""
    return getattr(model, "module", model)


@contextmanager
def frozen_buffers(module) -> Iterator[None]:
    """Run the body and put every buffer (BN running mean/var, batches tracked) back as it was."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)


class DistContext:
    """Process group membership for one training run; a no-op shell for a single process."""

    def __init__(self, env: DistEnv, device, backend: str | None, created: bool):
        self.env, self.device, self.backend, self.created = env, device, backend, created

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        return self.env.is_main

    @property
    def enabled(self) -> bool:
        return self.env.enabled

    def all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        """Sum ``values`` (floats) over processes; identity for a single process."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]

    def agree(self, error: BaseException | None) -> None:
        """Collective: every process reports whether its setup failed; if any did, all raise.

        The failing process re-raises its own error; the others raise a LabelsplatError naming
        the ranks that failed (their own messages are on those processes' stderr)."""
        if not self.enabled:
            if error is not None:
                raise error
            return
        flags = torch.zeros(self.world_size, dtype=torch.float64, device=self._comm_device())
        flags[self.rank] = 1.0 if error is not None else 0.0
        dist.all_reduce(flags, op=dist.ReduceOp.SUM)
        if error is not None:
            raise error
        failed = [i for i, f in enumerate(flags.tolist()) if f > 0]
        if failed:
            raise LabelsplatError(f"process(es) {failed} of {self.world_size} failed to set up training; "
                                  "see their error above")

    def barrier(self) -> None:
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def wrap(self, model):
        """DistributedDataParallel around ``model`` (already on ``self.device``); unchanged when single.

        DDP's defaults are kept on purpose: parameters and buffers are broadcast from rank 0 at
        construction, and rank 0's buffers before each synchronised forward (``broadcast_buffers``
        / ``forward_sync_buffers`` = True), so the BN running statistics rank 0 saves are the ones
        every process used."""
        if not self.enabled:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids, output_device=ids[0] if ids else None)

    def close(self, *, success: bool) -> None:
        """Barrier (after a successful run, so no process exits while others still write) and
        destroy the process group if this context created it."""
        if not self.created:
            return
        try:
            if success:
                self.barrier()
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
            self.created = False

    def _comm_device(self):
        return self.device if self.backend == "nccl" else torch.device("cpu")


def setup(device: str = "auto", env: DistEnv | None = None) -> DistContext:
    """Resolve the device for this process and join the torchrun process group if there is one.

    Single process: ``resolve_device(device)``, no group. Under torchrun (``WORLD_SIZE > 1``):
    ``auto``/``cuda`` -> ``cuda:LOCAL_RANK`` with ``nccl``, ``cpu`` (or ``auto`` without CUDA)
    -> CPU with ``gloo``. A process group initialised by the caller is reused (and not destroyed).
    """
    env = detect_env() if env is None else env
    if not env.enabled:
        return DistContext(env, resolve_device(device), None, False)
    name = (device or "auto").strip().lower()
    if name.startswith("cuda:"):
        raise LabelsplatError(f"--device {device} under torchrun: each process uses cuda:LOCAL_RANK",
                              hint="pass --device cuda (or auto); choose GPUs with CUDA_VISIBLE_DEVICES")
    dev = resolve_device(name)
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        if env.local_rank >= n:
            raise LabelsplatError(f"LOCAL_RANK {env.local_rank} but only {n} CUDA device(s) visible",
                                  hint="use --nproc_per_node <= the number of GPUs")
        dev = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        backend = "gloo"
    created = False
    if dist.is_initialized():
        if dist.get_world_size() != env.world_size or dist.get_rank() != env.rank:
            raise LabelsplatError(f"an existing process group (rank {dist.get_rank()} of {dist.get_world_size()}) "
                                  f"disagrees with RANK={env.rank} WORLD_SIZE={env.world_size}")
        backend = dist.get_backend()
    else:
        kw = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size, **kw)
        created = True
    return DistContext(env, dev, backend, created)


__all__ = ["DistEnv", "DistContext", "detect_env", "setup", "micro_batch_index", "unwrap", "frozen_buffers"]
