"""CPU backend: tile-binned numba kernels (forward + backward) behind a torch autograd Function.

The pipeline mirrors gsplat 1.5.3 (unpacked, classic mode):

1. projection to 2D in torch autograd (:func:`._torch_impl.project_gaussians`: EWA Jacobian,
   eps2d blur, opacity-aware radii, near/far and image culling), so gradients reach means,
   quats, scales and opacities through torch and ``info["means2d"].grad`` is real;
2. tile intersection (:func:`_bin_tiles`): every valid Gaussian is listed in each 16x16 tile its
   bounding box touches, each tile's list sorted front to back by camera depth (stable, ties by
   index);
3. forward (:func:`_forward_kernel`, ranges of (camera, tile) jobs on a thread pool of ``nogil``
   numba functions; each tile is split into 4x4-pixel sub-blocks whose lists keep only the
   entries whose bounding box reaches them): per pixel, front-to-back
   blending with gsplat's thresholds (skip alpha < 1/255, alpha <= 0.999, exclusive early stop
   at T <= 1e-4), storing the final transmittance and the index of the last contributing entry;
4. backward (:func:`_backward_kernel`): per pixel, walk back from the last contributing entry
   (as gsplat's ``rasterize_to_pixels`` backward), recovering T by division, producing the
   gradients of means2d, conics, opacities and features. Each intersection entry belongs to
   exactly one tile, so per-entry gradients are written without races into private slots and
   then summed per Gaussian in a fixed order (:func:`_reduce_isects`): results are
   deterministic and independent of the thread count.

``geom_grad_weights`` (per feature channel) scale each channel's contribution to the alpha
gradient (hence to means2d, conics, opacities) inside the backward kernel; feature gradients
are always exact. The optional expected-depth channel is a feature channel with weight 1.

Kernels are compiled on first use (``cache=True`` keeps them in ``__pycache__``), separately for
float32 and float64 (about 13 s CPU for float32 on the 2-core dev machine; cached loads ~1 s).
``@njit(parallel=True)`` was measured to add ~12 s of compile time per kernel, hence the thread
pool. ``fastmath`` is off.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
from numba import njit
from torch import Tensor

from ._torch_impl import (
    ALPHA_THRESHOLD,
    MAX_ALPHA,
    TRANSMITTANCE_THRESHOLD,
    Projection,
    project_gaussians,
)

# consts array layout (kept in the data dtype so float32 math stays float32)
_C_HALF, _C_ONE, _C_ZERO, _C_ALPHA_THR, _C_MAX_ALPHA, _C_T_THR = range(6)
_SUB = 4  # pixels per side of the sub-blocks that pre-filter each tile's list


def _consts(dtype) -> np.ndarray:
    return np.array([0.5, 1.0, 0.0, ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_THRESHOLD], dtype=dtype)


@njit(cache=True)
def _bin_tiles(means2d, radii, order, tile_size, tile_w, tile_h):
    """Tile lists of every camera, front to back.

    ``order`` (C, N) int64: per camera, Gaussian indices sorted front to back.
    Returns ``offsets`` (C*tile_h*tile_w + 1,) int64 (list of job j = entries
    offsets[j]:offsets[j+1], job = c*tile_h*tile_w + ty*tile_w + tx), ``ids`` (n_isects,) int32
    Gaussian indices within the camera, ``tiles_per_gauss`` (C, N) int32.
    """
    C, N = radii.shape[0], radii.shape[1]
    n_tiles = tile_h * tile_w
    tmin = np.zeros((C, N, 2), np.int64)
    tmax = np.zeros((C, N, 2), np.int64)
    counts = np.zeros(C * n_tiles + 1, np.int64)
    tiles_per_gauss = np.zeros((C, N), np.int32)
    ts = float(tile_size)
    for c in range(C):
        for g in range(N):
            rx = radii[c, g, 0]
            ry = radii[c, g, 1]
            if rx <= 0 or ry <= 0:
                continue
            tx = float(means2d[c, g, 0]) / ts
            ty = float(means2d[c, g, 1]) / ts
            x0 = min(max(0, int(math.floor(tx - rx / ts))), tile_w)
            y0 = min(max(0, int(math.floor(ty - ry / ts))), tile_h)
            x1 = min(max(0, int(math.ceil(tx + rx / ts))), tile_w)
            y1 = min(max(0, int(math.ceil(ty + ry / ts))), tile_h)
            tmin[c, g, 0] = x0
            tmin[c, g, 1] = y0
            tmax[c, g, 0] = x1
            tmax[c, g, 1] = y1
            tiles_per_gauss[c, g] = (x1 - x0) * (y1 - y0)
            for yy in range(y0, y1):
                for xx in range(x0, x1):
                    counts[c * n_tiles + yy * tile_w + xx + 1] += 1
    offsets = np.empty(C * n_tiles + 1, np.int64)
    run = 0
    for j in range(C * n_tiles + 1):
        run += counts[j]
        offsets[j] = run
    ids = np.empty(offsets[-1], np.int32)
    fill = offsets[:-1].copy()
    for c in range(C):
        for oi in range(N):
            g = order[c, oi]
            if tiles_per_gauss[c, g] == 0:
                continue
            for yy in range(tmin[c, g, 1], tmax[c, g, 1]):
                for xx in range(tmin[c, g, 0], tmax[c, g, 0]):
                    j = c * n_tiles + yy * tile_w + xx
                    ids[fill[j]] = g
                    fill[j] += 1
    return offsets, ids, tiles_per_gauss


@njit(cache=True, nogil=True)
def _gather(c, start, L, ids, means2d, conics, opac, radii, feats, thr, dt):
    F = feats.shape[2]
    gx = np.empty(L, dt)
    gy = np.empty(L, dt)
    ga = np.empty(L, dt)
    gb = np.empty(L, dt)
    gc = np.empty(L, dt)
    go = np.empty(L, dt)
    gs = np.empty(L, dt)
    grx = np.empty(L, dt)
    gry = np.empty(L, dt)
    gf = np.empty((L, F), dt)
    for k in range(L):
        g = ids[start + k]
        gx[k] = means2d[c, g, 0]
        gy[k] = means2d[c, g, 1]
        ga[k] = conics[c, g, 0]
        gb[k] = conics[c, g, 1]
        gc[k] = conics[c, g, 2]
        go[k] = opac[c, g]
        # alpha >= thr needs sigma <= log(opacity / thr); the margin keeps borderline pairs for
        # the exact test after exp()
        gs[k] = np.log(opac[c, g] / thr) + 1e-3
        grx[k] = radii[c, g, 0]
        gry[k] = radii[c, g, 1]
        for f in range(F):
            gf[k, f] = feats[c, g, f]
    return gx, gy, ga, gb, gc, go, gs, grx, gry, gf


@njit(cache=True, nogil=True)
def _sub_list(sub, L, gx, gy, ga, gb, gc, go, gs, grx, gry, lox, hix, loy, hiy,
              sx, sy, sa, sb, sc, so, ss):
    """Entries whose bounding box reaches the pixel-centre rectangle [lox,hix]x[loy,hiy], in list
    order: their list indices go to ``sub`` and their parameters, packed, to ``sx..ss``."""
    ns = 0
    for k in range(L):
        if gx[k] + grx[k] >= lox and gx[k] - grx[k] <= hix and gy[k] + gry[k] >= loy and gy[k] - gry[k] <= hiy:
            sub[ns] = k
            sx[ns] = gx[k]
            sy[ns] = gy[k]
            sa[ns] = ga[k]
            sb[ns] = gb[k]
            sc[ns] = gc[k]
            so[ns] = go[k]
            ss[ns] = gs[k]
            ns += 1
    return ns


@njit(cache=True, nogil=True)
def _forward_tiles(j0, j1, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width,
                  height, tile_size, tile_w, tile_h, consts, want_contrib, pxc, pyc,
                  out, alpha_out, last, contrib):
    """Forward of jobs j0..j1-1 ((camera, tile) pairs); writes their pixels of
    out/alpha_out/last and their list entries of contrib (disjoint between jobs)."""
    for job in range(j0, j1):
        _forward_tile(job, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width,
                      height, tile_size, tile_w, tile_h, consts, want_contrib, pxc, pyc,
                      out, alpha_out, last, contrib)


@njit(cache=True, nogil=True)
def _forward_tile(job, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width,
                  height, tile_size, tile_w, tile_h, consts, want_contrib, pxc, pyc,
                  out, alpha_out, last, contrib):
    F = feats.shape[2]
    n_tiles = tile_h * tile_w
    dt = feats.dtype
    half = consts[_C_HALF]
    one = consts[_C_ONE]
    thr = consts[_C_ALPHA_THR]
    amax = consts[_C_MAX_ALPHA]
    tthr = consts[_C_T_THR]
    c = job // n_tiles
    t = job - c * n_tiles
    ty = t // tile_w
    tx = t - ty * tile_w
    start = offsets[job]
    L = offsets[job + 1] - start
    gx, gy, ga, gb, gc, go, gs, grx, gry, gf = _gather(
        c, start, L, ids, means2d, conics, opac, radii, feats, thr, dt
    )
    sub = np.empty(L, np.int64)
    sx, sy, sa, sb, sc, so, ss = (np.empty(L, dt), np.empty(L, dt), np.empty(L, dt), np.empty(L, dt),
                                  np.empty(L, dt), np.empty(L, dt), np.empty(L, dt))
    acc = np.empty(F, dt)
    y0 = ty * tile_size
    x0 = tx * tile_size
    y_end = min(y0 + tile_size, height)
    x_end = min(x0 + tile_size, width)
    for sy0 in range(y0, y_end, _SUB):
        sy1 = min(sy0 + _SUB, y_end)
        for sx0 in range(x0, x_end, _SUB):
            sx1 = min(sx0 + _SUB, x_end)
            ns = _sub_list(sub, L, gx, gy, ga, gb, gc, go, gs, grx, gry, pxc[sx0], pxc[sx1 - 1],
                           pyc[sy0], pyc[sy1 - 1], sx, sy, sa, sb, sc, so, ss)
            for py in range(sy0, sy1):
                fy = pyc[py]
                for px in range(sx0, sx1):
                    fx = pxc[px]
                    for f in range(F):
                        acc[f] = 0
                    T = one
                    lk = -1
                    for si in range(ns):
                        dx = sx[si] - fx
                        dy = sy[si] - fy
                        sigma = half * (sa[si] * dx * dx + sc[si] * dy * dy) + sb[si] * dx * dy
                        if sigma < 0 or sigma > ss[si]:
                            continue
                        alpha = min(amax, so[si] * np.exp(-sigma))
                        if alpha < thr:
                            continue
                        next_T = T * (one - alpha)
                        if next_T <= tthr:
                            break
                        vis = alpha * T
                        k = sub[si]
                        for f in range(F):
                            acc[f] += gf[k, f] * vis
                        if want_contrib:
                            contrib[start + k] += vis
                        lk = k
                        T = next_T
                    for f in range(F):
                        v = acc[f]
                        if has_bg:
                            v += T * bg[c, f]
                        out[c, py, px, f] = v
                    alpha_out[c, py, px] = one - T
                    last[c, py, px] = lk


def _forward_kernel(means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width, height,
                    tile_size, tile_w, tile_h, consts, want_contrib):
    C = means2d.shape[0]
    F = feats.shape[2]
    dt = feats.dtype
    out = np.zeros((C, height, width, F), dt)
    alpha_out = np.zeros((C, height, width), dt)
    last = np.full((C, height, width), -1, np.int32)
    contrib = np.zeros(ids.shape[0] if want_contrib else 0, dt)
    pxc = (np.arange(width) + 0.5).astype(dt)
    pyc = (np.arange(height) + 0.5).astype(dt)

    def run(j0, j1):
        _forward_tiles(j0, j1, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids,
                       width, height, tile_size, tile_w, tile_h, consts, want_contrib, pxc, pyc,
                       out, alpha_out, last, contrib)

    _run_jobs(run, offsets, tile_size)
    return out, alpha_out, last, contrib


@njit(cache=True, nogil=True)
def _backward_tiles(j0, j1, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width,
                   height, tile_size, tile_w, tile_h, consts, alpha_out, last, v_out,
                   v_alpha_out, wgeom, pxc, pyc, v_m, v_q, v_o, v_f):
    """Backward of jobs j0..j1-1; writes the per-entry gradient slots of their lists."""
    for job in range(j0, j1):
        _backward_tile(job, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width,
                       height, tile_size, tile_w, tile_h, consts, alpha_out, last, v_out,
                       v_alpha_out, wgeom, pxc, pyc, v_m, v_q, v_o, v_f)


@njit(cache=True, nogil=True)
def _backward_tile(job, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width,
                   height, tile_size, tile_w, tile_h, consts, alpha_out, last, v_out,
                   v_alpha_out, wgeom, pxc, pyc, v_m, v_q, v_o, v_f):
    n_tiles = tile_h * tile_w
    dt = feats.dtype
    thr = consts[_C_ALPHA_THR]
    c = job // n_tiles
    t = job - c * n_tiles
    ty = t // tile_w
    tx = t - ty * tile_w
    start = offsets[job]
    L = offsets[job + 1] - start
    if L == 0:
        return
    gx, gy, ga, gb, gc, go, gs, grx, gry, gf = _gather(
        c, start, L, ids, means2d, conics, opac, radii, feats, thr, dt
    )
    _backward_blocks(c, start, L, ty * tile_size, tx * tile_size, tile_size, width, height, consts, bg, has_bg,
                     gx, gy, ga, gb, gc, go, gs, grx, gry, gf, alpha_out, last, v_out, v_alpha_out, wgeom, pxc, pyc,
                     v_m, v_q, v_o, v_f)


@njit(cache=True, nogil=True)
def _backward_blocks(c, start, L, y0, x0, tile_size, width, height, consts, bg, has_bg,
                     gx, gy, ga, gb, gc, go, gs, grx, gry, gf, alpha_out, last, v_out, v_alpha_out, wgeom, pxc, pyc,
                     v_m, v_q, v_o, v_f):
    """The pixels of one tile (camera ``c``, corner (x0, y0), list entries start..start+L-1 gathered
    into ``gx..gf``), sub-block by sub-block, back to front: adds to the per-entry gradient slots."""
    F = gf.shape[1]
    dt = gf.dtype
    half = consts[_C_HALF]
    one = consts[_C_ONE]
    zero = consts[_C_ZERO]
    thr = consts[_C_ALPHA_THR]
    amax = consts[_C_MAX_ALPHA]
    sub = np.empty(L, np.int64)
    sx, sy, sa, sb, sc, so, ss = (np.empty(L, dt), np.empty(L, dt), np.empty(L, dt), np.empty(L, dt),
                                  np.empty(L, dt), np.empty(L, dt), np.empty(L, dt))
    vc = np.empty(F, dt)
    vcw = np.empty(F, dt)
    F4 = F - F % 4
    y_end = min(y0 + tile_size, height)
    x_end = min(x0 + tile_size, width)
    for sy0 in range(y0, y_end, _SUB):
        sy1 = min(sy0 + _SUB, y_end)
        for sx0 in range(x0, x_end, _SUB):
            sx1 = min(sx0 + _SUB, x_end)
            ns = _sub_list(sub, L, gx, gy, ga, gb, gc, go, gs, grx, gry, pxc[sx0], pxc[sx1 - 1],
                           pyc[sy0], pyc[sy1 - 1], sx, sy, sa, sb, sc, so, ss)
            for py in range(sy0, sy1):
                fy = pyc[py]
                for px in range(sx0, sx1):
                    lk = last[c, py, px]
                    if lk < 0:
                        continue
                    fx = pxc[px]
                    T_final = one - alpha_out[c, py, px]
                    T = T_final
                    va = v_alpha_out[c, py, px]
                    bgdot = zero
                    # (sum over later entries j of fac_j * feats_j) . (w * v_render), as a scalar
                    bufdot = zero
                    for f in range(F):
                        vc[f] = v_out[c, py, px, f]
                        vcw[f] = vc[f] * wgeom[f]
                        if has_bg:
                            bgdot += bg[c, f] * vcw[f]
                    for si in range(ns - 1, -1, -1):
                        k = sub[si]
                        if k > lk:
                            continue
                        dx = sx[si] - fx
                        dy = sy[si] - fy
                        sigma = half * (sa[si] * dx * dx + sc[si] * dy * dy) + sb[si] * dx * dy
                        if sigma < 0 or sigma > ss[si]:
                            continue
                        vis = np.exp(-sigma)
                        alpha = min(amax, so[si] * vis)
                        if alpha < thr:
                            continue
                        ra = one / (one - alpha)
                        T = T * ra
                        fac = alpha * T
                        e = start + k
                        # dot = feats_k . (w * v_render) with four independent partial sums
                        d0 = zero
                        d1 = zero
                        d2 = zero
                        d3 = zero
                        for f in range(0, F4, 4):
                            d0 += gf[k, f] * vcw[f]
                            d1 += gf[k, f + 1] * vcw[f + 1]
                            d2 += gf[k, f + 2] * vcw[f + 2]
                            d3 += gf[k, f + 3] * vcw[f + 3]
                        for f in range(F4, F):
                            d0 += gf[k, f] * vcw[f]
                        dot = (d0 + d1) + (d2 + d3)
                        for f in range(F):
                            v_f[e, f] += fac * vc[f]
                        v_alpha = T * dot - ra * bufdot + T_final * ra * va
                        bufdot += fac * dot
                        if has_bg:
                            v_alpha -= T_final * ra * bgdot
                        if so[si] * vis <= amax:
                            v_sigma = -so[si] * vis * v_alpha
                            v_q[e, 0] += half * v_sigma * dx * dx
                            v_q[e, 1] += v_sigma * dx * dy
                            v_q[e, 2] += half * v_sigma * dy * dy
                            v_m[e, 0] += v_sigma * (sa[si] * dx + sb[si] * dy)
                            v_m[e, 1] += v_sigma * (sb[si] * dx + sc[si] * dy)
                            v_o[e] += vis * v_alpha


def _backward_kernel(means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids, width, height,
                     tile_size, tile_w, tile_h, consts, alpha_out, last, v_out, v_alpha_out,
                     wgeom):
    F = feats.shape[2]
    n_isects = ids.shape[0]
    dt = feats.dtype
    v_m = np.zeros((n_isects, 2), dt)
    v_q = np.zeros((n_isects, 3), dt)
    v_o = np.zeros(n_isects, dt)
    v_f = np.zeros((n_isects, F), dt)
    pxc = (np.arange(width) + 0.5).astype(dt)
    pyc = (np.arange(height) + 0.5).astype(dt)

    def run(j0, j1):
        _backward_tiles(j0, j1, means2d, conics, opac, radii, feats, bg, has_bg, offsets, ids,
                        width, height, tile_size, tile_w, tile_h, consts, alpha_out, last, v_out,
                        v_alpha_out, wgeom, pxc, pyc, v_m, v_q, v_o, v_f)

    _run_jobs(run, offsets, tile_size)
    return v_m, v_q, v_o, v_f


_POOL: ThreadPoolExecutor | None = None
_POOL_KEY: tuple[int, int] = (0, 0)  # (pid, size): a forked child must not reuse the parent's pool


def num_threads() -> int:
    """Worker threads of the CPU kernels: ``LABELSPLAT_NUM_THREADS`` if set, else the number of
    CPUs this process may run on (independent of ``torch.set_num_threads``, so a caller can keep
    torch single-threaded without slowing the kernels down)."""
    env = os.environ.get("LABELSPLAT_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run_jobs(run, offsets: np.ndarray, tile_size: int) -> None:
    """Run ``run(j0, j1)`` over all jobs, split into chunks of similar work on a thread pool.

    The kernels release the GIL (``nogil``) and every job writes only its own output slots, so
    results do not depend on the chunking or the thread count.
    """
    global _POOL, _POOL_KEY
    n_jobs = offsets.shape[0] - 1
    n = num_threads()
    if n == 1 or n_jobs < 2:
        run(0, n_jobs)
        return
    # work per job ~ list length * pixels; the constant keeps empty tiles from being free
    work = np.cumsum(np.diff(offsets) + tile_size)
    n_chunks = min(n_jobs, 4 * n)
    bounds = np.searchsorted(work, np.linspace(0, work[-1], n_chunks + 1)[1:-1], side="right")
    edges = [0, *sorted(set(int(b) for b in bounds if 0 < b < n_jobs)), n_jobs]
    key = (os.getpid(), n)
    if _POOL is None or _POOL_KEY != key:
        if _POOL is not None and _POOL_KEY[0] == key[0]:
            _POOL.shutdown(wait=True)
        _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="labelsplat-raster")
        _POOL_KEY = key
    futures = [_POOL.submit(run, a, b) for a, b in zip(edges[:-1], edges[1:])]
    for f in futures:
        f.result()


@njit(cache=True)
def _reduce_isects(offsets, ids, n_tiles, N, v_m, v_q, v_o, v_f):
    """Sum per-entry gradients per (camera, Gaussian) in a fixed order (deterministic)."""
    C = (offsets.shape[0] - 1) // n_tiles
    F = v_f.shape[1]
    dt = v_f.dtype
    g_m = np.zeros((C, N, 2), dt)
    g_q = np.zeros((C, N, 3), dt)
    g_o = np.zeros((C, N), dt)
    g_f = np.zeros((C, N, F), dt)
    for c in range(C):
        for e in range(offsets[c * n_tiles], offsets[(c + 1) * n_tiles]):
            g = ids[e]
            g_m[c, g, 0] += v_m[e, 0]
            g_m[c, g, 1] += v_m[e, 1]
            g_q[c, g, 0] += v_q[e, 0]
            g_q[c, g, 1] += v_q[e, 1]
            g_q[c, g, 2] += v_q[e, 2]
            g_o[c, g] += v_o[e]
            for f in range(F):
                g_f[c, g, f] += v_f[e, f]
    return g_m, g_q, g_o, g_f


@njit(cache=True)
def _reduce_contrib(offsets, ids, n_tiles, N, contrib):
    C = (offsets.shape[0] - 1) // n_tiles
    out = np.zeros((C, N), contrib.dtype)
    for c in range(C):
        for e in range(offsets[c * n_tiles], offsets[(c + 1) * n_tiles]):
            out[c, ids[e]] += contrib[e]
    return out


class _Binning:
    """Tile lists of one rasterisation (numpy, no gradient)."""

    def __init__(self, means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int,
                 tile_size: int):
        self.tile_size = int(tile_size)
        self.tile_w = math.ceil(width / self.tile_size)
        self.tile_h = math.ceil(height / self.tile_size)
        self.n_tiles = self.tile_w * self.tile_h
        # front to back, ties by index (stable), as a radix sort of (tile, depth) keys would give
        order = np.argsort(_np(depths), axis=1, kind="stable").astype(np.int64)
        self.offsets, self.ids, self.tiles_per_gauss = _bin_tiles(
            _np(means2d).astype(np.float64), radii.detach().cpu().numpy().astype(np.int32, copy=False), order,
            self.tile_size, self.tile_w, self.tile_h,
        )

    def info(self, depths: Tensor) -> dict:
        """gsplat-style tile data: ``tiles_per_gauss`` (C,N), ``isect_offsets`` (C,th,tw) int32,
        ``flatten_ids`` (n_isects,) int32 = c*N + g, ``isect_ids`` int64 (camera | tile | depth)."""
        C, N = self.tiles_per_gauss.shape
        counts = np.diff(self.offsets)
        job_of = np.repeat(np.arange(C * self.n_tiles, dtype=np.int64), counts)
        cam = job_of // self.n_tiles
        tile = job_of % self.n_tiles
        flatten = (cam * N + self.ids).astype(np.int32)
        d32 = _np(depths).astype(np.float32)[cam, self.ids] if len(self.ids) else np.zeros(0, np.float32)
        depth_bits = d32.view(np.uint32).astype(np.int64)
        tile_bits = int(self.n_tiles).bit_length()
        isect_ids = (cam << (tile_bits + 32)) | (tile << 32) | depth_bits
        return {
            "tile_width": self.tile_w,
            "tile_height": self.tile_h,
            "tiles_per_gauss": torch.from_numpy(self.tiles_per_gauss),
            "isect_ids": torch.from_numpy(isect_ids),
            "flatten_ids": torch.from_numpy(flatten),
            "isect_offsets": torch.from_numpy(
                self.offsets[:-1].reshape(C, self.tile_h, self.tile_w).astype(np.int32)
            ),
            "tile_size": self.tile_size,
        }


def _np(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


class RasterizeToPixelsCPU(torch.autograd.Function):
    """Differentiable tile-binned compositing of projected 2D Gaussians.

    Inputs: ``means2d`` (C,N,2), ``conics`` (C,N,3), ``opacities`` (C,N), ``radii`` (C,N,2)
    int32 (non-differentiable; bounding boxes used to pre-filter tile lists), ``feats`` (C,N,F),
    ``backgrounds`` (C,F) or None, a :class:`_Binning`, image size, ``wgeom`` (F,) numpy
    geometry-gradient weights, ``want_contrib``. Outputs ``render`` (C,H,W,F) (background
    composited), ``alpha`` (C,H,W,1), ``contrib`` (C,N) (non-differentiable; zeros unless
    ``want_contrib``).
    """

    @staticmethod
    def forward(ctx, means2d, conics, opacities, radii, feats, backgrounds, binning, width, height, wgeom,
                want_contrib):
        dt = feats.dtype
        np_dt = np.float32 if dt == torch.float32 else np.float64
        consts = _consts(np_dt)
        m, q, o, f = _np(means2d), _np(conics), _np(opacities), _np(feats)
        has_bg = backgrounds is not None
        bg = _np(backgrounds) if has_bg else np.zeros((f.shape[0], f.shape[2]), np_dt)
        r = _np(radii).astype(np.int32, copy=False)
        out, alpha, last, contrib_e = _forward_kernel(
            m, q, o, r, f, bg, has_bg, binning.offsets, binning.ids, width, height,
            binning.tile_size, binning.tile_w, binning.tile_h, consts, bool(want_contrib),
        )
        if want_contrib:
            contrib = _reduce_contrib(binning.offsets, binning.ids, binning.n_tiles, m.shape[1], contrib_e)
        else:
            contrib = np.zeros(o.shape, np_dt)
        ctx.arrays = (m, q, o, r, f, bg, has_bg, alpha, last)
        ctx.binning = binning
        ctx.size = (width, height)
        ctx.wgeom = wgeom.astype(np_dt)
        ctx.consts = consts
        ctx.bg_needs_grad = has_bg and backgrounds.requires_grad
        alpha_t = torch.from_numpy(alpha)[..., None]
        if ctx.bg_needs_grad:
            ctx.save_for_backward(alpha_t)
        contrib_t = torch.from_numpy(contrib)
        ctx.mark_non_differentiable(contrib_t)
        return torch.from_numpy(out), alpha_t, contrib_t

    @staticmethod
    def backward(ctx, v_render, v_alpha, v_contrib):
        m, q, o, r, f, bg, has_bg, alpha, last = ctx.arrays
        b = ctx.binning
        width, height = ctx.size
        np_dt = f.dtype
        v_render = np.ascontiguousarray(v_render.detach().cpu().numpy().astype(np_dt, copy=False))
        if v_alpha is None:
            v_a = np.zeros(alpha.shape, np_dt)
        else:
            v_a = np.ascontiguousarray(v_alpha.detach().cpu().numpy()[..., 0].astype(np_dt, copy=False))
        v_m, v_q, v_o, v_f = _backward_kernel(
            m, q, o, r, f, bg, has_bg, b.offsets, b.ids, width, height, b.tile_size, b.tile_w,
            b.tile_h, ctx.consts, alpha, last, v_render, v_a, ctx.wgeom,
        )
        g_m, g_q, g_o, g_f = _reduce_isects(b.offsets, b.ids, b.n_tiles, m.shape[1], v_m, v_q, v_o, v_f)
        v_bg = None
        if ctx.bg_needs_grad:
            (alpha_t,) = ctx.saved_tensors
            v_bg = (torch.from_numpy(v_render) * (1.0 - alpha_t)).sum(dim=(1, 2))
        return (torch.from_numpy(g_m), torch.from_numpy(g_q), torch.from_numpy(g_o), None,
                torch.from_numpy(g_f), v_bg, None, None, None, None, None)


@contextmanager
def _torch_threads(n: int):
    """Temporarily limit torch's intra-op threads (restored afterwards)."""
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _ProjectSingleThreaded(torch.autograd.Function):
    """:func:`project_gaussians` with its forward and backward run on one torch thread.

    The projection is ~100 small elementwise torch ops; with several intra-op threads on a
    busy machine their OpenMP barriers dominated (measured on the shared 2-core machine, N=30k,
    fwd+bwd: 0.43 s median with 2 torch threads vs 0.049 s with 1). The graph is built inside
    the forward and differentiated with ``torch.autograd.grad`` in the backward, so gradients
    are exactly those of :func:`project_gaussians`. Outputs: means2d, conics, depths (C,N,...)
    and radii (int32, non-differentiable).
    """

    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, width, height, near_plane,
                far_plane, eps2d, radius_clip, antialiased):
        with torch.enable_grad(), _torch_threads(1):
            ins = [t.detach().requires_grad_(t.requires_grad) for t in (means, quats, scales, viewmats, Ks)]
            proj = project_gaussians(
                ins[0], ins[1], ins[2], opacities.detach(), ins[3], ins[4], width, height,
                near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, radius_clip=radius_clip,
                antialiased=antialiased,
            )
        ctx.ins = ins
        ctx.outs = (proj.means2d, proj.conics, proj.depths) + ((proj.compensations,) if antialiased else ())
        ctx.mark_non_differentiable(proj.radii)
        return (proj.means2d.detach(), proj.conics.detach(), proj.depths.detach(), proj.radii,
                *(o.detach() for o in ctx.outs[3:]))

    @staticmethod
    def backward(ctx, g_means2d, g_conics, g_depths, g_radii, *g_rest):
        wanted = [i for i, t in enumerate(ctx.ins) if t.requires_grad]
        result = [None] * 5
        outs, grads = [], []
        for o, g in zip(ctx.outs, (g_means2d, g_conics, g_depths, *g_rest)):
            if g is not None and o.requires_grad:
                outs.append(o)
                grads.append(g)
        if wanted and outs:
            with _torch_threads(1):
                got = torch.autograd.grad(outs, [ctx.ins[i] for i in wanted], grads, allow_unused=True)
            for i, g in zip(wanted, got):
                result[i] = g
        m, q, s, v, k = result
        return m, q, s, None, v, k, None, None, None, None, None, None, None


def rasterize_cpu(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    backgrounds: Tensor | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    radius_clip: float = 0.0,
    render_depth: bool = True,
    geom_grad_weights: Tensor | None = None,
    tile_size: int = 16,
    return_contrib: bool = False,
    antialiased: bool = False,
) -> tuple[Tensor, Tensor, dict]:
    """CPU backend of :func:`labelsplat.splat.rasterize.rasterize` (inputs validated there)."""
    C = viewmats.shape[0]
    N = means.shape[0]
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (means, quats, scales, viewmats, Ks)
    )
    if needs_grad:
        means2d, conics, depths, radii, *comp = _ProjectSingleThreaded.apply(
            means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane,
            eps2d, radius_clip, antialiased,
        )
        proj = Projection(means2d=means2d, conics=conics, depths=depths, radii=radii, covars2d=None,
                          compensations=comp[0] if comp else None)
    else:  # inference: no graph to build
        with torch.no_grad(), _torch_threads(1):
            proj = project_gaussians(
                means, quats, scales, opacities, viewmats, Ks, width, height,
                near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, radius_clip=radius_clip,
                antialiased=antialiased,
            )
    colors_c = colors if colors.dim() == 3 else colors[None].expand(C, N, colors.shape[-1])
    D = colors_c.shape[-1]
    op_c = proj.camera_opacities(opacities)
    feats, bgs = colors_c, backgrounds
    if render_depth:
        feats = torch.cat([colors_c, proj.depths[..., None]], dim=-1)
        if backgrounds is not None:
            bgs = torch.cat([backgrounds, torch.zeros_like(backgrounds[:, :1])], dim=-1)
    np_dt = np.float32 if means.dtype == torch.float32 else np.float64
    wgeom = np.ones(feats.shape[-1], np_dt)
    if geom_grad_weights is not None:
        wgeom[:D] = geom_grad_weights.detach().cpu().numpy()
    binning = _Binning(proj.means2d, proj.radii, proj.depths, width, height, tile_size)
    render, alpha, contrib = RasterizeToPixelsCPU.apply(
        proj.means2d, proj.conics, op_c, proj.radii, feats.contiguous(), bgs, binning, width, height, wgeom,
        return_contrib,
    )
    if render_depth:
        render = torch.cat([render[..., :-1], render[..., -1:] / alpha.clamp(min=1e-10)], dim=-1)
    info = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": op_c,
        **binning.info(proj.depths),
        "width": width,
        "height": height,
        "n_batches": 1,
        "n_cameras": C,
    }
    if return_contrib:
        info["contrib"] = contrib
    return render, alpha, info


__all__ = ["RasterizeToPixelsCPU", "rasterize_cpu"]
