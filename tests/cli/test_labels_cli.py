import numpy as np
from PIL import Image

from labelsplat.io import read_label, write_png
from labelsplat.schemes import convert_labels


def _labels(folder, n=3, classes=19, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i in range(n):
        a = rng.integers(0, classes, size=(6, 8)).astype(np.uint8)
        a[0, 0] = 255
        write_png(folder / f"view_{i:03d}.png", a)
        arrays[f"view_{i:03d}.png"] = a
    return arrays


def test_convert_round_trip_folder(cli, tmp_path):
    src = _labels(tmp_path / "zll")
    r = cli("labels", "convert", tmp_path / "zll", tmp_path / "camhq", "--from", "celebamask19-zll", "--to", "celebamask-hq")
    assert r.exit_code == 0, r.output
    assert "converted 3 label maps" in r.output and "lossless" in r.output
    for name, a in src.items():
        with Image.open(tmp_path / "camhq" / name) as im:
            assert im.mode == "L"
        assert np.array_equal(read_label(tmp_path / "camhq" / name), convert_labels(a, "celebamask19-zll", "celebamask-hq"))
    r = cli("labels", "convert", tmp_path / "camhq", tmp_path / "back", "--from", "celebamask-hq", "--to", "celebamask19-zll")
    assert r.exit_code == 0, r.output
    for name, a in src.items():
        assert np.array_equal(read_label(tmp_path / "back" / name), a)
    # an existing output is refused without --overwrite, replaced with it
    r = cli("labels", "convert", tmp_path / "camhq", tmp_path / "back", "--from", "celebamask-hq", "--to", "celebamask19-zll")
    assert r.exit_code == 2 and "already exists" in r.output
    r = cli("labels", "convert", tmp_path / "camhq", tmp_path / "back", "--from", "celebamask-hq", "--to",
            "celebamask19-zll", "--overwrite")
    assert r.exit_code == 0, r.output


def test_convert_to_lapa_reports_merges_and_lr(cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_png(folder / "a.png", np.array([[14, 6, 2, 255]], np.uint8))  # neck, eye_g, l_brow, ignore
    r = cli("labels", "convert", folder, tmp_path / "out", "--from", "celebamask19-zll", "--to", "lapa11")
    assert r.exit_code == 0, r.output
    assert read_label(tmp_path / "out" / "a.png").tolist() == [[0, 255, 2, 255]]
    assert "merged" in r.output and "ignored" in r.output and "face value" in r.output
    r = cli("labels", "convert", folder, tmp_path / "out2", "--from", "celebamask19-zll", "--to", "lapa11",
            "--dst-lr", "image")
    assert r.exit_code == 0, r.output
    assert read_label(tmp_path / "out2" / "a.png").tolist() == [[0, 255, 3, 255]] and "swapped" in r.output


def test_unknown_scheme_is_a_clean_error(cli, tmp_path):
    _labels(tmp_path / "in", n=1)
    r = cli("labels", "convert", tmp_path / "in", tmp_path / "out", "--from", "pascal-voc", "--to", "lapa11")
    assert r.exit_code == 2
    assert "unknown label scheme 'pascal-voc'" in r.output and "celebamask19-zll" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "out").exists()
    r = cli("labels", "convert", tmp_path / "in", tmp_path / "out", "--from", "lapa11", "--to", "lapa11",
            "--src-lr", "sideways")
    assert r.exit_code == 2 and "--src-lr" in r.output


def test_ids_outside_source_scheme_write_nothing(cli, tmp_path):
    _labels(tmp_path / "in", n=2, classes=19)  # ids up to 18 are not LaPa ids
    r = cli("labels", "convert", tmp_path / "in", tmp_path / "out", "--from", "lapa11", "--to", "celebamask19-zll")
    assert r.exit_code == 2 and "view_000.png" in r.output and "outside" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_schemes_listing(cli):
    r = cli("labels", "schemes")
    assert r.exit_code == 0
    for name in ("celebamask19-zll", "celebamask-hq", "celebamask-hq-facer", "lapa11"):
        assert name in r.output
    r = cli("labels", "schemes", "lapa11")
    assert r.exit_code == 0 and "imouth" in r.output
    r = cli("labels", "schemes", "nope")
    assert r.exit_code == 2 and "unknown label scheme" in r.output


def test_help_has_examples(cli):
    for args in (("labels", "convert", "--help"), ("labels", "schemes", "--help")):
        r = cli(*args)
        assert r.exit_code == 0 and "Examples" in r.output and "labelsplat labels" in r.output


def test_convert_colour_coded_inputs(cli, tmp_path):
    from labelsplat.schemes import colorize

    folder = tmp_path / "col"
    folder.mkdir()
    lab = np.array([[0, 1, 17, 255], [2, 3, 10, 14]], np.uint8)
    rgb = colorize(lab, "celebamask19-zll")
    rgb[0, 0] = (3, 2, 1)  # near black (background)
    write_png(folder / "a.png", rgb)
    r = cli("labels", "convert", folder, tmp_path / "ids", "--from", "celebamask19-zll", "--to", "celebamask19-zll",
            "--colors")
    assert r.exit_code == 0, r.output
    assert np.array_equal(read_label(tmp_path / "ids" / "a.png"), lab)
    assert "1 pixels were not an exact palette colour" in r.output
    # without --colors an RGB input is refused with a hint
    r = cli("labels", "convert", folder, tmp_path / "ids2", "--from", "celebamask19-zll", "--to", "lapa11")
    assert r.exit_code == 2 and "single-channel" in r.output
