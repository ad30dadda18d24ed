"""``labelsplat batch`` on a local Ray instance (2 CPUs) over three micro synthetic scenes,
one of them broken (a truncated image), plus the pure GPU-request / retry / path policies.

One Ray instance serves the whole module (the CLI reuses an initialised Ray and leaves it up).
"""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from labelsplat.distributed import (
    EXIT_SOME_FAILED,
    BatchConfig,
    TaskSpec,
    check_out,
    drive_tasks,
    gpus_per_task,
    parse_gpus,
    should_retry,
)
from labelsplat.errors import LabelsplatError

ray = pytest.importorskip("ray")


# ----------------------------------------------------------------------------- pure policy
@pytest.mark.parametrize(
    "cluster, expected",
    [({"CPU": 8.0}, 0.0), ({"CPU": 8.0, "GPU": 0.0}, 0.0), ({"CPU": 8.0, "GPU": 4.0}, 1.0),
     ({"CPU": 2.0, "GPU": 1.0}, 1.0), ({"CPU": 2.0, "GPU": 0.5}, 0.5), ({}, 0.0)],
)
def test_auto_requests_a_gpu_only_where_the_cluster_has_one(cluster, expected):
    assert gpus_per_task("auto", cluster) == expected


def test_explicit_gpu_fractions():
    assert gpus_per_task(0.25, {"CPU": 16.0, "GPU": 1.0}) == 0.25
    assert gpus_per_task("0.5", {"GPU": 2.0}) == 0.5
    assert gpus_per_task(0, {"GPU": 2.0}) == 0.0
    assert gpus_per_task(2, {"GPU": 2.0}) == 2.0
    # --device cpu never asks for a GPU, even where there are some
    assert gpus_per_task("auto", {"GPU": 8.0}, device="cpu") == 0.0


def test_impossible_gpu_requests_are_refused():
    with pytest.raises(LabelsplatError, match="wait forever"):
        gpus_per_task(0.5, {"CPU": 8.0})  # no GPU at all
    with pytest.raises(LabelsplatError, match="wait forever"):
        gpus_per_task(2, {"GPU": 1.0})
    with pytest.raises(LabelsplatError, match="no GPU"):
        gpus_per_task("auto", {"CPU": 8.0}, device="cuda")
    for bad in ("lots", "-1", "nan", "1.5"):
        with pytest.raises(LabelsplatError, match="gpus-per-scene"):
            parse_gpus(bad)


def test_batch_config_validation():
    assert BatchConfig(gpus_per_scene="0.5").gpus_per_scene == 0.5
    assert BatchConfig(address="").address is None
    with pytest.raises(LabelsplatError, match="cpus-per-scene"):
        BatchConfig(cpus_per_scene=0)
    with pytest.raises(LabelsplatError, match="max-retries"):
        BatchConfig(max_retries=-1)


def test_out_must_be_absolute_with_an_address(tmp_path):
    assert check_out("rel/out", None).as_posix() == "rel/out"
    assert check_out(tmp_path / "o", "auto") == tmp_path / "o"
    with pytest.raises(LabelsplatError, match="absolute path"):
        check_out("rel/out", "auto")


def test_retry_policy():
    transient = {"type": "RuntimeError", "input_error": False}
    assert should_retry(transient, attempts=1, max_retries=2)
    assert should_retry(transient, attempts=2, max_retries=2)
    assert not should_retry(transient, attempts=3, max_retries=2)
    assert not should_retry(transient, attempts=1, max_retries=0)
    assert not should_retry({"type": "LabelsplatError", "input_error": True}, attempts=1, max_retries=2)


def test_unreadable_scenes_become_failures_and_names_must_be_unique(scenes, tmp_path):
    from labelsplat.distributed import _scene_names

    root, _ = scenes
    bad = tmp_path / "bad_scene"
    bad.mkdir()
    (bad / "transforms.json").write_text("{not json")
    names, unreadable = _scene_names([root / "head_000", bad])
    assert list(names) == ["head_000"]
    assert unreadable["bad_scene"]["errors"][0]["attempt"] == 0
    assert unreadable["bad_scene"]["errors"][0]["input_error"]
    copy = tmp_path / "again" / "head_000"
    shutil.copytree(root / "head_000", copy)
    with pytest.raises(LabelsplatError, match="unique"):
        _scene_names([root / "head_000", copy])


def test_relative_out_with_address_is_refused_by_the_cli(cli, tmp_path):
    r = cli("batch", tmp_path, "--out", "relative/out", "--address", "auto")
    assert r.exit_code == 2
    assert "absolute path" in r.output and "Traceback" not in r.output


# ----------------------------------------------------------------------------- with Ray
@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs) for the module; the code under test reuses it."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


def test_drive_tasks_retries_transient_failures_only(ray_local, tmp_path):
    def flaky(marker, mode, attempt):
        import os

        if mode == "input":  # an input error (as refine_scene_task reports it): never retried
            return {"ok": False, "error": {"type": "LabelsplatError", "message": "bad", "input_error": True}}
        if mode == "always":
            raise RuntimeError(f"always fails (attempt {attempt})")
        if not os.path.exists(marker):  # fails once (a Ray-level exception), then works
            open(marker, "w").close()
            raise RuntimeError("transient")
        return {"ok": True, "attempt": attempt, "elapsed_s": 0.0}

    remote = ray_local.remote(flaky).options(num_cpus=1, max_retries=0)
    specs = [TaskSpec(k, (str(tmp_path / k), k)) for k in ("once", "input", "always")]
    events = []
    res = drive_tasks(ray_local, remote, specs, max_retries=2, poll_s=0.05,
                      on_event=lambda kind, r, e: events.append((kind, (r.key if r else e["key"]))))
    assert res["once"].ok and res["once"].attempts == 2 and res["once"].value["attempt"] == 2
    assert len(res["once"].errors) == 1 and "transient" in res["once"].errors[0]["message"]
    assert not res["input"].ok and res["input"].attempts == 1
    assert not res["always"].ok and res["always"].attempts == 3
    assert [e["attempt"] for e in res["always"].errors] == [1, 2, 3]
    assert ("retry", "once") in events and ("done", "once") in events and ("failed", "input") in events


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three micro synthetic scenes; head_002 has a truncated image (its copy of the original
    is kept to repair it later)."""
    from labelsplat.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("batch_scenes")
    synthesize(root, SynthConfig(identities=3, views=8, rig="facescape", resolution=48, noise="simulated:high", seed=3))
    doc = json.loads((root / "head_002" / "transforms.json").read_text())
    img = root / "head_002" / doc["frames"][1]["file_path"]
    shutil.copy(img, root / "good_image.png")
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 3])
    return root, img


def _args(scenes_root, out, *extra):
    return [*(scenes_root / f"head_{i:03d}" for i in range(3)), "--out", out, "--preset", "micro",
            "--novel-views", "2", "--quiet", "--seed", "1", *extra]


def test_batch_good_scenes_merge_broken_one_reported_resume_skips(cli, ray_local, scenes, tmp_path):
    root, broken_img = scenes
    out = tmp_path / "out"
    r = cli("batch", *_args(root, out))
    assert r.exit_code == EXIT_SOME_FAILED, r.output
    assert "head_002" in r.output and "truncated" in r.output

    # refine's output tree, with the two good scenes
    for n in ("head_000", "head_001"):
        for p in ("run/checkpoint.pt", "views/manifest.json", "metrics.json", "DONE.json"):
            assert (out / "scenes" / n / p).is_file(), (n, p)
    assert not (out / "scenes" / "head_002" / "DONE.json").exists()
    for p in ("dataset/manifest.json", "dataset/transforms.json", "metrics.json", "report.html", "refine.json"):
        assert (out / p).is_file(), p
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert {v["source_scene"] for v in manifest["views"]} == {"head_000", "head_001"}
    pooled = json.loads((out / "metrics.json").read_text())
    assert set(pooled["consistency"]) == {"head_000", "head_001"}

    # the failure record: an input error, not retried
    rec = json.loads((out / "batch.json").read_text())
    assert rec["schema_version"] == 1 and rec["n_failed"] == 1 and rec["n_done"] == 2
    fail = rec["scenes"]["head_002"]
    assert fail["status"] == "failed" and fail["attempts"] == 1
    assert fail["errors"][0]["type"] == "LabelsplatError" and "truncated" in fail["errors"][0]["message"]
    assert rec["scenes"]["head_000"]["status"] == "done" and rec["scenes"]["head_000"]["cpu_s"] > 0

    # an existing OUT is refused without --resume
    r = cli("batch", *_args(root, out))
    assert r.exit_code == 2 and "--resume" in r.output

    # repair the broken scene; --resume refits only it
    done_mtimes = {n: (out / "scenes" / n / "DONE.json").stat().st_mtime_ns for n in ("head_000", "head_001")}
    shutil.copy(root / "good_image.png", broken_img)
    r = cli("batch", *_args(root, out, "--resume"))
    assert r.exit_code == 0, r.output
    assert "head_000: already done, skipped" in r.output and "head_001: already done, skipped" in r.output
    assert "2 already done" in r.output
    for n, t in done_mtimes.items():
        assert (out / "scenes" / n / "DONE.json").stat().st_mtime_ns == t
    rec = json.loads((out / "batch.json").read_text())
    assert rec["n_failed"] == 0 and rec["n_skipped"] == 2
    assert rec["scenes"]["head_002"]["status"] == "done"
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert {v["source_scene"] for v in manifest["views"]} == {"head_000", "head_001", "head_002"}
