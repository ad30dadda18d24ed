"""The semantic heads: channels, background, initial features, decoding, accuracy, PLY columns, state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.extract import extract_palette
from labelsplat.scene import look_at
from labelsplat.schemes import get_scheme
from labelsplat.splat import EmptyHead, GaussianModel, LogitsHead, PaletteHead, make_head, render_model
from labelsplat.config import fit_preset as make_config
from labelsplat.splat.heads import HEADS, head_from_state, palette_sigma
from labelsplat.splat.semantic_loss import CrossEntropy, GeneralizedCE, NoSemanticLoss, NoiseCorrected, PaletteL1

SCHEME = "celebamask19-zll"
PAL = get_scheme(SCHEME).palette_array().astype(np.float32) / 255.0


def test_make_head_follows_the_config():
    h = make_head(make_config("micro"), SCHEME, 19, "cpu")
    assert isinstance(h, LogitsHead) and h.channels == 19 and h.key == "logits"
    assert isinstance(h.semantic_loss, CrossEntropy)
    assert h.init_logit == make_config("micro").init_logit
    assert isinstance(make_head(make_config("micro", semantic_loss="gce:0.5"), SCHEME, 19, "cpu").semantic_loss,
                      GeneralizedCE)
    noisy = make_head(make_config("micro", label_noise="em"), SCHEME, 19, "cpu")
    assert isinstance(noisy.semantic_loss, NoiseCorrected)
    p = make_head(make_config("micro", semantic_target="palette"), SCHEME, 19, "cpu")
    assert isinstance(p, PaletteHead) and p.channels == 3 and p.key == "seg_rgb"
    assert isinstance(p.semantic_loss, PaletteL1)
    np.testing.assert_array_equal(p.palette.numpy(), PAL)
    e = make_head(make_config("micro", semantic_target="palette"), SCHEME, 0, "cpu")
    assert isinstance(e, EmptyHead) and e.channels == 0 and e.target == "palette"
    assert isinstance(e.semantic_loss, NoSemanticLoss)
    with pytest.raises(LabelsplatError, match="palette has 19 colours for 11 classes"):
        make_head(make_config("micro", semantic_target="palette"), SCHEME, 11, "cpu")
    assert set(HEADS) == {"logits", "palette"}


def test_background_and_initial_features():
    lab = np.array([0, 3, -1, 18, 40])
    lh, ph, eh = LogitsHead(19, init_logit=2.5), PaletteHead(PAL), EmptyHead()
    bg = torch.full((2, 19), 7.0)
    lh.fill_background(bg, 10.0)
    assert torch.equal(bg[:, 0], torch.full((2,), 10.0)) and (bg[:, 1:] == 7.0).all()
    bg = torch.zeros(2, 3)
    ph.fill_background(bg, 10.0)
    assert torch.equal(bg, torch.tensor(PAL[[0, 0]]))
    f = lh.init_features(lab, 5, "cpu")
    assert f.shape == (5, 19) and f[1, 3] == 2.5 and f[3, 18] == 2.5 and f[2].abs().sum() == 0 and f[4].abs().sum() == 0
    g = ph.init_features(lab, 5, "cpu")
    assert torch.equal(g[[0, 1, 3]], torch.tensor(PAL[[0, 3, 18]])) and (g[[2, 4]] == 0.5).all()
    assert eh.init_features(lab, 5, "cpu").shape == (5, 0)
    assert lh.init_features(None, 2, "cpu").abs().sum() == 0


def test_decode_and_accuracy():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 19) * 3
    d = LogitsHead(19).decode(logits)
    assert d.labels.dtype == torch.uint8 and torch.equal(d.labels.long(), logits.argmax(-1))
    assert torch.allclose(d.confidence, torch.softmax(logits, -1).max(-1).values)
    target = logits.argmax(-1)
    target[0, 0, 0] = 255
    assert LogitsHead(19).accuracy(logits, target) == 1.0 == LogitsHead(19).view_accuracy(logits, d, target)
    # the palette head decodes exactly as extract_palette(method="nearest")
    seg = torch.rand(3, 6, 7, 3)
    seg[0, 0, 0] = torch.tensor(PAL[5]) + 0.01
    ph = PaletteHead(PAL)
    pd = ph.decode(seg)
    ex = extract_palette(seg, SCHEME, "nearest")
    assert np.array_equal(pd.labels.numpy(), ex.labels) and np.array_equal(pd.confidence.numpy(), ex.confidence)
    assert int(pd.labels[0, 0, 0]) == 5 and ph.sigma == palette_sigma(PAL)
    lab = pd.labels.long()
    assert ph.accuracy(seg, lab) == 1.0 and ph.view_accuracy(seg[:1], ph.decode(seg[:1]), lab[:1]) == 1.0
    with pytest.raises(LabelsplatError, match="NaN"):
        ph.decode(torch.full((1, 2, 2, 3), float("nan")))
    assert EmptyHead().decode(torch.zeros(1, 2, 2, 0)) is None and EmptyHead().accuracy(None, None) is None
    assert torch.equal(ph.for_output(torch.tensor([[-0.5, 0.5, 1.5]])), torch.tensor([[0.0, 0.5, 1.0]]))
    assert set(ph.images(seg[0])) == {"seg_rgb"} and LogitsHead(19).images(logits[0]) == {}


def test_ply_columns_and_state():
    sem = np.random.default_rng(0).normal(size=(4, 19))
    cols = LogitsHead(19).ply_columns(sem)
    assert [c[0] for c in cols] == ["label"] + [f"sem_{i}" for i in range(19)]
    np.testing.assert_array_equal(cols[0][1], sem.argmax(1))
    pcols = PaletteHead(PAL).ply_columns(PAL[[2, 7, 0]].astype(np.float64) + 0.01)
    assert [c[0] for c in pcols] == ["label", "seg_r", "seg_g", "seg_b"] and list(pcols[0][1]) == [2, 7, 0]
    assert EmptyHead().ply_columns(sem[:, :0]) == []
    assert LogitsHead(19).state_dict() == {} and EmptyHead().state_dict() == {}
    assert EmptyHead("palette").state_dict() == {"semantic_target": "palette", "palette": None}
    st = PaletteHead(PAL).state_dict()
    assert st["semantic_target"] == "palette" and torch.equal(st["palette"], torch.tensor(PAL))
    assert isinstance(head_from_state({"num_classes": 19}, "cpu"), LogitsHead)  # old states: logits
    back = head_from_state({"num_classes": 19, **st}, "cpu")
    assert isinstance(back, PaletteHead) and torch.equal(back.palette, torch.tensor(PAL))
    assert head_from_state({"num_classes": 0, "semantic_target": "palette", "palette": None}, "cpu").target == "palette"
    with pytest.raises(LabelsplatError, match="semantic_target"):
        head_from_state({"num_classes": 19, "semantic_target": "colours"}, "cpu")
    with pytest.raises(LabelsplatError, match="expected \\(5, 3\\)"):
        head_from_state({"num_classes": 5, **st}, "cpu")


def test_render_model_takes_channels_and_background_from_the_head():
    rng = np.random.default_rng(0)
    cam = look_at([0.0, 0.0, 4.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], 20.0, 20.0, 16, 16)
    away = look_at([0.0, 0.0, 4.0], [0.0, 0.0, 8.0], [0.0, 1.0, 0.0], 20.0, 20.0, 16, 16)
    pts, cols, lab = rng.normal(size=(30, 3)) * 0.3, rng.uniform(size=(30, 3)), rng.integers(0, 19, size=30)
    heads = ((LogitsHead(19), "logits", 19), (PaletteHead(PAL), "seg_rgb", 3), (EmptyHead(), "logits", 0))
    for head, key, channels in heads:
        m = GaussianModel.from_points(pts, cols, lab, sh_degree=0, num_classes=head.num_classes, head=head)
        out = render_model(m, [cam, away], bg_logit=6.0)
        assert out[key].shape == (2, 16, 16, channels)
        empty = out[key][1]  # nothing in view: the head's background
        if channels:
            bg = torch.zeros(1, channels)
            head.fill_background(bg, 6.0)
            assert torch.allclose(empty, bg[0].expand_as(empty))
