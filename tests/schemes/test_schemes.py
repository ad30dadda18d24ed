import numpy as np
import pytest

from labelsplat.errors import LabelsplatError
from labelsplat.schemes import (
    BUILTIN_SCHEMES,
    IGNORE_COLOR,
    LabelScheme,
    colorize,
    conversion_report,
    conversion_table,
    convert_labels,
    flip_labels,
    get_scheme,
    list_schemes,
    overlay,
    palette_to_labels,
    register_scheme,
)

NAMES = ["celebamask19-zll", "celebamask-hq", "celebamask-hq-facer", "lapa11"]
NINETEEN = ["celebamask19-zll", "celebamask-hq", "celebamask-hq-facer"]


def test_builtins_listed_and_well_formed():
    assert list_schemes()[:4] == NAMES
    for s in BUILTIN_SCHEMES:
        assert s.ignore_index == 255
        assert s.palette_array().shape == (s.num_classes, 3) and s.palette_array().dtype == np.uint8
        assert IGNORE_COLOR not in s.palette
        assert s.classes[0] == "background"
        lut = s.flip_permutation()
        assert lut.shape == (256,) and lut.dtype == np.uint8 and lut[255] == 255
        assert (lut[lut] == np.arange(256)).all()  # an involution


def test_zll_order_and_convention():
    s = get_scheme("celebamask19-zll")
    assert s.classes == ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
                         "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
    assert s.lr_convention == "subject"
    assert set(s.flip_pairs) == {(2, 3), (4, 5), (7, 8)}
    assert s.index("hair") == 17


def test_third_party_orders():
    camhq = get_scheme("celebamask-hq")
    assert camhq.classes[1:] == ("skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
                                 "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
    lapa = get_scheme("lapa11")
    assert lapa.classes == ("background", "face", "rb", "lb", "re", "le", "nose", "ulip", "imouth", "llip", "hair")
    facer = get_scheme("celebamask-hq-facer")
    assert facer.num_classes == 19 and facer.classes[4] == "rr"
    for s in (camhq, lapa, facer):
        assert s.lr_convention == "unknown"
    assert lapa.index("skin") == lapa.index("face") == 1 and lapa.index("lb") == 3
    assert lapa.concept_index("l_brow") == 2  # LaPa's own "left eyebrow", facer's "rb"
    assert lapa.index("l_brow") == 2  # names first, then concepts
    with pytest.raises(LabelsplatError):
        lapa.concept_index("hat")


def test_unknown_scheme_error_lists_known():
    with pytest.raises(LabelsplatError) as e:
        get_scheme("pascal")
    assert "pascal" in str(e.value) and "celebamask19-zll" in str(e.value) and "lapa11" in str(e.value)


def test_register_and_validation(monkeypatch):
    import labelsplat.schemes as mod

    monkeypatch.setattr(mod, "_REGISTRY", dict(mod._REGISTRY))  # keep the global registry clean
    s = LabelScheme(name="test-3", classes=("background", "l_eye", "r_eye"), palette=((0, 0, 0), (1, 2, 3), (4, 5, 6)),
                    flip_pairs=((1, 2),), lr_convention="image")
    register_scheme(s)
    assert get_scheme("test-3") is s and "test-3" in list_schemes()
    other = LabelScheme(name="test-3", classes=("background", "x"), palette=((0, 0, 0), (9, 9, 9)),
                        flip_pairs=(), lr_convention="subject")
    with pytest.raises(LabelsplatError):
        register_scheme(other)
    with pytest.raises(LabelsplatError):
        LabelScheme(name="bad", classes=("a", "b"), palette=((0, 0, 0),), flip_pairs=(), lr_convention="subject")
    with pytest.raises(LabelsplatError):
        LabelScheme(name="bad", classes=("a", "b"), palette=((0, 0, 0), (1, 1, 1)), flip_pairs=((0, 5),),
                    lr_convention="subject")
    with pytest.raises(LabelsplatError):
        LabelScheme(name="bad", classes=("a",), palette=((0, 0, 0),), flip_pairs=(), lr_convention="left")


@pytest.mark.parametrize("a", NINETEEN)
@pytest.mark.parametrize("b", NINETEEN)
def test_nineteen_class_round_trip_lossless(a, b):
    x = np.arange(19, dtype=np.uint8).reshape(1, 19).repeat(2, 0)
    x[1, 3] = 255
    y = convert_labels(x, a, b)
    assert y.dtype == np.uint8 and (y[1, 3] == 255)
    assert np.array_equal(convert_labels(y, b, a), x)
    kinds = {r["kind"] for r in conversion_report(a, b)}
    assert kinds == {"exact"}


@pytest.mark.parametrize("b", NINETEEN)
def test_lapa_round_trip_lossless(b):
    x = np.append(np.arange(11, dtype=np.uint8), 255)
    assert np.array_equal(convert_labels(convert_labels(x, "lapa11", b), b, "lapa11"), x)


def test_conversion_by_meaning_examples():
    zll, camhq = get_scheme("celebamask19-zll"), get_scheme("celebamask-hq")
    t = conversion_table(zll, camhq)
    for name in zll.classes:
        assert t[zll.index(name)] == camhq.index(name)
    # facer's 'rr' holds CelebAMask-HQ's l_ear masks (provenance), not a literal "right ear"
    facer = get_scheme("celebamask-hq-facer")
    assert conversion_table(facer, camhq)[facer.index("rr")] == camhq.index("l_ear")
    assert conversion_table(facer, camhq)[facer.index("llip")] == camhq.index("l_lip")


def test_nineteen_to_lapa_merges_documented():
    zll, lapa = get_scheme("celebamask19-zll"), get_scheme("lapa11")
    x = np.arange(19, dtype=np.uint8)
    y = convert_labels(x, zll, lapa)
    expect = {"background": 0, "skin": 1, "l_brow": 2, "r_brow": 3, "l_eye": 4, "r_eye": 5, "nose": 6, "u_lip": 7,
              "mouth": 8, "l_lip": 9, "hair": 10, "neck": 0, "neck_l": 0, "cloth": 0, "hat": 0,
              "eye_g": 255, "l_ear": 1, "r_ear": 1, "ear_r": 255}
    for name, want in expect.items():
        assert y[zll.index(name)] == want, name
    rows = {r["src_class"]: r for r in conversion_report(zll, lapa)}
    assert rows["neck"]["kind"] == "merged" and rows["neck"]["reason"]
    assert rows["eye_g"]["kind"] == "ignored" and rows["eye_g"]["reason"]


def test_lr_swap_only_when_conventions_known_and_differ():
    zll, lapa = get_scheme("celebamask19-zll"), get_scheme("lapa11")
    x = np.array([2, 3, 4, 5], np.uint8)  # LaPa: left brow, right brow, left eye, right eye
    # unknown convention -> taken at face value
    assert convert_labels(x, lapa, zll).tolist() == [2, 3, 4, 5]
    # LaPa measured as image-left: its left brow is the subject's right brow
    assert convert_labels(x, lapa, zll, src_lr="image").tolist() == [3, 2, 5, 4]
    assert convert_labels(x, lapa, zll, src_lr="subject").tolist() == [2, 3, 4, 5]
    back = convert_labels(convert_labels(x, lapa, zll, src_lr="image"), zll, lapa, dst_lr="image")
    assert back.tolist() == x.tolist()
    with pytest.raises(LabelsplatError):
        convert_labels(x, lapa, zll, src_lr="sideways")


def test_convert_rejects_ids_outside_source():
    with pytest.raises(LabelsplatError) as e:
        convert_labels(np.array([[0, 11]], np.uint8), "lapa11", "celebamask19-zll")
    assert "11" in str(e.value)


def test_flip_swaps_pairs_and_mirrors():
    s = get_scheme("celebamask19-zll")
    x = np.array([[2, 0, 4, 7, 255, 17]], np.uint8)
    y = flip_labels(x, s)
    assert y.tolist() == [[17, 255, 8, 5, 0, 3]]
    assert np.array_equal(flip_labels(y, s), x)
    batch = np.stack([x, x[:, ::-1]])
    yb = flip_labels(batch, s)
    assert yb.shape == (2, 1, 6) and np.array_equal(yb[0], y)


def test_flip_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    s = get_scheme("lapa11")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, size=(2, 5, 7)).astype(np.uint8)
    x[0, 0, 0] = 255
    t = flip_labels(torch.from_numpy(x).long(), s)
    assert t.dtype == torch.long
    assert np.array_equal(t.numpy(), flip_labels(x, s).astype(np.int64))


def test_colorize_overlay_palette_round_trip():
    s = get_scheme("celebamask19-zll")
    lab = np.arange(20, dtype=np.uint8).reshape(4, 5) % 19
    lab[0, 0] = 255
    col = colorize(lab, s)
    assert col.shape == (4, 5, 3) and col.dtype == np.uint8
    assert tuple(col[0, 0]) == IGNORE_COLOR and tuple(col[0, 1]) == s.palette[1]
    assert np.array_equal(palette_to_labels(col, s), lab)
    noisy = np.clip(col.astype(int) + np.random.default_rng(1).integers(-8, 9, col.shape), 0, 255).astype(np.uint8)
    assert np.array_equal(palette_to_labels(noisy, s), lab)
    rgb = np.full((4, 5, 3), 100, np.uint8)
    ov = overlay(rgb, lab, s, alpha=0.5)
    assert ov.dtype == np.uint8 and tuple(ov[0, 0]) == (100, 100, 100)  # ignore leaves the image
    expect = np.rint(0.5 * 100 + 0.5 * np.asarray(s.palette[1], float))
    assert tuple(ov[0, 1]) == tuple(expect.astype(np.uint8))
    assert np.array_equal(overlay(rgb, lab, s, alpha=0.0), rgb)
    with pytest.raises(LabelsplatError):
        overlay(rgb, lab[:3], s)
