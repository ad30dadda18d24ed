"""Training / fine-tuning BiSeNet with the face-parsing.PyTorch recipe (OHEM CE on three
heads, SGD warm-up + poly), datasets in the docs/design.md layout, mixing, checkpoints, resume."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "loop", "TrainResult": "loop", "train": "loop", "artifact_paths": "loop",
    "OhemCELoss": "loss", "ohem_ce_loss": "loss",
    "WarmupPoly": "optim", "make_optimizer": "optim",
    "TrainData": "data", "AugmentConfig": "data", "augment": "data", "parse_mix": "data",
    "DistEnv": "distributed", "detect_env": "distributed", "micro_batch_index": "distributed",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        # lazy: torch loads only with the names that need it
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
