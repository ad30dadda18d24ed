"""``labelsplat view``: the live web viewer on viser (the ``[viewer]`` extra).

Each browser tab gets a render loop on a thread: while the camera moves on the CPU it renders
at :data:`MOVING_SCALE` of the size, and the full size once the camera rested for
:data:`SETTLE_S`. The picture itself comes from :func:`.core.render_view`; the GUI (modes, class
toggles, cameras, save, edits) only changes the shared :class:`ViewerState`.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import LabelsplatError
from ..splat.edits import Edit
from .core import (MODES, YAW_PRESETS, EditSession, Source, ViewSettings, camera_from_pose, default_save_dir, pose_of,
                   render_view, save_view, yaw_camera)

MOVING_SCALE = 0.5  # render size while the camera moves (CPU)
SETTLE_S = 0.3  # the camera counts as resting after this long without an update
MAX_SIDE_CPU, MAX_SIDE_CUDA = 512, 1600  # the longest image side rendered


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the system's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """:class:`LabelsplatError` suggesting a free port when ``port`` is taken (viser itself would
    silently move to another)."""
    if not 0 < int(port) < 65536:
        raise LabelsplatError(f"--port must be in 1..65535, got {port}")
    if not port_free(host, port):
        raise LabelsplatError(f"port {port} on {host} is already in use", hint=f"pass --port {free_port(host)}")


@dataclass
class ViewerState:
    """What every tab shares: the source, the view settings, the edit session and where views go."""

    src: Source
    save_dir: Path
    settings: ViewSettings = field(default_factory=ViewSettings)
    session: EditSession | None = None
    max_side: int = MAX_SIDE_CPU
    lock: threading.RLock = field(default_factory=threading.RLock)
    version: int = 0  # bumped whenever the picture must be rendered again

    def changed(self) -> None:
        self.version += 1


def quat_to_matrix(wxyz) -> np.ndarray:
    """3x3 rotation of a (w, x, y, z) quaternion."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def client_camera(cam_handle, max_side: int, scale: float = 1.0):
    """The :class:`~labelsplat.scene.Camera` of a viser camera handle at ``scale`` of its size."""
    w, h = int(cam_handle.image_width or 640), int(cam_handle.image_height or 480)
    f = min(1.0, max_side / max(w, h)) * scale
    w, h = max(8, int(round(w * f))), max(8, int(round(h * f)))
    c2w = np.eye(4)
    c2w[:3, :3] = quat_to_matrix(cam_handle.wxyz)
    c2w[:3, 3] = np.asarray(cam_handle.position)
    return camera_from_pose(c2w, float(cam_handle.fov), w, h)


def set_client_camera(cam_handle, cam) -> None:
    """Move a viser camera to ``cam`` (scene frame)."""
    c2w, fov = pose_of(cam)
    cam_handle.fov = fov
    cam_handle.position = c2w[:3, 3]
    cam_handle.up_direction = -c2w[:3, 1]
    cam_handle.look_at = c2w[:3, 3] + c2w[:3, 2]


class ClientLoop:
    """The render loop of one tab (a thread)."""

    def __init__(self, client, state: ViewerState, moving_scale: float):
        self.client, self.state, self.moving_scale = client, state, moving_scale
        self.last_move = time.monotonic()
        self.moves = 0  # camera updates so far: a move during a render is not lost
        self.shown: tuple | None = None  # (state version, moves, resting) of the picture on screen
        self.running = True
        self.error: Exception | None = None  # the last failed render (for debugging)
        client.camera.on_update(lambda _: self.moved())
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"labelsplat-view-{client.client_id}")
        self.thread.start()

    def moved(self) -> None:
        self.last_move = time.monotonic()
        self.moves += 1

    def run(self) -> None:
        while self.running:
            resting = time.monotonic() - self.last_move > SETTLE_S
            want = (self.state.version, self.moves, resting)
            # up to date: this camera and scene drawn, at full size or while still moving
            if self.shown == want or (self.shown is not None and self.shown[:2] == want[:2] and self.shown[2]):
                time.sleep(0.03)
                continue
            try:
                scale = 1.0 if resting else self.moving_scale
                with self.state.lock:
                    cam = client_camera(self.client.camera, self.state.max_side, scale)
                    img = render_view(self.state.src.run, cam, self.state.settings)
                self.client.scene.set_background_image(img, format="jpeg", jpeg_quality=90)
                self.shown = want
            except Exception as exc:  # a tab that closed mid-render, or a camera not synchronised yet
                self.error = exc
                time.sleep(0.1)


def build_gui(server, state: ViewerState, log: Callable[[str], None]) -> dict[str, Any]:
    """The panel: view mode and classes, cameras, save, edits. Returns the handles by name."""
    gui, src, h = server.gui, state.src, {}
    scheme = src.scheme if src.has_labels else None
    classes = list(scheme.classes) if scheme else []

    def redraw():
        state.changed()

    with gui.add_folder("View"):
        h["mode"] = gui.add_dropdown("Mode", MODES if scheme else ("rgb",), initial_value="rgb")
        h["highlight"] = gui.add_dropdown("Highlight", classes or ["-"], initial_value=(classes or ["-"])[0],
                                          disabled=not classes)

        @h["mode"].on_update
        def _(_):
            state.settings.mode = h["mode"].value
            redraw()

        @h["highlight"].on_update
        def _(_):
            state.settings.highlight = h["highlight"].value if classes else None
            redraw()

    if classes:
        with gui.add_folder("Classes", expand_by_default=False):
            for i, name in enumerate(classes):
                r, g, b = (int(v) for v in scheme.palette_array()[i])
                box = gui.add_checkbox(f"{name} ({r},{g},{b})", initial_value=True)

                def toggle(_, name=name, box=box):
                    hidden = set(state.settings.hidden)
                    (hidden.discard if box.value else hidden.add)(name)
                    state.settings.hidden = frozenset(hidden)
                    redraw()

                box.on_update(toggle)
    _camera_gui(server, state, h)
    _save_gui(server, state, h, log)
    if classes:
        _edit_gui(server, state, h, classes, log)
    return h


def _each_client(server, fn) -> None:
    for client in server.get_clients().values():
        fn(client)


def _camera_gui(server, state: ViewerState, h: dict) -> None:
    gui, src = server.gui, state.src
    have = src.head is not None and bool(src.cameras)
    with gui.add_folder("Cameras"):
        names = src.camera_names or ["(no input cameras)"]
        h["input"] = gui.add_dropdown("Input camera", names, initial_value=names[0], disabled=not src.cameras)
        h["snap"] = gui.add_button("Snap to input camera", disabled=not src.cameras)
        h["yaw"] = gui.add_button_group("Yaw", [f"{y:+.0f}" for y in YAW_PRESETS])
        if not have:
            h["yaw"].disabled = True
            gui.add_markdown("A bare PLY has no cameras or head frame: free camera only.")

        @h["snap"].on_click
        def _(event):
            cam = src.cameras[names.index(h["input"].value)]
            _each_client(server, lambda c: set_client_camera(c.camera, cam))

        @h["yaw"].on_click
        def _(event):
            if not have:
                return
            cam = yaw_camera(src, float(h["yaw"].value))
            _each_client(server, lambda c: set_client_camera(c.camera, cam))


def _save_gui(server, state: ViewerState, h: dict, log) -> None:
    h["save"] = server.gui.add_button("Save view (PNG)")

    @h["save"].on_click
    def _(event):
        client = event.client
        with state.lock:
            cam = client_camera(client.camera, state.max_side)
            files = save_view(state.src.run, cam, state.save_dir, state.settings)
        log(f"saved {', '.join(p.name for p in files)} in {state.save_dir}")


def _edit_gui(server, state: ViewerState, h: dict, classes: list[str], log) -> None:
    gui = server.gui
    state.session = EditSession(state.src)
    session = state.session
    frame = "head frame" if state.src.head is not None else "world frame"
    pending: dict[str, Any] = {"ids": None}
    with gui.add_folder("Edit labels", expand_by_default=False):
        h["sel_class"] = gui.add_dropdown("Select class", ["(any)", *classes], initial_value="(any)")
        h["use_box"] = gui.add_checkbox(f"Box ({frame}, scene units)", initial_value=False)
        h["box_min"] = gui.add_vector3("Box min", initial_value=(-1.0, -1.0, -1.0), step=0.01)
        h["box_max"] = gui.add_vector3("Box max", initial_value=(1.0, 1.0, 1.0), step=0.01)
        h["brush"] = gui.add_markdown("Brush: shift + drag a rectangle on the view (no brush selection yet).")
        h["set_class"] = gui.add_dropdown("Set class", classes, initial_value=classes[0])
        h["assign"] = gui.add_button("Assign")
        h["undo"] = gui.add_button("Undo")
        h["redo"] = gui.add_button("Redo")
        h["clear_brush"] = gui.add_button("Clear brush")
        h["save_edits"] = gui.add_button("Save edits (JSON)")

    def current() -> Edit:
        cls = h["sel_class"].value
        box = (tuple(h["box_min"].value), tuple(h["box_max"].value)) if h["use_box"].value else None
        if box is not None and any(a > b for a, b in zip(*box)):
            raise LabelsplatError("the box's min corner must be below its max corner")
        return Edit(h["set_class"].value, None if cls == "(any)" else cls, box, pending["ids"])

    @server.scene.on_rect_select(modifier="shift")
    def _(event):
        client = event.client
        with state.lock:
            cam = client_camera(client.camera, state.max_side)
            (x0, y0), (x1, y1) = event.screen_min, event.screen_max
            mask = np.zeros((cam.height, cam.width), dtype=bool)
            mask[int(y0 * cam.height):int(np.ceil(y1 * cam.height)) + 1,
                 int(x0 * cam.width):int(np.ceil(x1 * cam.width)) + 1] = True
            pending["ids"] = session.brush(cam, mask)
        h["brush"].content = f"Brush: {len(pending['ids'])} Gaussians selected."

    def act(fn, what):
        def handler(_):
            try:
                with state.lock:
                    msg = fn()
                state.changed()
                log(f"{what}: {msg}")
            except LabelsplatError as exc:
                log(f"{what}: {exc}")
        return handler

    def assign():
        n = session.assign(current())
        pending["ids"] = None
        h["brush"].content = "Brush: shift + drag a rectangle on the view (no brush selection yet)."
        return f"{n} Gaussians selected"

    def save_edits():
        return str(session.save(state.save_dir / "edits.json"))

    h["assign"].on_click(act(assign, "assign"))
    h["undo"].on_click(act(lambda: "done" if session.undo() else "nothing to undo", "undo"))
    h["redo"].on_click(act(lambda: "done" if session.redo() else "nothing to redo", "redo"))
    h["clear_brush"].on_click(act(lambda: pending.update(ids=None) or "cleared", "brush"))
    h["save_edits"].on_click(act(save_edits, "save edits"))


class Viewer:
    """A running viewer: :meth:`stop` ends it."""

    def __init__(self, server, state: ViewerState, loops: dict, handles: dict):
        self.server, self.state, self.loops, self.handles = server, state, loops, handles

    @property
    def port(self) -> int:
        return int(self.server.get_port())

    def stop(self) -> None:
        for loop in list(self.loops.values()):
            loop.running = False
        self.server.stop()


def start_viewer(src: Source, *, host: str = "127.0.0.1", port: int = 8080, save_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> Viewer:
    """Check the port, start the viser server with the panel and a render loop per tab."""
    try:
        import viser  # lazy: the optional [viewer] extra
    except ImportError as exc:
        raise LabelsplatError("the viewer needs viser, which is not installed",
                              hint='pip install "labelsplat[viewer]"') from exc
    check_port(host, port)
    cuda = src.run.model.device.type == "cuda"
    state = ViewerState(src, Path(save_dir) if save_dir is not None else default_save_dir(src.path),
                        max_side=MAX_SIDE_CUDA if cuda else MAX_SIDE_CPU)
    server = viser.ViserServer(host=host, port=port, verbose=False)
    loops: dict[int, ClientLoop] = {}
    handles = build_gui(server, state, log)

    @server.on_client_connect
    def _(client):
        if src.cameras:
            cam = yaw_camera(src, 0.0) if src.head is not None else src.cameras[0]
            set_client_camera(client.camera, cam)
        loops[client.client_id] = ClientLoop(client, state, 1.0 if cuda else MOVING_SCALE)

    @server.on_client_disconnect
    def _(client):
        loop = loops.pop(client.client_id, None)
        if loop is not None:
            loop.running = False

    return Viewer(server, state, loops, handles)


__all__ = ["ClientLoop", "Viewer", "ViewerState", "check_port", "client_camera", "free_port", "is_loopback",
           "set_client_camera", "start_viewer"]
