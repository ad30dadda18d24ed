"""``labelsplat batch``: one Ray task per scene running the whole per-scene refine.

The driver (the process running ``labelsplat batch``) does what ``refine`` does around the
per-scene work, and Ray runs the per-scene work itself:

1. the output's rules as ``refine`` (:class:`labelsplat.rundir.RunDir`: refuse / resume /
   overwrite OUT), ``OUT/refine.json`` as ``refine``;
2. scenes with a valid ``OUT/scenes/<scene>/DONE.json`` are skipped under ``--resume`` (never
   submitted);
3. every other scene becomes one Ray task calling :func:`labelsplat.pipeline.refine_scene`
   with ``cpus_per_scene`` CPUs (torch and the CPU rasteriser get that many threads) and
   ``gpus_per_scene`` GPUs (fractions share a card);
4. a failed task is resubmitted (continuing from its last fit checkpoint) up to
   ``max_retries`` times, except for input errors (:class:`LabelsplatError`: the same input
   fails the same way), then recorded as failed; the other scenes go on;
5. when every task has ended, :func:`labelsplat.pipeline.finish_outputs` merges the finished
   scenes' views into ``OUT/dataset``, pools ``OUT/metrics.json`` and writes
   ``OUT/report.html``: the output tree is exactly ``refine``'s. ``OUT/batch.json`` records
   every scene's status (done / skipped / failed), attempts, node, wall time and errors.

Ray is an optional dependency (extra ``[ray]``); it is imported only inside the functions that
need it. Without an address a private local Ray instance is started and shut down again; a Ray
instance already initialised in this process (tests, notebooks) is reused and left running.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .errors import LabelsplatError
from .io import atomic_write_json
from .scene import load_scene

BATCH_JSON = "batch.json"
#: Exit code of ``labelsplat batch`` when some scene failed (the others completed).
EXIT_SOME_FAILED = 3


@dataclass
class BatchConfig:
    """Cluster-side settings of ``labelsplat batch`` (the per-scene work is a RefineConfig).

    ``address``: None starts a private local Ray instance; ``"auto"`` joins the cluster this
    machine belongs to (``ray start``); ``"ray://HOST:10001"`` uses Ray Client.
    ``gpus_per_scene``: ``"auto"`` (one GPU per task when the cluster has GPUs, else none) or a
    number >= 0 (fractions put several scenes on one card).
    ``cpus_per_scene``: CPUs reserved per task; also the task's torch / rasteriser threads.
    ``max_retries``: resubmissions of a failed scene (input errors are not retried).
    ``num_cpus``: CPUs of the local instance (None: all cores); ignored with ``address``.
    """

    address: str | None = None
    gpus_per_scene: str | float = "auto"
    cpus_per_scene: int = 1
    max_retries: int = 2
    num_cpus: int | None = None
    poll_s: float = 0.5

    def __post_init__(self) -> None:
        self.gpus_per_scene = parse_gpus(self.gpus_per_scene)
        if isinstance(self.cpus_per_scene, bool) or int(self.cpus_per_scene) != self.cpus_per_scene \
                or self.cpus_per_scene < 1:
            raise LabelsplatError(f"--cpus-per-scene must be a positive integer, got {self.cpus_per_scene!r}")
        self.cpus_per_scene = int(self.cpus_per_scene)
        if int(self.max_retries) != self.max_retries or self.max_retries < 0:
            raise LabelsplatError(f"--max-retries must be an integer >= 0, got {self.max_retries!r}")
        self.max_retries = int(self.max_retries)
        if self.num_cpus is not None and self.num_cpus < 1:
            raise LabelsplatError(f"--num-cpus must be positive, got {self.num_cpus}")
        if self.address is not None and not str(self.address).strip():
            self.address = None


# ----------------------------------------------------------------------------- pure policy
def parse_gpus(spec: str | float | int) -> str | float:
    """``"auto"`` or a float >= 0 from the ``--gpus-per-scene`` text (clear error otherwise)."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "auto":
            return "auto"
        try:
            value = float(text)
        except ValueError:
            raise LabelsplatError(f"--gpus-per-scene must be 'auto' or a number, got {spec!r}",
                                  hint="e.g. --gpus-per-scene 0.25 runs four scenes per GPU") from None
    else:
        value = float(spec)
    if not math.isfinite(value) or value < 0:
        raise LabelsplatError(f"--gpus-per-scene must be 'auto' or a number >= 0, got {spec!r}")
    if value > 1 and value != int(value):
        raise LabelsplatError(f"--gpus-per-scene above 1 must be a whole number (Ray's rule), got {value}")
    return value


def gpus_per_task(spec: str | float, cluster_resources: Mapping[str, float], *, device: str = "auto") -> float:
    """GPUs to request per scene task, given the cluster's total resources.

    ``auto``: 1 when the cluster reports at least one GPU, the cluster's fraction when it reports
    less than one (a Ray node started with ``--num-gpus 0.5``), else 0, so a task never waits
    for a GPU that does not exist. A number is taken as given but refused when the cluster has
    fewer GPUs than one task needs (it would wait forever). ``device`` is the refine
    ``--device``: ``cuda`` with no GPU to request is refused too.
    """
    spec = parse_gpus(spec)
    total = float(cluster_resources.get("GPU", 0.0) or 0.0)
    if spec == "auto":
        gpus = 1.0 if total >= 1.0 else total
    else:
        gpus = float(spec)
        if gpus > total + 1e-9:
            raise LabelsplatError(
                f"--gpus-per-scene {gpus:g} but the Ray cluster reports {total:g} GPUs: the tasks would wait forever",
                hint="use --gpus-per-scene auto (or 0), or add GPU nodes to the cluster",
            )
    if device == "cuda" and gpus <= 0:
        raise LabelsplatError("--device cuda but the Ray cluster reports no GPU",
                              hint="use --device auto or cpu, or run on a cluster with GPUs")
    if device == "cpu":
        gpus = 0.0
    return gpus


def check_out(out: str | Path, address: str | None) -> Path:
    """OUT as a Path; with a cluster address it must be absolute (every node writes under it)."""
    out = Path(out).expanduser()
    if address is not None and not out.is_absolute():
        raise LabelsplatError(
            "with --address the output directory must be an absolute path on storage every node sees",
            path=out, hint=f"e.g. --out {Path('/shared') / out} (an NFS / shared file system mounted at the same "
                           "path on every node)",
        )
    return out


def should_retry(error: Mapping[str, Any], attempts: int, max_retries: int) -> bool:
    """Resubmit a failed scene? Not after ``max_retries`` resubmissions (``attempts`` made so
    far, first run included), and never for an input error (deterministic: it fails again)."""
    if error.get("input_error"):
        return False
    return attempts <= max_retries


# ----------------------------------------------------------------------------- the task
def error_record(exc: BaseException, attempt: int) -> dict:
    """A JSON-able description of an exception (type, message, traceback tail)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "attempt": attempt,
        "type": type(exc).__name__,
        "message": str(exc),
        "input_error": isinstance(exc, LabelsplatError),
        "traceback": tb[-4000:],
    }


def refine_scene_task(scene_dir: str, out: str, cfg_dict: dict, resume: bool, threads: int, allow_outside: bool,
                      attempt: int) -> dict:
    """Body of one Ray task: refine one scene into ``out/scenes/<scene>`` with ``threads`` threads.

    Never raises for the scene's own errors: returns ``{"ok": False, "error": ...}`` so that the
    driver sees every failure the same way (Ray-level failures such as a dead worker arrive
    as exceptions from ``ray.get`` instead). On success returns the SceneOutcome.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    lines: list[str] = []
    host = socket.gethostname()
    try:
        os.environ["LABELSPLAT_NUM_THREADS"] = str(threads)  # the CPU rasteriser's thread pool
        import torch

        torch.set_num_threads(threads)
        from .config import RefineConfig  # after the thread settings above (the rasteriser reads them)
        from .pipeline import refine_scene

        cfg = RefineConfig.from_dict(cfg_dict)
        # a retry (attempt > 1) continues the failed attempt's fit from its last checkpoint
        outcome = refine_scene(scene_dir, out, cfg, resume=resume or attempt > 1, progress=False, log=lines.append,
                               allow_outside=allow_outside)
        return {"ok": True, "outcome": outcome, "elapsed_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0, "node": host, "log": lines[-20:]}
    except Exception as exc:  # noqa: BLE001 - every scene error becomes a failure record
        return {"ok": False, "error": error_record(exc, attempt), "elapsed_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0, "node": host, "log": lines[-20:]}


# ----------------------------------------------------------------------------- ray session
def _import_ray():
    try:
        import ray  # lazy: the optional [ray] extra
    except ImportError:  # pragma: no cover - the [ray] extra is installed in CI
        raise LabelsplatError("labelsplat batch needs Ray", hint="pip install 'labelsplat[ray]'") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to Ray for the duration of the block; yields the ``ray`` module.

    A Ray already initialised in this process is reused (and left running). Otherwise
    ``address`` None starts a private local instance (``num_cpus`` CPUs, no dashboard, worker
    output not forwarded) that is shut down at the end; an address connects to that cluster.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                                  configure_logging=True)
    try:
        if address is None:
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
        else:
            kwargs.pop("include_dashboard")
            ray.init(address=address, **kwargs)
    except LabelsplatError:
        raise
    except Exception as exc:  # ConnectionError, RuntimeError, ...: report without a traceback
        raise LabelsplatError(
            f"could not {'start a local Ray instance' if address is None else 'connect to Ray at ' + repr(address)}: "
            f"{type(exc).__name__}: {exc}",
            hint="with --address auto run `ray start --head` (or `ray start --address HEAD:6379`) on this "
                 "machine first",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


# ----------------------------------------------------------------------------- the driver loop
@dataclass
class TaskSpec:
    """One unit of work for :func:`drive_tasks`: a key and the remote function's arguments
    (``attempt`` is appended as the last argument on every submission)."""

    key: str
    args: tuple


@dataclass
class TaskResult:
    key: str
    ok: bool
    attempts: int
    value: Any = None  # the remote function's result of the successful attempt
    errors: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0  # wall time of all attempts (as the tasks measured it)
    cpu_s: float = 0.0  # CPU time of the worker process over all attempts (all its threads)
    node: str | None = None


def drive_tasks(
    ray,
    remote_fn,
    specs: Sequence[TaskSpec],
    *,
    max_retries: int,
    poll_s: float = 0.5,
    on_event: Callable[[str, "TaskResult | None", "dict | None"], None] | None = None,
) -> dict[str, TaskResult]:
    """Submit every spec, wait with ``ray.wait`` and resubmit failures per :func:`should_retry`.

    ``remote_fn`` (a Ray remote function, with options applied) returns a dict with ``ok``
    and either ``error`` (an :func:`error_record`) or anything else on success; a Ray-level
    exception from ``ray.get`` (dead worker / node, cancelled task) counts as a failure that is
    retried. ``on_event(kind, result, error)`` is called with kind ``"retry"`` (result None),
    ``"done"`` or ``"failed"``. Returns results by key.
    """
    attempts: dict[str, int] = {}
    results: dict[str, TaskResult] = {s.key: TaskResult(s.key, False, 0) for s in specs}
    pending: dict[Any, TaskSpec] = {}

    def submit(spec: TaskSpec) -> None:
        attempts[spec.key] = attempts.get(spec.key, 0) + 1
        results[spec.key].attempts = attempts[spec.key]
        pending[remote_fn.remote(*spec.args, attempts[spec.key])] = spec

    for spec in specs:
        submit(spec)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
        for ref in ready:
            spec = pending.pop(ref)
            res = results[spec.key]
            try:
                value = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - Ray-level failure (worker died, ...)
                value = {"ok": False, "error": error_record(exc, attempts[spec.key]) | {"input_error": False}}
            res.elapsed_s += float(value.get("elapsed_s", 0.0) or 0.0)
            res.cpu_s += float(value.get("cpu_s", 0.0) or 0.0)
            res.node = value.get("node", res.node)
            if value.get("ok"):
                res.ok, res.value = True, value
                if on_event:
                    on_event("done", res, None)
                continue
            err = dict(value.get("error") or {"type": "unknown", "message": "the task returned no error record"})
            err.setdefault("attempt", attempts[spec.key])
            if value.get("log"):
                err["log_tail"] = list(value["log"])
            res.errors.append(err)
            if should_retry(err, attempts[spec.key], max_retries):
                if on_event:
                    on_event("retry", None, err | {"key": spec.key})
                submit(spec)
            elif on_event:
                on_event("failed", res, err)
    return results


# ----------------------------------------------------------------------------- run_batch
@dataclass
class BatchResult:
    """What :func:`run_batch` did: pooled metrics (None when no scene finished), the finished
    scenes' outcomes in input order (skipped ones included), failures by scene name, and the
    path of ``batch.json``."""

    pooled: dict | None
    outcomes: list
    failures: dict[str, dict]
    skipped: list[str]
    record: dict
    record_path: Path


def _scene_names(scenes: Sequence[str | Path], allow_outside: bool = False) -> tuple[dict[str, Path], dict[str, dict]]:
    """Scene name per directory (as ``load_scene`` names it); scenes that cannot even be read
    become failures straight away (never submitted: a broken transforms.json fails anywhere)."""
    names: dict[str, Path] = {}
    unreadable: dict[str, dict] = {}
    for s in scenes:
        path = Path(s)
        try:
            name = load_scene(path, allow_outside=allow_outside).name
        except LabelsplatError as exc:
            name = path.resolve().name
            unreadable[name] = {"scene": str(path.resolve()), "errors": [error_record(exc, 0)]}
        if name in names or (name in unreadable and path.resolve() != Path(unreadable[name]["scene"])):
            raise LabelsplatError(f"scene names must be unique within one run, repeated: {name!r}",
                                  path=path, hint="rename one of the scene directories")
        if name not in unreadable:
            names[name] = path
    return names, unreadable


def run_batch(
    scenes: Sequence[str | Path],
    out: str | Path,
    cfg,
    bcfg: BatchConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    title: str = "labelsplat batch",
    console=None,
    allow_outside: bool = False,
) -> BatchResult:
    """Refine ``scenes`` with one Ray task each into ``out`` (module docstring); ``cfg`` is a
    :class:`labelsplat.config.RefineConfig`. Input errors about the whole run (OUT exists,
    relative OUT with an address, duplicate names, impossible GPU request) raise
    :class:`LabelsplatError` before any task is submitted; per-scene failures do not raise:
    they are in ``result.failures`` and ``OUT/batch.json``. ``allow_outside``: accept scene file
    paths that leave the scene directory (see ``load_scene``).
    """
    # torch-heavy modules: imported when a batch runs, not with this module's policy helpers
    from .config import RefineConfig
    from .pipeline import DONE, _valid_done, check_refine_output, finish_outputs, start_refine_output

    if not isinstance(cfg, RefineConfig):
        raise LabelsplatError("run_batch needs a RefineConfig")
    bcfg = bcfg or BatchConfig()
    if not scenes:
        raise LabelsplatError("no scenes given")
    out = check_out(out, bcfg.address)
    names, unreadable = _scene_names(scenes, allow_outside)
    t_all = time.perf_counter()
    rd = check_refine_output(out, cfg, list(scenes), resume=resume, overwrite=overwrite,  # before starting Ray
                             allow_outside=allow_outside)

    with rd.writing(resume=resume, overwrite=overwrite, log=log):  # one writer per output, Ray tasks included
        with ray_session(bcfg.address, bcfg.num_cpus) as ray:
            cluster = dict(ray.cluster_resources())
            gpus = gpus_per_task(bcfg.gpus_per_scene, cluster, device=cfg.device)
            if cluster.get("CPU", 0) < bcfg.cpus_per_scene:
                raise LabelsplatError(
                    f"--cpus-per-scene {bcfg.cpus_per_scene} but the Ray cluster has {cluster.get('CPU', 0):g} CPUs",
                    hint="lower --cpus-per-scene",
                )
            start_refine_output(rd, cfg, list(scenes))
            skipped = [n for n, p in names.items() if resume and _valid_done(out / "scenes" / n / DONE)]
            todo = [n for n in names if n not in skipped]
            for n in skipped:
                log(f"{n}: already done, skipped")
            remote = ray.remote(refine_scene_task).options(
                num_cpus=bcfg.cpus_per_scene, num_gpus=gpus, max_retries=0, retry_exceptions=False,
                name="labelsplat-refine-scene")
            specs = [TaskSpec(n, (str(Path(names[n]).resolve()), str(out.resolve()), cfg.to_dict(), resume,
                                  bcfg.cpus_per_scene, allow_outside)) for n in todo]
            log(f"{len(todo)} scene(s) to refine on Ray ({cluster.get('CPU', 0):g} CPUs, "
                f"{cluster.get('GPU', 0):g} GPUs; "
                f"{bcfg.cpus_per_scene} CPU + {gpus:g} GPU per scene), {len(skipped)} already done, "
                f"{len(unreadable)} unreadable")
            results = _drive_with_progress(ray, remote, specs, bcfg, progress=progress, log=log, console=console)

        outcomes, failures, scenes_doc = _collect(scenes, names, unreadable, skipped, results, out, cfg, allow_outside)
        pooled = finish_outputs(out, outcomes, cfg, title=title) if outcomes else None
        record = {
            "status": "complete" if not failures else "some scenes failed",
            "n_scenes": len(scenes), "n_done": sum(1 for d in scenes_doc.values() if d["status"] == "done"),
            "n_skipped": len(skipped), "n_failed": len(failures),
            "scenes": scenes_doc,
            "batch": {**asdict(bcfg), "gpus_per_task": gpus, "cluster_resources": {k: v for k, v in cluster.items()
                                                                                 if k in ("CPU", "GPU", "memory")}},
            "refine": cfg.to_dict(), "wall_s": round(time.perf_counter() - t_all, 3), "version": __version__,
        }
        record_path = out / BATCH_JSON
        atomic_write_json(record_path, record)
    return BatchResult(pooled, outcomes, failures, skipped, record, record_path)


def _drive_with_progress(ray, remote, specs: list[TaskSpec], bcfg: BatchConfig, *, progress: bool,
                         log: Callable[[str], None], console=None) -> dict[str, TaskResult]:
    """:func:`drive_tasks` with one log line per event and, with ``progress``, a bar of finished scenes."""
    bar = None
    if progress and specs:
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console, transient=False)
        bar.start()
        bar_task = bar.add_task("scenes", total=len(specs))

    def on_event(kind: str, res: TaskResult | None, err: dict | None) -> None:
        if kind == "retry":
            log(f"{err['key']}: attempt {err.get('attempt')} failed ({err.get('type')}: "
                f"{_first_line(err.get('message'))}), retrying")
            return
        assert res is not None
        if kind == "done":
            log(f"{res.key}: done in {res.elapsed_s:.1f} s on {res.node} (attempt {res.attempts})")
        else:
            log(f"{res.key}: FAILED after {res.attempts} attempt(s): {_first_line(err.get('message'))}")
        if bar is not None:
            bar.advance(bar_task)

    try:
        return drive_tasks(ray, remote, specs, max_retries=bcfg.max_retries, poll_s=bcfg.poll_s, on_event=on_event)
    finally:
        if bar is not None:
            bar.stop()


def _collect(scenes, names: dict[str, Path], unreadable: dict[str, dict], skipped: list[str],
             results: dict[str, TaskResult], out: Path, cfg, allow_outside: bool) -> tuple[list, dict, dict]:
    """(outcomes in input order, failures by name, batch.json's per-scene entries)."""
    from .pipeline import refine_scene  # torch-heavy: see run_batch

    outcomes, failures, scenes_doc = [], {}, {}
    for s in scenes:
        path = Path(s).resolve()
        name = next((n for n, p in names.items() if Path(p).resolve() == path), None)
        if name is None:  # unreadable
            name = next(n for n, u in unreadable.items() if u["scene"] == str(path))
            failures[name] = {"scene": str(path), "attempts": 0, "errors": unreadable[name]["errors"]}
            scenes_doc[name] = {"status": "failed", **failures[name]}
            continue
        if name in skipped:
            outcomes.append(refine_scene(path, out, cfg, resume=True, progress=False, log=lambda _m: None,
                                         allow_outside=allow_outside))
            scenes_doc[name] = {"status": "skipped", "scene": str(path)}
            continue
        res = results[name]
        entry = {"scene": str(path), "attempts": res.attempts, "node": res.node, "elapsed_s": round(res.elapsed_s, 3),
                 "cpu_s": round(res.cpu_s, 3)}
        if res.ok:
            outcomes.append(res.value["outcome"])
            scenes_doc[name] = {"status": "done", **entry, "errors": res.errors}
        else:
            failures[name] = {**entry, "errors": res.errors}
            scenes_doc[name] = {"status": "failed", **entry, "errors": res.errors}
    return outcomes, failures, scenes_doc


def _first_line(text: Any) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
