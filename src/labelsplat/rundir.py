"""One rule set for the directories (and weight files) that labelsplat commands write.

Every command that writes a directory (``fit``, ``refine``, ``render``, ``batch``, ``demo``,
``synth``, ``scene import``, ``capture``, ``labels convert``) goes through :class:`RunDir`:

* a missing or empty directory (the marker alone counts as empty) is created and gets a marker
  file, :data:`MARKER`
  (``schema_version``, ``kind`` such as ``"fit"`` / ``"refine"`` / ``"scene"``, the labelsplat
  version, the creation time and, once the command records it, its provenance);
* an existing non-empty directory is refused unless ``--resume`` (continue it: temporaries
  left by a killed run are removed, and a recorded configuration must equal the new one) or
  ``--overwrite`` (start over);
* ``--overwrite`` removes only a directory that labelsplat wrote: one with the marker, or a
  legacy output recognised by the files labelsplat writes (:data:`LEGACY_SIGNS`); never a
  directory that is, contains or lies inside an input of the same command;
* every refusal names the path and the reason;
* one writer at a time: :meth:`RunDir.lock` holds an exclusive lock file, :data:`LOCK` (pid, host,
  start time), while a command writes; a second writer is refused naming the holder, and a lock
  whose process is gone (same host) is reclaimed with a note.

Commands that build their output in a temporary sibling (:func:`labelsplat.io.atomic_dir`)
call :meth:`RunDir.check` before the build (no side effect) and :meth:`RunDir.write_marker`
or :meth:`RunDir.write_provenance` after it. Weight files (``train`` / ``finetune``) follow
:func:`check_output_file`: written atomically, an existing file is refused unless
``--overwrite`` (or ``--resume``), and an input is never the output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import SCHEMA_VERSION, __version__
from .errors import LabelsplatError
from .io import _pid_alive, atomic_write_json, clean_leftovers, ensure_dir

#: The marker file of a directory labelsplat created.
MARKER = ".labelsplat-run.json"
MARKER_SCHEMA_VERSION = 1
#: The lock file of a directory a command is writing (removed when it ends).
LOCK = ".labelsplat-lock.json"
#: An unreadable lock younger than this (seconds) may be one being written: it counts as held.
LOCK_GRACE_S = 10.0

#: Files that identify a labelsplat output written before the marker existed: each sign is a
#: tuple of relative globs that must all match. JSON files count only when they hold a
#: ``schema_version`` (every JSON labelsplat writes has one).
LEGACY_SIGNS: tuple[tuple[str, ...], ...] = (
    ("run.json",), ("refine.json",), ("batch.json",), ("DONE.json",), ("transforms.json",), ("synth.json",),
    ("checkpoint.pt",), ("ckpt/step_*.pt",), ("train_log.jsonl",),  # fit
    ("metrics.json", "dataset/manifest.json"),  # render
    ("refined/refine.json",),  # demo
    ("scenes/*/DONE.json",), ("scenes/*/run/run.json",),  # refine / batch
)

#: Run-level settings a resumed run may change (where it runs, not what it computes).
RESUME_MAY_CHANGE = ("device", "backend")

# the three modes of :meth:`RunDir.check`
NEW, RESUME, REPLACE = "new", "resume", "replace"


def _json_with_schema(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and "schema_version" in doc


def _overlap(out: Path, inp: Path) -> str | None:
    """How ``out`` overlaps the input ``inp`` ("is" / "contains" / "lies inside"), or None."""
    if out == inp:
        return "is"
    if out in inp.parents:
        return "contains"
    if inp in out.parents:
        return "lies inside"
    return None


def _resolved(p: str | Path) -> Path:
    return Path(p).expanduser().resolve()


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Path, file count, bytes and a sha256 over (relative path, size, mtime) of every file under
    ``path`` (a file or a directory); ``exists: False`` for a missing path."""
    p = _resolved(path)
    if not p.exists():
        return {"path": str(p), "exists": False}
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file() and q.name not in (MARKER, LOCK))
    h = hashlib.sha256()
    total = 0
    for f in files:
        st = f.stat()
        total += st.st_size
        rel = "" if f == p else f.relative_to(p).as_posix()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"path": str(p), "exists": True, "files": len(files), "bytes": total, "sha256": h.hexdigest()}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_diff(old: dict, new: dict, *, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted names of the settings that differ between two (nested) configuration dicts."""
    a, b = _flat(json.loads(json.dumps(old))), _flat(json.loads(json.dumps(new)))
    skip = set(ignore)
    return sorted(k for k in set(a) | set(b) if k.split(".")[0] not in skip and k not in skip and a.get(k) != b.get(k))


@dataclass
class RunDir:
    """A directory one command writes: ``kind`` names the command's output (``"fit"``,
    ``"refine"``, ``"render"``, ``"demo"``, ``"scene"``, ``"labels"``); ``inputs`` are the
    command's input paths (never removed, never overwritten); ``resumable`` says whether the
    command takes ``--resume`` (it changes the refusal's hint)."""

    path: Path
    kind: str
    inputs: Sequence[str | Path] = ()
    resumable: bool = False

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.inputs = tuple(Path(p) for p in self.inputs if p is not None)

    # ------------------------------------------------------------------ what is there
    @property
    def marker_path(self) -> Path:
        return self.path / MARKER

    def marker(self) -> dict | None:
        """The marker's content (None without a readable marker)."""
        p = self.marker_path
        if not p.is_file():
            return None
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return doc if isinstance(doc, dict) and "kind" in doc else None

    def origin(self) -> str | None:
        """``"marker"`` (labelsplat created it), ``"legacy"`` (an older labelsplat output) or None."""
        if self.marker() is not None:
            return "marker"
        for sign in LEGACY_SIGNS:
            if all(any(p.suffix != ".json" or _json_with_schema(p) for p in self.path.glob(g)) for g in sign):
                return "legacy"
        return None

    def existing_kind(self) -> str | None:
        """The marker's kind (None without a marker)."""
        m = self.marker()
        return None if m is None else str(m.get("kind"))

    def _is_empty(self) -> bool:
        """No entry besides the marker (a directory created by a command that then stopped)."""
        return not any(p.name not in (MARKER, LOCK) for p in self.path.iterdir())

    # ------------------------------------------------------------------ the rules
    def _refuse_overlap(self) -> None:
        out = _resolved(self.path)
        for inp in self.inputs:
            how = _overlap(out, _resolved(inp))
            if how is not None:
                raise LabelsplatError(f"refusing to overwrite the output: it {how} an input of this command ({inp})",
                                      path=self.path, hint="choose an output path apart from the inputs")

    def _check_parents(self) -> None:
        for anc in self.path.absolute().parents:
            if anc.exists():
                if not anc.is_dir():
                    raise LabelsplatError("cannot create the output directory: this path is a file, not a directory",
                                          path=anc, hint=f"choose another output path than {self.path}")
                return

    def check(self, *, resume: bool = False, overwrite: bool = False) -> str:
        """Which of :data:`NEW`, :data:`RESUME`, :data:`REPLACE` applies; raises
        :class:`LabelsplatError` for every refusal. Changes nothing on disk."""
        if resume and overwrite:
            raise LabelsplatError("--resume and --overwrite exclude each other",
                                  hint="--resume continues the run, --overwrite starts it again: pass one")
        self.check_lock()
        self._check_parents()
        if self.path.exists() and not self.path.is_dir():
            raise LabelsplatError("the output path is a file, not a directory", path=self.path,
                                  hint="choose another output path")
        if not self.path.exists() or self._is_empty():
            return NEW
        origin = self.origin()
        if resume:
            if origin is None:
                raise LabelsplatError("cannot resume: labelsplat did not write this directory", path=self.path,
                                      hint="choose the output directory of the interrupted run")
            kind = self.existing_kind()
            if kind is not None and kind != self.kind:
                raise LabelsplatError(f"cannot resume: the directory holds a labelsplat {kind} output, "
                                      f"not a {self.kind} output", path=self.path,
                                      hint="choose the output directory of the interrupted run")
            return RESUME
        if not overwrite:
            hint = ("pass --resume to continue it or --overwrite to start over" if self.resumable
                    else "pass --overwrite or choose another --out")
            raise LabelsplatError("the output directory already exists", path=self.path, hint=hint)
        if origin is None:
            raise LabelsplatError("refusing to overwrite a directory that labelsplat did not create", path=self.path,
                                  hint="choose another output path (or remove the directory yourself)")
        self._refuse_overlap()
        return REPLACE

    def prepare(self, *, resume: bool = False, overwrite: bool = False, log=None) -> str:
        """:meth:`check`, then act on it without creating the directory: a replaced directory is
        removed, a resumed one loses the temporaries of killed runs. Returns the mode."""
        mode = self.check(resume=resume, overwrite=overwrite)
        if mode == REPLACE:
            shutil.rmtree(self.path)
        elif mode == RESUME:
            clean_leftovers(self.path, log=log)  # never another live process's temporaries
        return mode

    def create(self, *, resume: bool = False, overwrite: bool = False, log=None) -> str:
        """:meth:`prepare`, then create the directory with its marker. Returns the mode."""
        mode = self.prepare(resume=resume, overwrite=overwrite, log=log)
        ensure_dir(self.path)
        if self.marker() is None:
            self.write_marker()
        return mode

    def discard(self, *, existed: bool) -> None:
        """Remove what a failed command created here: the directory, or (when it ``existed`` before,
        empty) only its entries, so a rerun starts afresh. Call it only for a NEW output."""
        if not self.path.is_dir():
            return
        if not existed:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for p in self.path.iterdir():
            if p.name == LOCK:
                continue  # released by the lock's owner
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ one writer at a time
    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def _holder(self) -> dict | None:
        """The lock's holder ({pid, host, started}), ``{}`` for an unreadable lock, None without a lock."""
        p = self.lock_path
        if not p.is_file():
            return None
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _held(self, doc: dict) -> bool:
        """Whether the lock's holder may still be writing (a live process, or one on another host)."""
        if not doc:
            with contextlib.suppress(OSError):
                return time.time() - self.lock_path.stat().st_mtime < LOCK_GRACE_S
            return False
        if doc.get("host") != socket.gethostname():
            return True  # a process on another machine cannot be checked from here
        pid = doc.get("pid")
        return isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid)

    def check_lock(self) -> None:
        """Refuse when another process holds this directory's lock (changes nothing)."""
        doc = self._holder()
        if doc is not None and self._held(doc):
            who = (f"pid {doc.get('pid')} on host {doc.get('host')}, since {doc.get('started')}" if doc
                   else "its lock file is being written")
            raise LabelsplatError(f"another labelsplat command is writing this output ({who})", path=self.path,
                                  hint=f"wait until it ends; if that process is gone (another machine), remove "
                                       f"{self.lock_path}")

    @contextlib.contextmanager
    def lock(self, *, log=None):
        """Hold the directory's exclusive lock while the block runs (the directory is created). A lock
        left by a process that is gone (same host) is reclaimed with a note."""
        ensure_dir(self.path)
        doc = {"pid": os.getpid(), "host": socket.gethostname(),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.check_lock()
                old = self._holder() or {}
                msg = (f"note: reclaimed the lock of {self.path} left by a process that is gone "
                       f"(pid {old.get('pid', '?')} on {old.get('host', '?')})")
                if log is None:
                    print(msg, file=sys.stderr)
                else:
                    log(msg)
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
            break
        else:
            self.check_lock()
            raise LabelsplatError("cannot take the output's lock", path=self.lock_path)
        try:
            yield self
        finally:
            if (self._holder() or {}).get("pid") == os.getpid():
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()

    # ------------------------------------------------------------------ marker and provenance
    def write_marker(self, **extra: Any) -> Path:
        """Write (or update) the marker; ``created`` and ``provenance`` already there are kept."""
        old = self.marker() or {}
        doc = {"schema_version": MARKER_SCHEMA_VERSION, "kind": self.kind, "labelsplat_version": __version__,
               "created": old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if "provenance" in old:
            doc["provenance"] = old["provenance"]
        doc.update(extra)
        ensure_dir(self.path)
        return atomic_write_json(self.marker_path, doc, add_schema_version=False)

    def write_provenance(self, config: dict, seed: int | None, inputs: Sequence[str | Path] | None = None) -> Path:
        """Record the configuration, the seed and a fingerprint of the inputs in the marker."""
        ins = self.inputs if inputs is None else tuple(Path(p) for p in inputs if p is not None)
        prov = {"config": config, "seed": seed, "inputs": [fingerprint(p) for p in ins],
                "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "output_schema_version": SCHEMA_VERSION}
        return self.write_marker(provenance=prov)

    def check_resume_config(self, config: dict, *, may_change: Iterable[str] = RESUME_MAY_CHANGE) -> None:
        """Refuse to resume with a configuration that differs from the recorded one (settings in
        ``may_change`` excepted). Without a recorded configuration (legacy outputs) nothing is compared."""
        prov = (self.marker() or {}).get("provenance") or {}
        if "config" not in prov:
            return
        diff = config_diff(prov["config"], config, ignore=may_change)
        if diff:
            shown = ", ".join(diff[:8]) + (f" (+{len(diff) - 8} more)" if len(diff) > 8 else "")
            raise LabelsplatError(f"--resume with a configuration that differs from the run's ({shown})",
                                  path=self.marker_path,
                                  hint="resume with the same options, or start again with --overwrite")


def check_output_file(path: str | Path, *, overwrite: bool = False, resume: bool = False,
                      inputs: Sequence[str | Path | None] = ()) -> Path:
    """The rules for a single output file (``train`` / ``finetune`` weights): not a directory,
    never one of the command's inputs, and an existing file only with ``overwrite`` or ``resume``.
    The file itself is written atomically by its writer."""
    path = Path(path)
    if path.is_dir():
        raise LabelsplatError("the output is a directory, not a file", path=path, hint="pass a file name, e.g. model.pth")
    out = _resolved(path)
    for inp in inputs:
        if inp is not None and out == _resolved(inp):
            raise LabelsplatError(f"the output file is an input of this command ({inp})", path=path,
                                  hint="write the output to another file")
    if path.exists() and not (overwrite or resume):
        raise LabelsplatError("the output already exists", path=path,
                              hint="pass --resume to continue it, --overwrite to start again, or another --out")
    return path


__all__ = ["LOCK", "MARKER", "LEGACY_SIGNS", "NEW", "RESUME", "REPLACE", "RunDir", "check_output_file", "config_diff",
           "fingerprint"]
