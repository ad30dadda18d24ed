"""A deterministic CPU z-buffer triangle rasteriser (numba), exact at pixel centres.

Conventions (docs/design.md): pixel (i, j) = (column, row) covers [i, i+1) x [j, j+1) and is sampled
at its centre (i + 0.5, j + 0.5) in the continuous pixel coordinates returned by
:meth:`labelsplat.scene.Camera.project`. A pixel belongs to the nearest triangle (smallest
camera-space depth, perspective-correct) whose closed projected area contains the pixel
centre. No anti-aliasing: every covered pixel gets exactly one triangle id. Ties in depth keep
the lower triangle index (triangles are visited in index order and only a strictly nearer
depth replaces the stored one), so the output is deterministic.

Triangles with a vertex at or behind the near plane are skipped (synthetic cameras are far
from the head; the caller reports views where this matters).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import LabelsplatError

NEAR = 1e-3


@njit(cache=True, nogil=True)
def _raster_kernel(uv, z, faces, width, height, tri_id, depth, bary):
    n_faces = faces.shape[0]
    for f in range(n_faces):
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        za = z[a]
        zb = z[b]
        zc = z[c]
        if za <= NEAR or zb <= NEAR or zc <= NEAR:
            continue
        xa = uv[a, 0]
        ya = uv[a, 1]
        xb = uv[b, 0]
        yb = uv[b, 1]
        xc = uv[c, 0]
        yc = uv[c, 1]
        area = (xb - xa) * (yc - ya) - (yb - ya) * (xc - xa)
        if area == 0.0 or area != area:
            continue
        xmin = min(xa, min(xb, xc))
        xmax = max(xa, max(xb, xc))
        ymin = min(ya, min(yb, yc))
        ymax = max(ya, max(yb, yc))
        # pixel centres i + 0.5 inside [xmin, xmax]
        i0 = int(np.ceil(xmin - 0.5))
        i1 = int(np.floor(xmax - 0.5))
        j0 = int(np.ceil(ymin - 0.5))
        j1 = int(np.floor(ymax - 0.5))
        if i0 < 0:
            i0 = 0
        if j0 < 0:
            j0 = 0
        if i1 > width - 1:
            i1 = width - 1
        if j1 > height - 1:
            j1 = height - 1
        if i0 > i1 or j0 > j1:
            continue
        inv_area = 1.0 / area
        iza = 1.0 / za
        izb = 1.0 / zb
        izc = 1.0 / zc
        for j in range(j0, j1 + 1):
            py = j + 0.5
            for i in range(i0, i1 + 1):
                px = i + 0.5
                # barycentric (screen space) via signed sub-areas
                w0 = ((xb - px) * (yc - py) - (yb - py) * (xc - px)) * inv_area
                w1 = ((xc - px) * (ya - py) - (yc - py) * (xa - px)) * inv_area
                w2 = 1.0 - w0 - w1
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                iz = w0 * iza + w1 * izb + w2 * izc
                d = 1.0 / iz
                if d < depth[j, i]:
                    depth[j, i] = d
                    tri_id[j, i] = f
                    # perspective-correct barycentrics
                    bary[j, i, 0] = w0 * iza * d
                    bary[j, i, 1] = w1 * izb * d
                    bary[j, i, 2] = w2 * izc * d


@njit(cache=True, nogil=True)
def _shade_kernel(tri_id, bary, faces, normals, vertices, colors, noise, cam, light, ambient, diffuse, out):
    H, W = tri_id.shape
    for j in range(H):
        for i in range(W):
            t = tri_id[j, i]
            if t < 0:
                continue
            a = faces[t, 0]
            b = faces[t, 1]
            c = faces[t, 2]
            w0 = bary[j, i, 0]
            w1 = bary[j, i, 1]
            w2 = bary[j, i, 2]
            nx = w0 * normals[a, 0] + w1 * normals[b, 0] + w2 * normals[c, 0]
            ny = w0 * normals[a, 1] + w1 * normals[b, 1] + w2 * normals[c, 1]
            nz = w0 * normals[a, 2] + w1 * normals[b, 2] + w2 * normals[c, 2]
            nn = np.sqrt(nx * nx + ny * ny + nz * nz)
            if nn < 1e-12:
                nn = 1e-12
            nx /= nn
            ny /= nn
            nz /= nn
            vx = cam[0] - (w0 * vertices[a, 0] + w1 * vertices[b, 0] + w2 * vertices[c, 0])
            vy = cam[1] - (w0 * vertices[a, 1] + w1 * vertices[b, 1] + w2 * vertices[c, 1])
            vz = cam[2] - (w0 * vertices[a, 2] + w1 * vertices[b, 2] + w2 * vertices[c, 2])
            vn = np.sqrt(vx * vx + vy * vy + vz * vz)
            if vn < 1e-12:
                vn = 1e-12
            ndv = (nx * vx + ny * vy + nz * vz) / vn
            if ndv < 0.0:  # two-sided: the normal faces the camera
                nx = -nx
                ny = -ny
                nz = -nz
                ndv = -ndv
            lam = nx * light[0] + ny * light[1] + nz * light[2]
            if lam < 0.0:
                lam = 0.0
            tex = 1.0 + w0 * noise[a] + w1 * noise[b] + w2 * noise[c]
            k = tex * (ambient + diffuse * lam + 0.15 * ndv)
            for ch in range(3):
                v = colors[t, ch] * k
                out[j, i, ch] = 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)


def shade_pixels(tri_id, bary, faces, normals, vertices, colors, noise, cam_center, light, ambient, diffuse):
    """Lambert + ambient + camera fill shading (H, W, 3) float64 in [0, 1] (0 where empty).

    Per pixel: normal and position interpolated with the perspective-correct barycentrics,
    flipped to face the camera (two-sided), albedo ``colors[tri] * (1 + interpolated noise)``.
    """
    out = np.zeros(tri_id.shape + (3,), dtype=np.float64)
    _shade_kernel(tri_id, bary, np.ascontiguousarray(faces, dtype=np.int64), np.ascontiguousarray(normals, dtype=np.float64),
                  np.ascontiguousarray(vertices, dtype=np.float64), np.ascontiguousarray(colors, dtype=np.float64),
                  np.ascontiguousarray(noise, dtype=np.float64), np.asarray(cam_center, dtype=np.float64),
                  np.asarray(light, dtype=np.float64), float(ambient), float(diffuse), out)
    return out


def rasterize(uv: np.ndarray, z: np.ndarray, faces: np.ndarray, width: int, height: int):
    """Rasterise projected triangles.

    Args:
        uv: (N, 2) continuous pixel coordinates of the vertices (pixel-centre convention).
        z: (N,) camera-space depth of the vertices (positive in front of the camera).
        faces: (F, 3) vertex indices.
        width, height: image size in pixels.

    Returns:
        ``tri_id`` (H, W) int32 (-1 = empty), ``depth`` (H, W) float64 (inf = empty, camera
        z, not ray length), ``bary`` (H, W, 3) float64 perspective-correct barycentrics of the
        visible triangle's corners (0 where empty).
    """
    uv = np.ascontiguousarray(uv, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64).reshape(-1)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise LabelsplatError(f"rasterize: uv must be (N, 2), got {uv.shape}")
    if z.shape[0] != uv.shape[0]:
        raise LabelsplatError(f"rasterize: z has {z.shape[0]} values for {uv.shape[0]} vertices")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise LabelsplatError(f"rasterize: faces must be (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= uv.shape[0]):
        raise LabelsplatError("rasterize: face indices out of range")
    if int(width) <= 0 or int(height) <= 0:
        raise LabelsplatError(f"rasterize: image size must be positive, got {width}x{height}")
    width, height = int(width), int(height)
    tri_id = np.full((height, width), -1, dtype=np.int32)
    depth = np.full((height, width), np.inf, dtype=np.float64)
    bary = np.zeros((height, width, 3), dtype=np.float64)
    _raster_kernel(uv, z, faces, width, height, tri_id, depth, bary)
    return tri_id, depth, bary


def rasterize_reference(origin: np.ndarray, dirs: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                        forward: np.ndarray):
    """Brute-force reference: intersect every pixel-centre ray with every triangle (numpy).

    ``origin`` (3,), ``dirs`` (H, W, 3) unit rays (e.g. :meth:`Camera.pixel_rays`),
    ``vertices`` (N, 3) world points, ``faces`` (F, 3), ``forward`` (3,) the camera's unit
    viewing direction (to turn ray length into camera z). Returns (tri_id, depth) like
    :func:`rasterize`. For tests only: O(pixels x triangles).
    """
    H, W, _ = dirs.shape
    d = dirs.reshape(-1, 3)
    best_t = np.full(d.shape[0], np.inf)
    best_f = np.full(d.shape[0], -1, dtype=np.int32)
    for f, (a, b, c) in enumerate(np.asarray(faces)):
        v0, v1, v2 = vertices[a], vertices[b], vertices[c]
        e1, e2 = v1 - v0, v2 - v0
        p = np.cross(d, e2)
        det = p @ e1
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = origin - v0
            u = (p @ s) * inv
            q = np.cross(s, e1)
            v = (d @ q) * inv
            t = (q @ e2) * inv
        ok = (det != 0) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t < best_t)
        best_t[ok] = t[ok]
        best_f[ok] = f
    depth = best_t * (d @ np.asarray(forward, dtype=np.float64))
    depth[best_f < 0] = np.inf
    return best_f.reshape(H, W), depth.reshape(H, W)
