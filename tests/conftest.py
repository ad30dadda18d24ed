"""Shared fixtures: in-process CLI runner and small cached inputs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.exit_code, self.stdout, self.stderr = code, out, err

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``labelsplat ARGS...`` in-process; returns a result with exit_code/stdout/stderr.

    Output is rendered 250 columns wide (tables and messages are not wrapped), whatever the
    terminal of the test run.
    """
    import labelsplat.cli as cli_module
    from labelsplat.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    for con in (cli_module.console, cli_module.err_console):
        monkeypatch.setattr(con, "width", 250)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch intra-op thread (restored afterwards). Tiny BiSeNet steps gain
    nothing from intra-op threads, and on a shared, busy CPU two spinning OpenMP threads make each
    of the ~500 small ops per step wait for a descheduled partner (measured: 5-7 s per step with 2
    threads vs ~0.4 s with 1 under load). Used by the parser, train and parse/train CLI tests."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def bisenet_weights(tmp_path_factory):
    """A BiSeNet state dict file (19 classes, random weights from seed 0), shared by the tests that
    parse with real weights."""
    import torch

    from labelsplat.parsers.bisenet import BiSeNet

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("bisenet") / "bisenet.pth"
    torch.save(BiSeNet(19).state_dict(), p)
    return p
