"""FitLoop driven one step at a time: StepStats, callbacks, early stop, and the same numbers as fit()."""

from __future__ import annotations

import json

import pytest
import torch

from fit_scene import cached_scene
from labelsplat.errors import LabelsplatError
from labelsplat.splat import FitLoop, StepStats, default_callbacks, fit, latest_checkpoint, load_checkpoint
from labelsplat.config import fit_preset as make_config


def small_cfg(**kw):
    base = dict(steps=8, max_resolution=32, init_max_points=250, hull_resolution=20, refine_every=2,
                checkpoint_every=4, log_every=3, sh_degree_interval=4)
    base.update(kw)
    return make_config("micro", **base)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return cached_scene(tmp_path_factory, n_views=6, res=32)


class Recorder:
    """A callback that records what it is told."""

    def __init__(self):
        self.events = []

    def on_setup(self, loop):
        self.events.append(("setup", loop.start_step))

    def on_step(self, stats):
        self.events.append(("step", stats.step, stats.record is not None))

    def on_finish(self, loop):
        self.events.append(("finish", loop.next_step))


def test_step_returns_stats_and_drives_the_callbacks(scene_dir, tmp_path):
    rec = Recorder()
    loop = FitLoop(scene_dir, tmp_path / "run", small_cfg(), callbacks=default_callbacks() + [rec])
    with pytest.raises(RuntimeError, match="setup"):
        loop.step()
    loop.setup()
    assert rec.events == [("setup", 0)] and loop.next_step == 0 and not loop.done
    assert loop.head.target == "logits" and loop.model.num_classes == 19
    stats = [loop.step() for _ in range(8)]
    assert loop.done and loop.next_step == 8
    with pytest.raises(RuntimeError, match="no steps left"):
        loop.step()
    for i, st in enumerate(stats):
        assert isinstance(st, StepStats) and st.step == i and st.done == i + 1
        assert all(torch.isfinite(t) and t.dim() == 0 for t in (st.loss, st.rgb_loss, st.sem_loss, st.alpha_loss))
        assert st.n_gaussians > 0 and st.resolution_scale in (0.5, 1.0) and 0 <= st.active_sh <= 1
        # a log step: the first, every log_every, the last
        assert (st.record is not None) == (i == 0 or (i + 1) % 3 == 0 or i == 7)
    assert stats[0].resolution_scale == 0.5 and stats[-1].resolution_scale == 1.0
    assert stats[-1].active_sh == 1 and stats[0].active_sh == 0
    r = stats[2].record
    assert r["step"] == 2 and r["loss"] == float(stats[2].loss) and r["sem_loss"] == float(stats[2].sem_loss)
    assert r["n_gaussians"] == stats[2].n_gaussians and 0.0 <= r["label_acc"] <= 1.0
    # the callbacks: the log holds exactly the records, the periodic checkpoint was written at step 4
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == [st.step for st in stats if st.record is not None]
    assert latest_checkpoint(tmp_path / "run").name == "step_000004.pt"
    assert [e for e in rec.events if e[0] == "step"] == [("step", i, stats[i].record is not None) for i in range(8)]
    res = loop.finish()
    assert rec.events[-1] == ("finish", 8)
    assert res.summary["steps"] == 8 and res.summary["last_log"] == stats[-1].record
    assert (tmp_path / "run" / "run.json").is_file()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 8


def test_driving_step_matches_fit_and_resume(scene_dir, tmp_path):
    cfg = small_cfg()
    whole = fit(scene_dir, tmp_path / "a", cfg, write_outputs=False)
    # the same fit stepped by hand, stopped at 5 (no callbacks: no log, no periodic checkpoints) ...
    loop = FitLoop(scene_dir, tmp_path / "b", cfg, write_outputs=False, stop_after=5, callbacks=[])
    loop.setup()
    while not loop.done:
        loop.step()
    assert loop.next_step == 5
    early = loop.finish()
    assert early.summary == {"step": 5, "stopped_early": True}
    assert not (tmp_path / "b" / "train_log.jsonl").exists()  # no TrainLog callback
    assert latest_checkpoint(tmp_path / "b").name == "step_000005.pt"
    # ... and resumed by hand to the end: the same parameters as one fit()
    loop = FitLoop(scene_dir, tmp_path / "b", None, resume=True, write_outputs=False, callbacks=[])
    loop.setup()
    assert loop.start_step == 5 and loop.resumed
    while not loop.done:
        loop.step()
    res = loop.finish()
    for k, v in whole.model.params.items():
        assert torch.equal(v, res.model.params[k]), k


def test_finish_before_the_last_step_and_setup_twice_are_refused(scene_dir, tmp_path):
    loop = FitLoop(scene_dir, tmp_path / "run", small_cfg(), callbacks=[])
    loop.setup()
    with pytest.raises(RuntimeError, match="setup"):
        loop.setup()
    loop.step()
    with pytest.raises(RuntimeError, match="before the last step"):
        loop.finish()


def test_setup_applies_the_resume_rules(scene_dir, tmp_path):
    with pytest.raises(LabelsplatError, match="nothing to resume"):
        FitLoop(scene_dir, tmp_path / "none", small_cfg(), resume=True).setup()
    fit(scene_dir, tmp_path / "run", small_cfg(steps=4), write_outputs=False)
    with pytest.raises(LabelsplatError, match="already holds a fit"):
        FitLoop(scene_dir, tmp_path / "run", small_cfg(steps=4)).setup()
