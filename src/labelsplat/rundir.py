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
* one writer at a time: every write holds an exclusive lock file, :data:`LOCK` (pid, host,
  start time), in the output directory (:func:`labelsplat.io.dir_lock`); a second writer is refused
  naming the holder, and a lock whose process is gone (same host) is reclaimed with a note.

Commands that write their output in place (``fit``, ``refine``, ``batch``, ``render``, ``demo``)
run inside :meth:`RunDir.writing` (check, lock, replace or resume, marker). Commands that build
their output in a temporary sibling (:func:`labelsplat.io.atomic_dir`, which holds the final
path's lock for the whole build) call :meth:`RunDir.check` before the build (no side effect) and
:meth:`RunDir.write_marker` or :meth:`RunDir.write_provenance` after it. Weight files (``train`` / ``finetune``) follow
:func:`check_output_file`: written atomically, an existing file is refused unless
``--overwrite`` (or ``--resume``), and an input is never the output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from . import SCHEMA_VERSION, __version__
from .errors import LabelsplatError
from .io import LOCK, atomic_write_json, check_dir_lock, clean_leftovers, dir_lock, ensure_dir, read_json_or_none

#: The marker file of a directory labelsplat created.
MARKER = ".labelsplat-run.json"
MARKER_SCHEMA_VERSION = 1

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
    doc = read_json_or_none(path)
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
        doc = read_json_or_none(self.marker_path) if self.marker_path.is_file() else None
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
        self._clear(ignore_errors=True)  # the lock is released by its owner

    # ------------------------------------------------------------------ one writer at a time
    def check_lock(self) -> None:
        """Refuse when another process holds this directory's lock (changes nothing)."""
        check_dir_lock(self.path)

    def lock(self, *, log=None):
        """Hold the directory's exclusive lock while the block runs (:func:`labelsplat.io.dir_lock`:
        the directory is created; a lock left by a process that is gone is reclaimed with a note)."""
        return dir_lock(self.path, log=log)

    @contextlib.contextmanager
    def writing(self, *, resume: bool = False, overwrite: bool = False, log=None,
                resumable: Callable[[], bool] | None = None) -> Iterator[str]:
        """Write this directory in place: :meth:`check`, take the lock, then act on the mode (a
        replaced directory is emptied, a resumed one loses the temporaries of killed runs) and write
        the marker of a new one. Yields the mode. When the block fails on a NEW output and nothing but the marker
        was written, what this created is removed again. With ``resumable`` (does the output hold
        anything ``--resume`` continues?), a block that raises an error on a new or replaced output
        that holds nothing resumable loses what it wrote (:meth:`discard`), so a rerun starts afresh;
        an interrupt (Ctrl-C, a kill) leaves it for ``--resume``."""
        mode = self.check(resume=resume, overwrite=overwrite)
        existed = self.path.exists()
        with self.lock(log=log):
            mode = self.check(resume=resume, overwrite=overwrite)  # again, now that no one else writes
            if mode == REPLACE:
                self._clear()
            elif mode == RESUME:
                clean_leftovers(self.path, log=log)  # never another live process's temporaries
            if mode != RESUME and self.marker() is None:
                self.write_marker()  # a resumed output gets its marker with the command's provenance
            try:
                yield mode
            except BaseException as exc:
                if isinstance(exc, Exception) and mode != RESUME and resumable is not None and not resumable():
                    self.discard(existed=existed and mode == NEW)
                if mode != RESUME and self.path.is_dir() and self._is_empty():
                    self.marker_path.unlink(missing_ok=True)
                    if not existed:
                        shutil.rmtree(self.path, ignore_errors=True)  # the lock's unlink then finds nothing
                raise

    def _clear(self, *, ignore_errors: bool = False) -> None:
        """Remove every entry but the lock (the directory itself stays, locked)."""
        for p in self.path.iterdir():
            if p.name == LOCK:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=ignore_errors)
            else:
                p.unlink(missing_ok=ignore_errors)

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

    def check_resume_config(self, config: dict, *, may_change: Iterable[str] = RESUME_MAY_CHANGE,
                            upgrade: Callable[[dict], dict] | None = None) -> None:
        """Refuse to resume with a configuration that differs from the recorded one (settings in
        ``may_change`` excepted). Without a recorded configuration (legacy outputs) nothing is compared.
        ``upgrade`` reads the recorded configuration as the current version does (settings added
        since then take their defaults); a record it cannot read is compared as it is."""
        prov = (self.marker() or {}).get("provenance") or {}
        if "config" not in prov:
            return
        old = prov["config"]
        if upgrade is not None:
            try:
                old = upgrade(old)
            except LabelsplatError:
                pass
        diff = config_diff(old, config, ignore=may_change)
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
