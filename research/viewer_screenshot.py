"""A screenshot of ``labelsplat view`` in headless Chromium (a developer tool; CI never runs it).

Starts the viewer on a free local port for a run, sets its view (mode, camera), opens the page
in Debian's ``chromium`` with software WebGL (SwiftShader), waits until the viewer has pushed
its full-size render, and writes the browser's screenshot::

    apt-get install chromium
    python -m research.viewer_screenshot labelsplat-demo/refined/scenes/head_000/run \\
        --out docs/images/viewer_demo.png --mode overlay --yaw 45
"""
# Chromium's --screenshot flag would shoot before the first render arrives (it runs on virtual
# time), so the page is driven through the DevTools protocol instead.

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from labelsplat.viewer.server import free_port


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium found: apt-get install chromium")


def _cdp(ws, method: str, **params):
    """One DevTools protocol call (its result)."""
    _cdp.n = getattr(_cdp, "n", 0) + 1
    ws.send(json.dumps({"id": _cdp.n, "method": method, "params": params}))
    while True:
        msg = json.loads(ws.recv())
        if msg.get("id") == _cdp.n:
            return msg.get("result", {})


def screenshot(url: str, out: Path, *, width: int, height: int, wait_s: float) -> None:
    """Open ``url`` in headless Chromium (software WebGL), wait ``wait_s`` real seconds (the
    viewer streams its renders over a websocket), and save the page as a PNG through the
    DevTools protocol."""
    from websockets.sync.client import connect  # installed with viser

    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu-sandbox", "--use-angle=swiftshader",
               "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--remote-debugging-port={port}",
               "about:blank"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pages = []
            for _ in range(100):
                try:
                    pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2).read())
                except OSError:
                    pages = []
                if any(p.get("type") == "page" for p in pages):
                    break
                time.sleep(0.2)
            page = next(p for p in pages if p.get("type") == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                _cdp(ws, "Page.enable")
                _cdp(ws, "Page.navigate", url=url)
                time.sleep(wait_s)
                png = _cdp(ws, "Page.captureScreenshot", format="png")["data"]
            out.write_bytes(base64.b64decode(png))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a fit run directory (or a .ply)")
    ap.add_argument("--out", type=Path, default=Path("docs/images/viewer_demo.png"))
    ap.add_argument("--mode", default="overlay", help="rgb | labels | overlay | confidence | highlight")
    ap.add_argument("--yaw", type=float, default=45.0, help="the yaw preset to show (runs with a head frame)")
    ap.add_argument("--size", default="1280x800", help="browser window WIDTHxHEIGHT")
    ap.add_argument("--wait", type=float, default=25.0, help="seconds to let the page load and render")
    args = ap.parse_args(argv)

    from labelsplat.viewer import open_source, yaw_camera
    from labelsplat.viewer.server import set_client_camera, start_viewer

    src = open_source(args.run, "cpu")
    viewer = start_viewer(src, host="127.0.0.1", port=free_port(), save_dir=Path(tempfile.mkdtemp()), log=print)
    viewer.handles["mode"].value = args.mode
    cam = yaw_camera(src, args.yaw) if src.head is not None else None

    @viewer.server.on_client_connect
    def _(client):  # after the viewer's own handler: show the requested yaw
        if cam is not None:
            time.sleep(0.5)
            set_client_camera(client.camera, cam)

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(f"http://127.0.0.1:{viewer.port}/", args.out, width=w, height=h, wait_s=args.wait)
        for loop in viewer.loops.values():
            if loop.error is not None:
                print(f"a render failed: {loop.error!r}")
    finally:
        viewer.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
