"""Device selection shared by every computing command (``--device auto|cpu|cuda``)."""

from __future__ import annotations

from .errors import LabelsplatError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    import torch  # lazy: torch takes ~1 s to import; the CLI loads this module for every command

    return torch.cuda.is_available()


def resolve_device(device: str = "auto"):
    """Return a ``torch.device`` for ``auto`` / ``cpu`` / ``cuda`` (``cuda:N`` accepted)."""
    import torch  # lazy: as above

    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not cuda_available():
            raise LabelsplatError(
                "--device cuda was requested but no CUDA GPU is available",
                hint="use --device cpu (or auto)",
            )
        return torch.device(name)
    raise LabelsplatError(f"unknown device {device!r}", hint="choose one of auto, cpu, cuda")
