import numpy as np

from labelsplat.schemes import get_scheme
from labelsplat.synth.asset import load_facekit
from labelsplat.synth.regions import DROP, triangle_labels, vertex_labels

S = get_scheme("celebamask19-zll")


def test_topology_labels_cover_every_vertex():
    kit = load_facekit()
    tl = triangle_labels()
    assert tl.shape == (kit.faces.shape[0],)
    drawn = tl != DROP
    assert np.all(tl[drawn] < S.num_classes)
    vl = vertex_labels()
    used_by_drawn = np.zeros(kit.num_vertices, bool)
    used_by_drawn[kit.faces[drawn].ravel()] = True
    # every vertex of a drawn triangle has a class; the rest belong only to dropped helper meshes
    assert np.all(vl[used_by_drawn] < S.num_classes)
    assert np.all(vl[~used_by_drawn] == DROP)
    helpers = np.zeros(kit.num_vertices, bool)
    for name in ("lacrimal_fluid_left", "lacrimal_fluid_right", "eye_blend_left", "eye_blend_right",
                 "eye_occlusion_left", "eye_occlusion_right", "eyelashes_left", "eyelashes_right"):
        helpers |= kit.vertex_range(name)
    assert np.all(helpers[~used_by_drawn])
    # every vertex of the model is referenced by some triangle
    assert np.unique(kit.faces).size == kit.num_vertices


def test_every_mesh_class_present_and_on_the_right_side():
    kit = load_facekit()
    tl = triangle_labels()
    cent = kit.neutral[kit.faces].mean(axis=1)
    for name in ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "l_ear", "r_ear", "nose", "mouth",
                 "u_lip", "l_lip", "neck"):
        assert (tl == S.index(name)).sum() > 50, name
    for l, r in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
        assert np.all(cent[tl == S.index(l), 0] > 0), l  # +x is the subject's left
        assert np.all(cent[tl == S.index(r), 0] < 0), r
    # the upper lip is above the lower lip, the nose tip landmark is nose, the chin is skin
    assert cent[tl == S.index("u_lip"), 1].mean() > cent[tl == S.index("l_lip"), 1].mean()
    lm = kit.landmarks68
    tri_of = lambda v: np.nonzero((kit.faces == v).any(axis=1))[0]  # noqa: E731
    assert np.all(tl[tri_of(lm[30])] == S.index("nose"))
    assert np.all(tl[tri_of(lm[8])] == S.index("skin")) or np.any(tl[tri_of(lm[8])] == S.index("skin"))
