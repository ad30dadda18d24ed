import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.scene import look_at
from labelsplat.synth.raster import rasterize, rasterize_reference
from labelsplat.synth.render import rasterize_head


def test_pixel_centre_coverage_is_exact():
    # an axis-aligned square from u = 10 to 20, v = 5 to 8 at depth 2: pixel centres 10.5 .. 19.5
    uv = np.array([[10.0, 5.0], [20.0, 5.0], [20.0, 8.0], [10.0, 8.0]])
    z = np.full(4, 2.0)
    tri, depth, bary = rasterize(uv, z, np.array([[0, 1, 2], [0, 2, 3]]), 32, 16)
    cols = np.nonzero((tri >= 0).any(axis=0))[0]
    rows = np.nonzero((tri >= 0).any(axis=1))[0]
    assert cols.tolist() == list(range(10, 20))
    assert rows.tolist() == [5, 6, 7]
    assert np.allclose(depth[tri >= 0], 2.0)
    assert np.allclose(bary[tri >= 0].sum(axis=1), 1.0)
    # shifting the square by 0.49 px keeps the same pixels; by 0.51 px moves them
    tri2, _, _ = rasterize(uv + 0.49, z, np.array([[0, 1, 2], [0, 2, 3]]), 32, 16)
    assert np.array_equal(tri2 >= 0, tri >= 0)
    tri3, _, _ = rasterize(uv + 0.51, z, np.array([[0, 1, 2], [0, 2, 3]]), 32, 16)
    assert np.nonzero((tri3 >= 0).any(axis=0))[0].tolist() == list(range(11, 21))


def test_rasteriser_agrees_with_brute_force_ray_casting():
    rng = np.random.default_rng(5)
    verts = rng.uniform(-1.0, 1.0, (30, 3))
    faces = np.arange(30).reshape(10, 3)
    cam = look_at([0.3, 0.2, 6.0], [0, 0, 0], [0, 1, 0], 70.0, 70.0, 64, 48, cx=31.7, cy=24.2)
    uv, z = cam.project(verts)
    tri, depth, _ = rasterize(uv, z, faces, cam.width, cam.height)
    origin, dirs = cam.pixel_rays()
    ref_tri, ref_depth = rasterize_reference(origin, dirs, verts, faces, cam.forward)
    agree = tri == ref_tri
    assert (tri >= 0).sum() > 200  # the triangles cover a good part of the image
    assert len(np.unique(tri[tri >= 0])) >= 6  # and several of them are visible
    assert agree.mean() > 0.998  # only pixel centres on an edge may differ (floating point)
    both = (tri >= 0) & (ref_tri >= 0) & agree
    assert np.allclose(depth[both], ref_depth[both], rtol=1e-6, atol=1e-6)


def test_projected_point_lands_on_its_pixel(head_mesh, frontal):
    """The surface point the rasteriser shows at pixel (i, j) projects to that pixel's centre."""
    cam, r = frontal
    ys, xs = np.nonzero(r.tri_id >= 0)
    assert ys.size > 1000
    sel = np.arange(0, ys.size, 37)
    t = r.tri_id[ys[sel], xs[sel]]
    _, _, bary = rasterize_head(head_mesh, cam)
    w = bary[ys[sel], xs[sel]]
    pts = (head_mesh.vertices[head_mesh.faces[t]] * w[..., None]).sum(axis=1)
    uv, z = cam.project(pts)
    assert np.all(np.floor(uv[:, 0]) == xs[sel]) and np.all(np.floor(uv[:, 1]) == ys[sel])
    assert np.allclose(uv, np.stack([xs[sel] + 0.5, ys[sel] + 0.5], axis=1), atol=1e-6)
    assert np.allclose(z, r.depth[ys[sel], xs[sel]], rtol=1e-5)


def test_bad_input_is_reported():
    with pytest.raises(LabelsplatError):
        rasterize(np.zeros((3, 3)), np.ones(3), np.array([[0, 1, 2]]), 8, 8)
    with pytest.raises(LabelsplatError):
        rasterize(np.zeros((3, 2)), np.ones(3), np.array([[0, 1, 5]]), 8, 8)
    with pytest.raises(LabelsplatError):
        rasterize(np.zeros((3, 2)), np.ones(3), np.array([[0, 1, 2]]), 0, 8)
