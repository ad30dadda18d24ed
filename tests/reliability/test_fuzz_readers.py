"""Property-based fuzzing of the scene readers: canonical ``transforms.json``, the FaceScape
``params.json`` importer, the COLMAP text importer and the NeRSemble importer.

For any input they either return a valid result or raise :class:`LabelsplatError`; any other
exception type (KeyError, TypeError, IndexError, LinAlgError, ...) is a bug. Inputs are random
JSON / text, and valid documents with random parts replaced (which reach the deeper checks).
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelsplat.errors import LabelsplatError

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ----------------------------------------------------------------------------- strategies
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0, 1, -1, 0.0, 1e-300, 1e300, 48, 8, "", "0", "1", "nan", "images/view_000.png", "../x.png", "/etc/passwd"]),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(st.text(max_size=6), children, max_size=5)),
    max_leaves=20,
)


def _dump(obj) -> str:
    """JSON text; Python writes NaN/Infinity literals, which the readers must refuse cleanly."""
    return json.dumps(obj, allow_nan=True)


def _paths(obj, prefix=()):
    """Every (path) into a nested JSON document."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, data) -> object:
    """Replace, delete or duplicate a few random parts of a (deep-copied) valid document."""
    doc = json.loads(json.dumps(doc))
    for _ in range(data.draw(st.integers(1, 3), label="n_mutations")):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return data.draw(json_values)
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        action = data.draw(st.sampled_from(["replace", "delete", "scalar"]), label="action")
        last = path[-1]
        if action == "delete":
            if isinstance(parent, dict):
                del parent[last]
            else:
                parent.pop(last)
        elif action == "scalar":
            parent[last] = data.draw(scalars, label="scalar")
        else:
            parent[last] = data.draw(json_values, label="value")
    return doc


def _expect_ok_or_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except LabelsplatError as exc:
        assert str(exc)  # a readable message
        return None


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_scene) -> dict:
    """Valid documents of each format for the tiny scene's cameras, and a scratch folder."""
    from labelsplat.scene import load_scene
    from labelsplat.scene.importers.colmap import rotation_to_qvec

    root = tmp_path_factory.mktemp("fuzz")
    sc = load_scene(tiny_scene)
    frames = sc.frames[:3]
    imgs = root / "images"
    imgs.mkdir()
    fs, cams_txt, imgs_txt = {}, [], []
    w2c_ns = {}
    for i, f in enumerate(frames):
        c = f.camera
        shutil.copy(sc.path(f.file_path), imgs / f"{i}.png")
        shutil.copy(sc.path(f.file_path), imgs / f"cam_{100 + i}.png")
        K = [[c.fx, 0, c.cx - 0.5], [0, c.fy, c.cy - 0.5], [0, 0, 1]]
        fs.update({f"{i}_K": K, f"{i}_Rt": c.w2c_opencv[:3].tolist(), f"{i}_distortion": [0.0] * 5,
                   f"{i}_width": c.width, f"{i}_height": c.height, f"{i}_valid": True})
        cams_txt.append(f"{i + 1} PINHOLE {c.width} {c.height} {c.fx!r} {c.fy!r} {c.cx!r} {c.cy!r}")
        q = rotation_to_qvec(c.w2c_opencv[:3, :3])
        imgs_txt += [" ".join(map(str, [i + 1, *q.tolist(), *c.w2c_opencv[:3, 3].tolist(), i + 1, f"{i}.png"])), ""]
        w2c_ns[str(100 + i)] = c.w2c_opencv.tolist()
    c0 = frames[0].camera
    nersemble = {"world_2_cam": w2c_ns, "intrinsics": [[c0.fx, 0, c0.cx - 0.5], [0, c0.fy, c0.cy - 0.5], [0, 0, 1]]}
    transforms = json.loads((tiny_scene / "transforms.json").read_text())
    scene_dir = root / "scene"
    shutil.copytree(tiny_scene, scene_dir)
    return {"root": root, "images": imgs, "facescape": fs, "nersemble": nersemble, "transforms": transforms,
            "scene": scene_dir, "cameras_txt": "\n".join(cams_txt) + "\n", "images_txt": "\n".join(imgs_txt) + "\n"}


def _check_scene(scene) -> None:
    assert len(scene.frames) > 0
    for f in scene.frames:
        c = f.camera
        assert all(math.isfinite(v) for v in (c.fx, c.fy, c.cx, c.cy)) and c.fx > 0 and c.fy > 0
        assert c.width > 0 and c.height > 0 and np.isfinite(c.c2w).all()


def _check_views(views) -> None:
    for v in views:
        assert np.isfinite(np.asarray(v.K)).all() and np.isfinite(np.asarray(v.w2c)).all()


# ----------------------------------------------------------------------------- transforms.json
@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_fuzz_transforms_json(work, data):
    from labelsplat.scene import load_scene, validate_scene

    doc = data.draw(st.one_of(json_values, st.just("MUTATE")), label="doc")
    if doc == "MUTATE":
        doc = _mutate(work["transforms"], data)
    (work["scene"] / "transforms.json").write_text(_dump(doc))
    scene = _expect_ok_or_error(load_scene, work["scene"])
    if scene is not None:
        _check_scene(scene)
        _expect_ok_or_error(validate_scene, scene, check_label_ids=False)


names = st.one_of(st.text(max_size=12), st.sampled_from(["..", ".", "../../x", "/abs", "a/b", "a\\b", ".h", " x",
                                                           "scène 1", "x" * 250, "t\tab", ""]))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.sampled_from([0.0, 1e-6, 1e6, -1.0]))


def _rotation_like(data) -> list:
    """A valid camera-to-world matrix, perturbed (shear, scale, reflection, non-finite) or replaced by noise."""
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(data.draw(st.lists(st.floats(-3, 3), min_size=3, max_size=3))).as_matrix()
    m[:3, 3] = data.draw(st.lists(st.floats(-10, 10), min_size=3, max_size=3))
    how = data.draw(st.sampled_from(["keep", "perturb", "noise"]), label="matrix")
    if how == "perturb":
        i, j = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
        m[i, j] = m[i, j] + data.draw(floats) if data.draw(st.booleans()) else data.draw(floats)
    elif how == "noise":
        m = np.array(data.draw(st.lists(st.lists(floats, min_size=4, max_size=4), min_size=3, max_size=4)))
    return m.tolist()


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_fuzz_transforms_values(work, data):
    """Valid structure, random values where files are named and cameras placed: frame names, camera
    matrices and intrinsics. Accepted scenes have file-safe names, rotations and plausible fields of view."""
    from labelsplat.scene import load_scene
    from labelsplat.scene.format import FOV_RANGE_DEG, ROTATION_TOLERANCE
    from labelsplat.scene.paths import name_problem

    doc = json.loads(json.dumps(work["transforms"]))
    for fr in doc["frames"]:
        if data.draw(st.booleans(), label="new name"):
            fr["name"] = data.draw(names)
        fr["transform_matrix"] = _rotation_like(data)
        for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
            if data.draw(st.integers(0, 5), label=f"change {key}") == 0:
                fr[key] = data.draw(floats)
    (work["scene"] / "transforms.json").write_text(_dump(doc), encoding="utf-8", errors="surrogatepass")
    scene = _expect_ok_or_error(load_scene, work["scene"])
    if scene is None:
        return
    _check_scene(scene)
    for f in scene.frames:
        assert name_problem(f.name) is None, f.name
        R = f.camera.c2w[:3, :3]
        assert np.abs(R.T @ R - np.eye(3)).max() <= ROTATION_TOLERANCE and np.linalg.det(R) > 0
        for fl, size in ((f.camera.fx, f.camera.width), (f.camera.fy, f.camera.height)):
            assert FOV_RANGE_DEG[0] < math.degrees(2 * math.atan(size / (2 * fl))) < FOV_RANGE_DEG[1]


@settings(max_examples=15, **SETTINGS)
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_fuzz_transforms_text(work, text):
    from labelsplat.scene import load_scene

    (work["scene"] / "transforms.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    _expect_ok_or_error(load_scene, work["scene"])


# ----------------------------------------------------------------------------- FaceScape / NeRSemble
@settings(max_examples=50, **SETTINGS)
@given(data=st.data())
def test_fuzz_facescape(work, data):
    from labelsplat.scene.importers._common import ImportReport
    from labelsplat.scene.importers.facescape import read_facescape

    doc = data.draw(st.one_of(json_values, st.just("MUTATE")), label="doc")
    if doc == "MUTATE":
        doc = _mutate(work["facescape"], data)
    p = work["root"] / "params.json"
    p.write_text(_dump(doc))
    res = _expect_ok_or_error(read_facescape, p, work["images"], ImportReport("facescape", str(p)))
    if res is not None:
        _check_views(res[0])


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_fuzz_nersemble(work, data):
    from labelsplat.scene.importers._common import ImportReport
    from labelsplat.scene.importers.nersemble import read_nersemble

    doc = data.draw(st.one_of(json_values, st.just("MUTATE")), label="doc")
    if doc == "MUTATE":
        doc = _mutate(work["nersemble"], data)
    p = work["root"] / "camera_params.json"
    p.write_text(_dump(doc))
    res = _expect_ok_or_error(read_nersemble, p, work["images"], ImportReport("nersemble", str(p)))
    if res is not None:
        _check_views(res[0])


@settings(max_examples=12, **SETTINGS)
@given(data=st.data())
def test_fuzz_import_scene_end_to_end(work, data, tmp_path_factory):
    """The whole importer (reader + checks + head-frame estimate + writer) on mutated params.json:
    a scene or LabelsplatError, and never a partial output directory."""
    from labelsplat.scene import import_scene

    doc = _mutate(work["facescape"], data)
    p = work["root"] / "params.json"
    p.write_text(_dump(doc))
    out = work["root"] / "imported"
    if out.exists():
        shutil.rmtree(out)
    scene = _expect_ok_or_error(import_scene, "facescape", p, work["images"], out)
    if scene is None:
        assert not out.exists()
    else:
        _check_scene(scene)
    assert not [q for q in work["root"].iterdir() if q.name.startswith(".imported")]


# ----------------------------------------------------------------------------- COLMAP text
tokens = st.one_of(
    st.integers(-3, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "RADIAL", "FULL_OPENCV", "SIMPLE_RADIAL", "FOO", "nan",
                     "inf", "-inf", "0.png", "1.png", "#", "", "1e999"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Zs", "Cc"]), min_size=1, max_size=5),
)
lines = st.lists(st.lists(tokens, max_size=14).map(" ".join), max_size=6).map(lambda ls: "\n".join(ls) + "\n")


def _mutate_text(text: str, data) -> str:
    rows = [r.split(" ") for r in text.splitlines()]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(rows) - 1))
        action = data.draw(st.sampled_from(["token", "drop_token", "drop_line", "dup_line"]))
        if action == "token" and rows[i]:
            rows[i][data.draw(st.integers(0, len(rows[i]) - 1))] = data.draw(tokens)
        elif action == "drop_token" and rows[i]:
            rows[i].pop(data.draw(st.integers(0, len(rows[i]) - 1)))
        elif action == "drop_line" and len(rows) > 1:
            rows.pop(i)
        else:
            rows.insert(i, list(rows[i]))
    return "\n".join(" ".join(r) for r in rows) + "\n"


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_fuzz_colmap_text(work, data):
    from labelsplat.scene.importers._common import ImportReport
    from labelsplat.scene.importers.colmap import read_colmap

    model = work["root"] / "sparse"
    model.mkdir(exist_ok=True)
    which = data.draw(st.sampled_from(["cameras", "images", "both", "random"]), label="which")
    cams = work["cameras_txt"]
    imgs = work["images_txt"]
    if which in ("cameras", "both"):
        cams = _mutate_text(cams, data)
    if which in ("images", "both"):
        imgs = _mutate_text(imgs, data)
    if which == "random":
        cams, imgs = data.draw(lines, label="cameras.txt"), data.draw(lines, label="images.txt")
    (model / "cameras.txt").write_text(cams)
    (model / "images.txt").write_text(imgs)
    res = _expect_ok_or_error(read_colmap, model, work["images"], None, ImportReport("colmap", str(model)))
    if res is not None:
        _check_views(res[0])
