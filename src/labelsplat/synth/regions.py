"""Part labels of the ICT-FaceKit topology (``celebamask19-zll``, subject's left/right).

Labels are defined ONCE per triangle of the fixed topology, from the neutral mesh, the 68
landmarks (their UV positions), the UV tiles, the geometry ranges and the materials, so they
hold for every identity and expression. Rules, in priority order (see docs/synth.md):

1. Rendering helpers (lacrimal fluid, eye blend, eye occlusion, eyelashes) are dropped
   (label :data:`DROP`; the renderer never draws them).
2. Eyeballs (sclera + iris materials) and the eye-socket ranges -> ``l_eye`` / ``r_eye`` by the
   side of the triangle (x > 0 is the subject's left).
3. Teeth, gums + tongue and the mouth-socket range -> ``mouth``.
4. Face UV tile (u in [0, 1], a frontal unwrap where u grows with x):
   ears = the ellipses around each ear's UV island; neck = below the jaw polyline through
   landmarks 4-12 (extended laterally under the ear lobes); eyes = the eye-opening polygons of
   landmarks 36-41 / 42-47 (slightly grown: the rolled eyelid rims); brows = a band from just
   above the brow landmarks 17-21 / 22-26 down ~0.9 cm, thinner at the tails; nose = a polygon
   from the bridge at landmark 27 widening to the alae around 31-35 and closing at the
   subnasale 33; lips = the outer lip polygon 48-59, split into ``u_lip`` / ``l_lip`` at the
   mid-line between the inner contours 60-64 and 64-67,60; everything else ``skin``.
5. Back-head tile (scalp, back of the neck): ``neck`` below a plane through the ear-lobe level
   sloping down to the nape, otherwise ``skin`` (scalp; mostly under the procedural hair).

Hair and cloth are procedural geometry added per identity (:mod:`labelsplat.synth.head`).
"""

from __future__ import annotations

import functools

import numpy as np

from ..schemes import get_scheme
from .asset import FaceKit, load_facekit

SCHEME = "celebamask19-zll"
DROP = 255  # triangle is a rendering helper: not drawn

# ear islands in the face UV tile (subject's right side; the left one is mirrored: u -> 1 - u)
EAR_UV_CENTER = (0.062, 0.565)
EAR_UV_AXES = (0.068, 0.128)


def _in_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test; points (P, 2), poly (Q, 2) -> (P,) bool."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(points.shape[0], dtype=bool)
    n = poly.shape[0]
    for k in range(n):
        x0, y0 = poly[k]
        x1, y1 = poly[(k + 1) % n]
        cond = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= cond & (x < xint)
    return inside


def _interp_polyline(u: np.ndarray, line: np.ndarray) -> np.ndarray:
    order = np.argsort(line[:, 0])
    return np.interp(u, line[order, 0], line[order, 1])


def _grow(poly: np.ndarray, factor: float) -> np.ndarray:
    c = poly.mean(axis=0)
    return c + (poly - c) * factor


@functools.lru_cache(maxsize=1)
def triangle_labels() -> np.ndarray:
    """Per-triangle class ids (F,) uint8 in ``celebamask19-zll``; :data:`DROP` = not drawn."""
    return _triangle_labels(load_facekit())


class _Painter:
    """Per-triangle labels painted first-come: a triangle keeps the first label it gets."""

    def __init__(self, n: int, default: int, left: np.ndarray):
        self.lab = np.full(n, default, dtype=np.uint8)
        self.assigned = np.zeros(n, dtype=bool)
        self.left = left

    def put(self, mask: np.ndarray, value: int) -> None:
        m = mask & ~self.assigned
        self.lab[m] = value
        self.assigned |= m

    def side(self, mask: np.ndarray, left_value: int, right_value: int) -> None:
        self.put(mask & self.left, left_value)
        self.put(mask & ~self.left, right_value)


def _paint_parts(kit: FaceKit, paint: _Painter, L) -> None:
    """Steps 1-3, by material and vertex range: helper geometry dropped, eyeballs and sockets, the
    inner mouth."""
    F, mat = kit.faces, kit.face_material
    vr = kit.vertex_range

    def tri_in(name):
        return vr(name)[F].all(axis=1)

    # 1. helpers dropped
    helpers = np.isin(mat, [kit.material(n) for n in ("M_LacrimalFluid", "M_EyeBlend", "M_EyeOcclusion", "M_EyeLashes")])
    for name in ("lacrimal_fluid_left", "lacrimal_fluid_right", "eye_blend_left", "eye_blend_right",
                 "eye_occlusion_left", "eye_occlusion_right", "eyelashes_left", "eyelashes_right"):
        helpers |= tri_in(name)
    paint.put(helpers, DROP)
    # 2. eyes
    eyeball = np.isin(mat, [kit.material(n) for n in ("M_ScleraLeft", "M_IrisLeft", "M_ScleraRight", "M_IrisRight")])
    eyeball |= tri_in("eyeball_left") | tri_in("eyeball_right")
    sockets = tri_in("eye_socket_left") | tri_in("eye_socket_right")
    paint.side(eyeball | sockets, L("l_eye"), L("r_eye"))
    # 3. inner mouth
    mouth = np.isin(mat, [kit.material("M_Teeth"), kit.material("M_GumsTongue")])
    mouth |= tri_in("mouth_socket") | tri_in("teeth") | tri_in("gums_and_tongue")
    paint.put(mouth, L("mouth"))


def _brow_polygon(pts: np.ndarray, tail_first: bool) -> np.ndarray:
    """A band below the brow landmarks ``pts`` (5, 2) (which trace the upper brow edge), thinner at
    the tail; ``tail_first``: the first landmark is the brow's outer tail."""
    thick = np.array([0.030, 0.040, 0.045, 0.045, 0.042])
    if not tail_first:
        thick = thick[::-1]
    top = pts + np.array([0.0, 0.010])
    bottom = pts - np.stack([np.zeros(5), thick], axis=1)
    return np.vstack([top, bottom[::-1]])


def _nose_polygon(lm_uv: np.ndarray) -> np.ndarray:
    c = lm_uv[27, 0]
    return np.array([
        [c - 0.032, lm_uv[27, 1] + 0.012], [c + 0.032, lm_uv[27, 1] + 0.012],
        [c + 0.040, lm_uv[29, 1]], [lm_uv[35, 0] + 0.022, lm_uv[35, 1] + 0.045],
        [lm_uv[35, 0] + 0.030, lm_uv[35, 1] + 0.012], [lm_uv[35, 0] + 0.012, lm_uv[35, 1] - 0.008],
        [c, lm_uv[33, 1] - 0.006],
        [lm_uv[31, 0] - 0.012, lm_uv[31, 1] - 0.008], [lm_uv[31, 0] - 0.030, lm_uv[31, 1] + 0.012],
        [lm_uv[31, 0] - 0.022, lm_uv[31, 1] + 0.045], [c - 0.040, lm_uv[29, 1]],
    ])


def _paint_face_tile(kit: FaceKit, paint: _Painter, L, uv: np.ndarray) -> None:
    """Step 4, the face's UV tile: ears, neck below the jaw, eyelid openings, brows, nose, lips, skin."""
    face = (kit.face_material == kit.material("M_Face")) & (uv[:, 0] <= 1.0)
    lm_uv = landmark_uv(kit)
    # ears (ellipse around each UV island; mirrored for the left ear)
    uu = np.where(uv[:, 0] > 0.5, 1.0 - uv[:, 0], uv[:, 0])
    ear = ((uu - EAR_UV_CENTER[0]) / EAR_UV_AXES[0]) ** 2 + ((uv[:, 1] - EAR_UV_CENTER[1]) / EAR_UV_AXES[1]) ** 2 <= 1.0
    paint.side(face & ear, L("l_ear"), L("r_ear"))
    # neck below the jaw line
    jaw = np.vstack([[0.0, 0.42], [0.12, 0.42], lm_uv[4:13], [0.88, 0.42], [1.0, 0.42]])
    paint.put(face & (uv[:, 1] < _interp_polyline(uv[:, 0], jaw)), L("neck"))
    # eyes: eyelid opening polygons
    paint.side(face & (_in_polygon(uv, _grow(lm_uv[42:48], 1.08)) | _in_polygon(uv, _grow(lm_uv[36:42], 1.08))),
               L("l_eye"), L("r_eye"))
    # brows (17 is the right brow's outer tail, 26 the left brow's); the tips extended a little
    for ids, name in ((list(range(17, 22)), "r_brow"), (list(range(22, 27)), "l_brow")):
        poly = _brow_polygon(lm_uv[ids], tail_first=ids[0] == 17)
        paint.put(face & _in_polygon(uv, _grow(poly, 1.06)), L(name))
    paint.put(face & _in_polygon(uv, _nose_polygon(lm_uv)), L("nose"))
    # lips
    outer = lm_uv[48:60]
    upper_inner = lm_uv[[60, 61, 62, 63, 64]]
    lower_inner = lm_uv[[60, 67, 66, 65, 64]]
    split = 0.5 * (_interp_polyline(uv[:, 0], upper_inner) + _interp_polyline(uv[:, 0], lower_inner))
    in_lips = face & _in_polygon(uv, outer)
    paint.put(in_lips & (uv[:, 1] >= split), L("u_lip"))
    paint.put(in_lips & (uv[:, 1] < split), L("l_lip"))
    paint.put(face, L("skin"))


def _triangle_labels(kit: FaceKit) -> np.ndarray:
    L = get_scheme(SCHEME).index
    cent = kit.neutral[kit.faces].mean(axis=1)  # (F, 3) neutral centroids
    tri_uv = kit.uv[kit.face_uv].mean(axis=1)  # (F, 2) centroid UV
    paint = _Painter(kit.faces.shape[0], L("skin"), left=cent[:, 0] > 0.0)
    _paint_parts(kit, paint, L)
    _paint_face_tile(kit, paint, L, tri_uv)
    # 5. back-head tile: neck below a plane from the ear-lobe level to the nape
    back = ~paint.assigned
    y_cut = -2.5 + 0.30 * np.minimum(cent[:, 2], 0.0)  # -2.5 at z = 0, about -5.2 at the back (z = -9)
    paint.put(back & (cent[:, 1] < y_cut), L("neck"))
    paint.put(back, L("skin"))
    return paint.lab


def landmark_uv(kit: FaceKit | None = None) -> np.ndarray:
    """UV (68, 2) of the 68 landmark vertices (first corner occurrence in ``face_uv``)."""
    kit = kit or load_facekit()
    vuv = np.full((kit.num_vertices, 2), np.nan)
    # reversed so that the first occurrence wins
    vuv[kit.faces.ravel()[::-1]] = kit.uv[kit.face_uv.ravel()[::-1]]
    return vuv[kit.landmarks68]


def vertex_labels() -> np.ndarray:
    """Per-vertex class ids (N,) uint8: the label of the vertex's lowest-index incident drawn
    triangle; vertices used only by dropped helper triangles get :data:`DROP`."""
    kit = load_facekit()
    tl = triangle_labels()
    out = np.full(kit.num_vertices, DROP, dtype=np.uint8)
    order = np.arange(kit.faces.shape[0])[::-1]
    keep = tl[order] != DROP
    f = kit.faces[order][keep]
    lab = np.repeat(tl[order][keep], 3)
    out[f.ravel()] = lab
    return out
