"""Small constant tensors cached per device, shared by the rasteriser front end and its gsplat backend."""

from __future__ import annotations

import torch
from torch import Tensor

_DEVICE_CONSTANTS: dict[tuple, Tensor] = {}


def device_constant(values: tuple, dtype: torch.dtype, device) -> Tensor:
    """A small constant tensor of ``values`` on ``device``, built once per (values, dtype, device)
    (a bounded cache): loops that pass the same weights or indices every step copy nothing."""
    key = (tuple(values), dtype, str(device))
    t = _DEVICE_CONSTANTS.get(key)
    if t is None:
        if len(_DEVICE_CONSTANTS) >= 64:
            _DEVICE_CONSTANTS.clear()
        t = _DEVICE_CONSTANTS[key] = torch.tensor(key[0], dtype=dtype, device=device)
    return t


__all__ = ["device_constant"]
