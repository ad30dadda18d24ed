"""Tiny CPU training runs: the loss goes down; resume gives the same weights; outputs load."""

from __future__ import annotations

import json

import pytest
import torch

from labelsplat.errors import LabelsplatError
from labelsplat.parsers.bisenet import load_bisenet
from labelsplat.train.loop import TrainConfig, artifact_paths, train


def _cfg(ds, out, **kw):
    base = dict(data=[str(ds)], out=str(out), input_size=32, iters=4, batch_size=2, seed=3, device="cpu",
                log_every=1, ckpt_every=0)
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_train_lowers_the_loss(tiny_dataset, tmp_path):
    out = tmp_path / "m.pth"
    res = train(_cfg(tiny_dataset, out, iters=12, batch_size=2, input_size=32, crop_size=32, augment=False,
                     warmup_iters=2, lr=1e-2))
    first, last = sum(res.losses[:3]) / 3, sum(res.losses[-3:]) / 3
    assert last < 0.6 * first, res.losses
    paths = artifact_paths(out)
    sd = torch.load(paths["weights"], weights_only=True)
    assert "cp.resnet.conv1.weight" in sd and not any(k.startswith("module.") for k in sd)
    assert load_bisenet(paths["weights"], n_classes=19).n_classes == 19
    meta = json.loads(paths["meta"].read_text())
    assert meta["label_scheme"] == "celebamask19-zll" and meta["input_size"] == 32 and meta["steps"] == 12
    log = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 13))
    assert all({"loss", "loss_main", "loss16", "loss32", "lr"} <= set(r) for r in log)


def test_resume_matches_uninterrupted_run(tiny_dataset, tmp_path):
    ref = train(_cfg(tiny_dataset, tmp_path / "ref.pth", workers=2))  # threaded batch preparation, same batches
    out = tmp_path / "int.pth"

    def stop(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_dataset, out), on_step=stop)
    paths = artifact_paths(out)
    assert paths["state"].is_file() and not paths["weights"].exists()
    state = torch.load(paths["state"], weights_only=True)
    assert state["step"] == 2
    with pytest.raises(LabelsplatError, match="already exists"):
        train(_cfg(tiny_dataset, out))
    with pytest.raises(LabelsplatError, match="differs"):
        train(_cfg(tiny_dataset, out, seed=4), resume=True)
    res = train(_cfg(tiny_dataset, out), resume=True)
    assert res.start_step == 2 and res.steps == 4
    assert res.losses == ref.losses[2:]
    a = torch.load(ref.weights, weights_only=True)
    b = torch.load(res.weights, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line)["step"] for line in paths["log"].read_text().splitlines()]
    assert log == [1, 2, 3, 4]


def test_finetune_from_init_and_class_check(tiny_dataset, tmp_path):
    from labelsplat.parsers.bisenet import BiSeNet

    torch.manual_seed(0)
    init = tmp_path / "init.pth"
    torch.save(BiSeNet(19).state_dict(), init)
    ft = train(_cfg(tiny_dataset, tmp_path / "ft.pth", iters=1, init=str(init), lr=1e-3))
    assert ft.steps == 1
    assert json.loads(artifact_paths(tmp_path / "ft.pth")["meta"].read_text())["config"]["init"] == str(init)
    with pytest.raises(LabelsplatError, match="19 classes but 11"):
        train(_cfg(tiny_dataset, tmp_path / "bad.pth", iters=2, init=str(init), scheme="lapa11"))
    with pytest.raises(LabelsplatError, match="batch-size"):
        train(_cfg(tiny_dataset, tmp_path / "b1.pth", batch_size=1))


def test_loop_step_by_step_matches_train(tiny_dataset, tmp_path):
    """TrainLoop driven by hand (setup, step, finish) gives train()'s losses and weights; run()
    calls the callbacks in order: setup, every step, finish."""
    from labelsplat.train.distributed import setup
    from labelsplat.train.loop import TrainLoop

    ref = train(_cfg(tiny_dataset, tmp_path / "ref.pth"))
    cfg = _cfg(tiny_dataset, tmp_path / "loop.pth").resolved()
    loop = TrainLoop(cfg, setup("cpu"))
    loop.setup()
    stats = [loop.step() for _ in range(cfg.iters)]
    assert [s.step for s in stats] == [1, 2, 3, 4] and [s.loss for s in stats] == ref.losses
    res = loop.finish()
    a, b = torch.load(ref.weights, weights_only=True), torch.load(res.weights, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)

    seen = []

    class Recorder:
        def on_setup(self, loop):
            seen.append(("setup", loop.start))

        def on_step(self, loop, stats):
            seen.append(("step", stats.step))

        def on_finish(self, loop):
            seen.append(("finish", loop.step_count))

    TrainLoop(cfg, setup("cpu"), overwrite=True, callbacks=[Recorder()]).run()
    assert seen == [("setup", 0), ("step", 1), ("step", 2), ("step", 3), ("step", 4), ("finish", 4)]
