"""CPU backend of :func:`labelsplat.splat.rasterize.rasterize`.

TEMPORARY (first published version): delegates to the naive all-pairs reference so the API is
usable while the tile-binned numba kernels are written; same outputs, much slower.
"""

from __future__ import annotations


def rasterize_cpu(*args, tile_size: int = 16, **kwargs):
    from ._torch_impl import rasterize_naive

    return rasterize_naive(*args, **kwargs)
