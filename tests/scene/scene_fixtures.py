"""Writers of small synthetic calibration files in the three import formats (test fixtures).

No real FaceScape / COLMAP / NeRSemble files are available, so these follow the formats as
documented (FaceScape doc/doc_mview_model.md, COLMAP's "Output Format" page, the NeRSemble
loaders' ``camera_params.json``). Cameras come from :func:`labelsplat.scene.look_at` around a
non-trivial head frame in millimetre-like units; OpenCV-convention files get cx, cy - 0.5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from labelsplat.scene import Camera, HeadFrame, look_at


def _num(x) -> str:
    return repr(float(x))


def rotation(axis, deg) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.radians(deg) * np.asarray(axis, float) / np.linalg.norm(axis)).as_matrix()


#: a head frame that is neither axis-aligned nor at the origin
HEAD = HeadFrame(
    center=[12.0, -30.0, 480.0],
    up=rotation([1, 0.3, 0.2], 25) @ [0, 1, 0],
    forward=rotation([1, 0.3, 0.2], 25) @ [0, 0, 1],
)


def head_dir(yaw: float, pitch: float) -> np.ndarray:
    """Unit direction in head axes (x left, y up, z forward) for yaw/pitch in degrees (docs/design.md)."""
    y, p = np.radians(yaw), np.radians(pitch)
    return np.array([np.cos(p) * np.sin(y), np.sin(p), np.cos(p) * np.cos(y)])


def make_rig(
    yaws=(-70, -35, 0, 35, 70), pitches=(-20, 0, 20), head: HeadFrame = HEAD, radius=600.0,
    width=48, height=40, f=55.0,
) -> list[Camera]:
    """Cameras on a sphere around ``head`` looking at its centre, image up = head up."""
    cams = []
    for p in pitches:
        for y in yaws:
            pos = head.to_world((head_dir(y, p) * radius)[None])[0]
            cams.append(look_at(pos, head.center, head.up, f, f * 1.02, width, height, cx=width / 2 + 0.7, cy=height / 2 - 0.4))
    return cams


def random_image(rng, cam: Camera) -> np.ndarray:
    return rng.integers(0, 256, size=(cam.height, cam.width, 3), dtype=np.uint8)


def random_label(rng, cam: Camera, num_classes=19) -> np.ndarray:
    lbl = rng.integers(0, num_classes, size=(cam.height, cam.width)).astype(np.uint8)
    lbl[0, :3] = 255
    return lbl


def save(path: Path, arr: np.ndarray, quality: int = 95) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(arr).save(path, quality=quality)
    else:
        Image.fromarray(arr).save(path)
    return path


def write_labels(folder: Path, names, cams, seed=1) -> Path:
    rng = np.random.default_rng(seed)
    for n, c in zip(names, cams):
        save(folder / f"{n}.png", random_label(rng, c))
    return folder


def opencv_K(cam: Camera) -> list[list[float]]:
    return [[cam.fx, 0.0, cam.cx - 0.5], [0.0, cam.fy, cam.cy - 0.5], [0.0, 0.0, 1.0]]


def write_facescape(folder: Path, cams, *, dist=None, invalid=(), flat_k=False, ext=".jpg", seed=0) -> Path:
    """``folder/params.json`` and ``folder/{i}{ext}``; returns params.json."""
    rng = np.random.default_rng(seed)
    params: dict = {}
    for i, c in enumerate(cams):
        K = opencv_K(c)
        params[f"{i}_K"] = list(np.ravel(K)) if flat_k else K
        params[f"{i}_Rt"] = c.w2c_opencv[:3].tolist()
        params[f"{i}_distortion"] = list(dist) if dist is not None else [0.0] * 5
        params[f"{i}_width"], params[f"{i}_height"] = c.width, c.height
        params[f"{i}_valid"] = i not in invalid
        params[f"{i}_sn"] = f"SN{i:03d}"
        save(folder / f"{i}{ext}", random_image(rng, c))
    path = folder / "params.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(params))
    return path


def write_colmap(folder: Path, cams, images: Path, *, model="PINHOLE", extra=(), points=None, seed=0, rigs=True) -> Path:
    """A COLMAP text model in ``folder`` (+ COLMAP 4's rigs.txt/frames.txt) and images ``img_XX.png``."""
    from labelsplat.scene.importers.colmap import rotation_to_qvec

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cam_lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    img_lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME"]
    for i, c in enumerate(cams, 1):
        if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
            intr = [c.fx, c.cx, c.cy]
        else:
            intr = [c.fx, c.fy, c.cx, c.cy]
        cam_lines.append(" ".join(map(str, [i, model, c.width, c.height, *map(_num, intr), *map(_num, extra)])))
        w2c = c.w2c_opencv
        q = rotation_to_qvec(w2c[:3, :3])
        name = f"img_{i:02d}.png"
        img_lines.append(" ".join(map(str, [i, *map(_num, q), *map(_num, w2c[:3, 3]), i, name])))
        img_lines.append("" if i % 2 else "1.5 2.5 -1 3.5 4.5 1")  # empty 2D-point lines must be tolerated
        save(images / name, random_image(rng, c))
    (folder / "cameras.txt").write_text("\n".join(cam_lines) + "\n")
    (folder / "images.txt").write_text("\n".join(img_lines) + "\n")
    if points is not None:
        lines = ["# 3D point list with one line of data per point:"]
        for k, (xyz, rgb) in enumerate(zip(*points), 1):
            lines.append(" ".join(map(str, [k, *map(_num, xyz), *(int(v) for v in rgb), 0.5, 1, 0, 2, 0])))
        (folder / "points3D.txt").write_text("\n".join(lines) + "\n")
    if rigs:
        (folder / "rigs.txt").write_text("# Rig calib list\n1 1 CAMERA 1\n")
        (folder / "frames.txt").write_text("# Frame list\n1 1 1 0 0 0 0 0 0 1 CAMERA 1 1\n")
    return folder


def write_nersemble(folder: Path, cams, images: Path, *, serials=None, seed=0) -> Path:
    """camera_params.json (shared intrinsics: all ``cams`` must share K) and ``cam_<serial>.png``."""
    rng = np.random.default_rng(seed)
    serials = serials or [str(220700100 + i) for i in range(len(cams))]
    for c in cams:
        assert np.allclose(c.K, cams[0].K)
    data = {
        "world_2_cam": {s: c.w2c_opencv.tolist() for s, c in zip(serials, cams)},
        "intrinsics": opencv_K(cams[0]),
    }
    for s, c in zip(serials, cams):
        save(images / f"cam_{s}.png", random_image(rng, c))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "camera_params.json"
    path.write_text(json.dumps(data))
    return path


_MODEL_ID = {"SIMPLE_PINHOLE": 0, "PINHOLE": 1, "SIMPLE_RADIAL": 2, "RADIAL": 3, "OPENCV": 4, "OPENCV_FISHEYE": 5, "FULL_OPENCV": 6}


def write_colmap_bin(folder: Path, cams, images: Path, *, model="PINHOLE", extra=(), points=None, seed=0) -> Path:
    """The binary twin of :func:`write_colmap` (layout of COLMAP's reconstruction_io_binary.cc)."""
    import struct

    from labelsplat.scene.importers.colmap import rotation_to_qvec

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cb = [struct.pack("<Q", len(cams))]
    ib = [struct.pack("<Q", len(cams))]
    for i, c in enumerate(cams, 1):
        intr = [c.fx, c.cx, c.cy] if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL") else [c.fx, c.fy, c.cx, c.cy]
        params = [*intr, *extra]
        cb.append(struct.pack("<IiQQ", i, _MODEL_ID[model], c.width, c.height) + struct.pack(f"<{len(params)}d", *params))
        w2c = c.w2c_opencv
        q = rotation_to_qvec(w2c[:3, :3])
        name = f"img_{i:02d}.png"
        pts2d = [(1.5, 2.5, 2**64 - 1), (3.5, 4.5, 7)] if i % 2 else []
        ib.append(struct.pack("<I7dI", i, *q, *w2c[:3, 3], i) + name.encode() + b"\0" + struct.pack("<Q", len(pts2d)))
        ib.extend(struct.pack("<ddQ", *p) for p in pts2d)
        save(images / name, random_image(rng, c))
    (folder / "cameras.bin").write_bytes(b"".join(cb))
    (folder / "images.bin").write_bytes(b"".join(ib))
    if points is not None:
        pb = [struct.pack("<Q", len(points[0]))]
        for k, (xyz, rgb) in enumerate(zip(*points), 1):
            track = [(1, 0), (2, 3)] if k % 2 else []
            pb.append(struct.pack("<Q3d3BdQ", k, *xyz, *(int(v) for v in rgb), 0.5, len(track)))
            pb.extend(struct.pack("<II", *t) for t in track)
        (folder / "points3D.bin").write_bytes(b"".join(pb))
    return folder


def write_nerfstudio(folder: Path, cams, *, model="OPENCV", coeffs=None, per_frame=False, masks=False, depth=False,
                     ext=".png", seed=0) -> Path:
    """A nerfstudio ``folder/transforms.json`` (c2w OpenGL, pixel-centre intrinsics, no shift) with
    images ``images/frame_XX<ext>``; ``coeffs`` e.g. {"k1": 0.2}; ``masks``: 0/1 PNGs; returns the file."""
    rng = np.random.default_rng(seed)
    intr = lambda c: {"fl_x": c.fx, "fl_y": c.fy, "cx": c.cx, "cy": c.cy, "w": c.width, "h": c.height}  # noqa: E731
    doc: dict = {"camera_model": model, **({} if per_frame else intr(cams[0])), **(coeffs or {}), "frames": []}
    for i, c in enumerate(cams):
        fr = {"file_path": f"images/frame_{i:02d}{ext}", "transform_matrix": c.c2w.tolist(), **(intr(c) if per_frame else {})}
        save(folder / fr["file_path"], random_image(rng, c))
        if masks:
            m = np.zeros((c.height, c.width), np.uint8)
            m[c.height // 4:, :] = 1
            fr["mask_path"] = f"masks/frame_{i:02d}.png"
            save(folder / fr["mask_path"], m)
        if depth:
            fr["depth_file_path"] = f"depth/frame_{i:02d}.png"
        doc["frames"].append(fr)
    path = folder / "transforms.json"
    path.write_text(json.dumps(doc))
    return path
