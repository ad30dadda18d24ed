import numpy as np

from labelsplat.io import write_png
from labelsplat.report import ReportView, write_report


def _m(v):
    return {"miou": v, "mean_f1": v, "pixel_acc": v, "coverage": 1.0}


def _labelling(v):
    return {
        "overall": _m(v),
        "by_yaw": {"0-30": _m(v), "30-60": _m(v - 0.1), "60-90": _m(v - 0.2), "90-180": None},
        "per_class": {"skin": {"iou": v, "f1": v}, "nose": {"iou": v - 0.1, "f1": v}},
        "boundary_excluded": {"overall": _m(v + 0.05), "by_yaw": {}},
        "confusion": [[1, 0], [0, 1]],
    }


def test_report_is_self_contained_html(tmp_path):
    img = tmp_path / "dataset" / "images" / "v0.png"
    write_png(img, np.zeros((8, 8, 3), np.uint8))
    metrics = {"labellings": {"initial": _labelling(0.6), "refined": _labelling(0.8)}, "consistency": {}}
    views = [ReportView("v0", 75.0, 5.0, {"RGB": img}), ReportView("v1", 10.0, -3.0, {"RGB": img})]
    logs = {"head_000": [{"step": s, "loss": 1.0 / (s + 1)} for s in range(10)]}
    out = write_report(tmp_path / "report.html", title="t", metrics=metrics, views=views, train_logs=logs)
    text = out.read_text()
    assert "data:image/png;base64" in text  # plots embedded
    assert "src='dataset/images/v0.png'" in text  # relative image path
    assert "|yaw| 60-90" in text and "|yaw| 0-30" in text
    assert "refined" in text and "0.800" in text


def test_report_without_gt(tmp_path):
    consistency = {"head_000": {"before": {"agreement": 0.7, "compared": 10}, "after": {"agreement": 0.85, "compared": 10}}}
    out = write_report(tmp_path / "r.html", title="t", metrics={"labellings": {}, "consistency": consistency}, views=[])
    text = out.read_text()
    assert "No ground truth" in text and "0.700" in text and "0.850" in text


def test_report_shows_orbit_videos_and_the_viewer_command(tmp_path):
    video = tmp_path / "scenes" / "head_000" / "orbit" / "orbit.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\0")
    out = write_report(tmp_path / "report.html", title="t", metrics={}, views=[],
                       videos={"head_000": video}, viewer_commands={"head_000": "labelsplat view scenes/head_000/run"})
    text = out.read_text()
    assert "<video" in text and "src='scenes/head_000/orbit/orbit.mp4'" in text
    assert "labelsplat view scenes/head_000/run" in text and "folder" in text.split("</h1>")[1][:300]
