"""Helpers shared by the benchmark scripts: machine description, device sync, peak memory.

Imported as ``benchmarks.common`` by the benchmark scripts, the research studies and
``tests/benchmarks`` (run from the repository root; not part of the installed package).
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from contextlib import contextmanager


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: str = "cpu") -> dict:
    """Machine, versions and threads; the GPU's name and memory when ``device`` is cuda."""
    import numba
    import numpy as np
    import torch

    try:
        import gsplat

        gs = getattr(gsplat, "__version__", "?")
    except Exception as exc:  # pragma: no cover - gsplat is a core dependency
        gs = f"unavailable ({type(exc).__name__})"
    from labelsplat import __version__

    info = {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "labelsplat": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "gsplat": gs,
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "device": device,
        "gpu": None,
        "git": git_revision(),
    }
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                       "cuda": torch.version.cuda, "capability": f"{p.major}.{p.minor}"}
    return info


def git_revision() -> dict:
    """HEAD of the checkout this file is in, and whether src/ has uncommitted changes (None outside git)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"head": None, "src_dirty": None}
    return {"head": head or None, "src_dirty": bool(dirty) if head else None}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sync(device) -> None:
    """Wait for queued GPU work (no-op on the CPU) so wall times cover it."""
    import torch

    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (MiB; Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """The process's current resident set size (MiB), from /proc/self/statm; peak RSS elsewhere."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


class PhaseTimer:
    """Accumulates wall time per named phase; syncs the device at each boundary when asked.

    ``with timer("render"): ...`` adds the block's wall time to ``timer.totals["render"]`` and
    the process's CPU time (all threads; robust to other processes on a shared machine) to
    ``timer.cpu_totals["render"]``.
    """

    def __init__(self, device="cpu", do_sync: bool = True):
        self.device = device
        self.do_sync = do_sync
        self.totals: dict[str, float] = {}
        self.cpu_totals: dict[str, float] = {}

    def reset(self) -> None:
        self.totals, self.cpu_totals = {}, {}

    @contextmanager
    def __call__(self, name: str):
        if self.do_sync:
            sync(self.device)
        t, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            if self.do_sync:
                sync(self.device)
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t
            self.cpu_totals[name] = self.cpu_totals.get(name, 0.0) + time.process_time() - c
