"""Fit checkpoints: the file format, the run state they hold, and the resume rules.

A checkpoint is one ``torch.save`` file of plain tensors and JSON-able values (loadable with
``weights_only=True``)::

    format, version, step, model, optimizers, strategy_state,
    rng {torch, generator, perm, perm_pos, cuda}, meta {run metadata, elapsed_s, schema_version},
    [the semantic loss's entries, e.g. label_noise]

``RUN/ckpt/step_XXXXXX.pt`` are the rolling periodic ones, ``RUN/checkpoint.pt`` the final one.
:class:`RunState` is everything a resumed fit needs besides its views; with it a resumed CPU fit
is bitwise identical to an uninterrupted one.
"""

from __future__ import annotations

import io as _io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import SCHEMA_VERSION
from ..errors import LabelsplatError
from ..io import atomic_write_bytes, check_regular_file
from ..scene.fingerprint import fingerprint_diff
from .config import FitConfig
from .data import CameraOrder
from .heads import SemanticHead
from .model import GaussianModel

CKPT_FORMAT = "labelsplat-splat-checkpoint"
CKPT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint dict (atomic)."""
    buf = _io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path, device="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; LabelsplatError naming the file if unreadable."""
    path = Path(path)
    if not path.exists():
        raise LabelsplatError("checkpoint not found", path=path)
    check_regular_file(path, "checkpoint")
    fix = ("use a checkpoint written by `labelsplat fit` (or resume from an earlier RUN/ckpt/step_*.pt), "
           "or start the run again with --overwrite")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a Python object: never fall back
        raise LabelsplatError("cannot read the checkpoint: it holds Python objects besides tensors, which are "
                              "refused (loading them could run code)", path=path, hint=fix) from exc
    except Exception as exc:  # corrupt / foreign files raise many types
        first = (str(exc).splitlines() or [""])[0].split(". ")[0][:160]
        raise LabelsplatError(f"cannot read the checkpoint ({type(exc).__name__}: {first}): truncated or not a "
                              "PyTorch file", path=path, hint=fix) from exc
    if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
        raise LabelsplatError("not a labelsplat fit checkpoint", path=path, hint=fix)
    if ck.get("version") != CKPT_VERSION:
        raise LabelsplatError(f"checkpoint version {ck.get('version')} is not supported (expected {CKPT_VERSION})",
                              path=path, hint="it was written by another labelsplat version: resume it with that "
                              "version, or start the run again with --overwrite")
    missing = [k for k, t in (("model", dict), ("meta", dict)) if not isinstance(ck.get(k), dict)]
    if not missing and not isinstance(ck["meta"].get("config"), dict):
        missing = ["meta.config"]
    if missing:
        raise LabelsplatError(f"the checkpoint lacks {', '.join(repr(m) for m in missing)}: damaged or not written "
                              "by labelsplat", path=path, hint=fix)
    return ck


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``RUN/ckpt/`` or ``RUN/checkpoint.pt``."""
    run_dir = Path(run_dir)
    cands = sorted((run_dir / "ckpt").glob("step_*.pt"))
    best, best_step = None, -1
    final = run_dir / "checkpoint.pt"
    for p in cands + ([final] if final.is_file() else []):
        try:
            step = int(p.stem.split("_")[1]) if p.stem.startswith("step_") else int(1e12)
        except (IndexError, ValueError):
            continue
        if step > best_step:
            best, best_step = p, step
    return best


def periodic_checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "ckpt" / f"step_{step:06d}.pt"


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the last ``keep`` periodic checkpoints."""
    olds = sorted((Path(run_dir) / "ckpt").glob("step_*.pt"))
    for old in olds[: max(0, len(olds) - keep)]:
        old.unlink(missing_ok=True)


def resume_rules(out_dir: Path, cfg: FitConfig | None, resume: bool) -> tuple[FitConfig, dict | None]:
    """(the fit's configuration, the checkpoint to resume or None) for a fit into ``out_dir``.

    On ``resume`` the latest checkpoint is loaded and its configuration used; an explicit ``cfg``
    must equal it. Without ``resume`` the directory must not hold a fit yet and ``cfg`` is required
    (the presets are whole trees in :mod:`labelsplat.config`, e.g. ``fit_preset("tiny")``).
    """
    if resume:
        ck_path = latest_checkpoint(out_dir)
        if ck_path is None:
            raise LabelsplatError("nothing to resume: no checkpoint in the run directory", path=out_dir,
                                  hint="run without --resume to start a new fit")
        ckpt = load_checkpoint(ck_path, device="cpu")
        stored = FitConfig.from_dict(ckpt["meta"]["config"])
        if cfg is not None and cfg.to_dict() != stored.to_dict():
            diff = sorted(k for k, v in cfg.to_dict().items() if stored.to_dict().get(k) != v)
            raise LabelsplatError(
                f"--resume with a configuration that differs from the run's ({', '.join(diff)})", path=ck_path,
                hint="resume with the same options, or start a new run with --overwrite",
            )
        return stored, ckpt
    if (out_dir / "run.json").exists() or latest_checkpoint(out_dir) is not None:
        raise LabelsplatError("the run directory already holds a fit", path=out_dir,
                              hint="pass --resume to continue it or --overwrite to start again")
    if cfg is None:
        raise LabelsplatError("a new fit needs its configuration",
                              hint="pass a FitConfig, e.g. labelsplat.config.fit_preset('tiny')")
    return cfg, None


def check_resumable(ckpt: dict[str, Any], path: Path, *, frame_names: list[str], num_classes: int,
                    semantic_target: str, fingerprint: dict[str, Any] | None = None) -> None:
    """Refuse to resume ``ckpt`` on another scene (other frames, or a scene fingerprint that differs:
    cameras, label scheme, input files), another number of classes or another semantic head."""
    if list(ckpt["meta"].get("frame_names", [])) != frame_names:
        raise LabelsplatError("the checkpoint was fitted to other frames than this scene's", path=path,
                              hint="resume with the scene the run was started on")
    stored_k = int(ckpt["model"]["num_classes"])
    if stored_k != num_classes:
        raise LabelsplatError(f"checkpoint has {stored_k} classes, the scene's scheme {num_classes}", path=path)
    stored = str(ckpt["model"].get("semantic_target", "logits"))
    if num_classes > 0 and stored != semantic_target:
        raise LabelsplatError(f"checkpoint's semantic head is {stored!r}, the configuration says "
                              f"{semantic_target!r}", path=path)
    diff = [] if fingerprint is None else fingerprint_diff(ckpt["meta"].get("scene_fingerprint"), fingerprint)
    if diff:
        raise LabelsplatError(f"cannot resume: the scene differs from the one the run was fitted to: {'; '.join(diff)}",
                              path=path, hint="resume with the scene the run was started on, or start again with "
                                              "--overwrite")


@dataclass
class RunState:
    """What a fit's checkpoint holds: the model, the optimisers' and the densification strategy's
    state, every random state (torch's global generator, the camera order, CUDA's), the step, the
    elapsed fit time, the semantic loss's own state (through the head) and the run's metadata."""

    model: GaussianModel
    optimizers: dict[str, torch.optim.Optimizer]
    strategy_state: dict[str, Any]
    order: CameraOrder
    head: SemanticHead
    meta: dict[str, Any]
    device: torch.device
    step: int = 0
    elapsed_s: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint dict (see the module docstring)."""
        cuda = self.device.type == "cuda"
        return {
            "format": CKPT_FORMAT, "version": CKPT_VERSION, "step": self.step,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "strategy_state": {k: (v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v)
                               for k, v in self.strategy_state.items()},
            "rng": {"torch": torch.get_rng_state(), "generator": self.order.generator.get_state(),
                    "perm": self.order.perm.clone(), "perm_pos": self.order.pos,
                    "cuda": torch.cuda.get_rng_state(self.device) if cuda else None},
            "meta": {**self.meta, "elapsed_s": self.elapsed_s, "schema_version": SCHEMA_VERSION},
            **self.head.semantic_loss.state_dict(),
        }

    def load_state_dict(self, ckpt: dict[str, Any], path: Path | None = None) -> None:
        """Restore everything but the model (built from ``ckpt["model"]`` before the optimisers)
        and the metadata; sets the global torch (and CUDA) random state."""
        for k, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][k])
        for k, v in ckpt["strategy_state"].items():
            self.strategy_state[k] = v.to(self.device) if isinstance(v, torch.Tensor) else v
        torch.set_rng_state(ckpt["rng"]["torch"])
        if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        self.order.generator.set_state(ckpt["rng"]["generator"])
        self.order.perm = ckpt["rng"]["perm"].clone()
        self.order.pos = int(ckpt["rng"]["perm_pos"])
        self.step = int(ckpt["step"])
        self.elapsed_s = float(ckpt["meta"].get("elapsed_s", 0.0))
        self.head.semantic_loss.load_state_dict(ckpt, path)

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.state_dict())


__all__ = ["CKPT_FORMAT", "CKPT_VERSION", "RunState", "check_resumable", "latest_checkpoint", "load_checkpoint",
           "periodic_checkpoint_path", "prune_checkpoints", "resume_rules", "save_checkpoint"]
