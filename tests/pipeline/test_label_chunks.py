"""Labelling novel views in chunks gives exactly what one chunk gives (memory bound, same result)."""

import numpy as np


def test_chunked_labelling_equals_single_chunk(refined, synth_scene):
    from labelsplat.config import preset, with_overrides
    from labelsplat.pipeline import label_novel_views
    from labelsplat.scene import load_scene, yaw_pitch
    from labelsplat.splat import load_run

    scene = load_scene(synth_scene)
    run = load_run(refined / "scenes" / "head_000" / "run", "cpu")
    cams = load_scene(refined / "dataset").cameras
    yaws = np.array([yaw_pitch(c.center, scene.head_frame)[0] for c in cams])
    out = {}
    for chunk in (len(cams), 2):
        cfg = with_overrides(preset("micro"), label_chunk=chunk, render_batch=3, device="cpu")
        rendered, labels, report = label_novel_views(run, scene, cams, cfg, yaws=yaws, timings={},
                                                     keep_logits=(chunk == 2))
        out[chunk] = (rendered, labels, report)
    (r1, l1, p1), (r2, l2, p2) = out[len(cams)], out[2]
    assert np.array_equal(l1, l2)
    assert [v.index for v in p2.views] == list(range(len(cams)))
    assert np.array_equal(p1.accepted, p2.accepted)
    for i, (a, b) in enumerate(zip(r1, r2)):
        assert np.array_equal(a["raw_labels"], b["raw_labels"])
        assert np.array_equal(a["low_visibility"], b["low_visibility"])
        assert a["low_visibility"].dtype == bool and a["low_visibility"].shape == a["alpha"].shape
        assert (l1[i][a["low_visibility"]] == 255).all()  # post-processing marks them unknown
        np.testing.assert_allclose(a["confidence"], b["confidence"], atol=1e-6)
        assert "logits" not in a and b["logits"].shape[:2] == b["alpha"].shape
