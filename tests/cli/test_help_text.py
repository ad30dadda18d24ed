"""Help text and messages: brackets survive rich formatting, flags show no value type, defaults are
the presets', snapshots of a few commands' help, and every hint names an option that exists."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from pathlib import Path

import pytest
import typer

SRC = Path(__file__).resolve().parents[2] / "src" / "labelsplat"
SNAPSHOTS = Path(__file__).resolve().parent / "help_snapshots"
#: commands whose whole help is pinned (LABELSPLAT_UPDATE_HELP_SNAPSHOTS=1 rewrites the files)
SNAPSHOT_COMMANDS = (("scene", "import"), ("scene", "head-frame"), ("labels", "check-lr"), ("export-onnx",),
                     ("capture",))


def _tree():
    from labelsplat.cli import _register_all, app

    _register_all()
    return typer.main.get_command(app)


def _commands(cmd=None, path=()):
    cmd = cmd or _tree()
    subs = getattr(cmd, "commands", {})
    yield path, cmd
    for name, sub in subs.items():
        yield from _commands(sub, (*path, name))


def _flat(s: str) -> str:
    return re.sub(r"[\s│╭╮╰╯─]+", "", s)


@pytest.fixture(scope="module")
def all_help():
    """{command path: rendered --help} for every command (one in-process run each)."""
    import contextlib
    import io

    from labelsplat.cli import main

    out = {}
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "120"
    try:
        for path, _ in _commands():
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main([*path, "--help"]) == 0
            out[path] = buf.getvalue()
    finally:
        if old is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = old
    return out


def test_brackets_in_help_survive_and_flags_show_no_type(all_help):
    assert len(all_help) > 20  # groups and commands
    for path, cmd in _commands():
        text = all_help[path]
        assert "<bool>" not in text, path
        sources = [cmd.help or "", cmd.epilog or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for bracket in {b for s in sources for b in re.findall(r"\[[a-z][a-z0-9_-]*\]", s)}:
            assert bracket in _flat(text), (path, bracket)
    assert "labelsplat[onnx]" in _flat(all_help[("export-onnx",)])
    assert "fromfacelandmarks([mediapipe])" in _flat(all_help[("capture",)])


def test_flags_take_no_value_and_check_lr_json_takes_a_path(all_help):
    info = re.sub(r"[\s│]+", " ", all_help[("scene", "info")])
    assert re.search(r"--json Print the summary", info)  # a flag: no value type shown
    check_lr = re.sub(r"[\s│]+", " ", all_help[("labels", "check-lr")])
    assert re.search(r"--json <path>", check_lr)  # an option that takes a file keeps its type


def test_preset_defaults_in_help(all_help):
    from labelsplat.config import PRESET_NAMES, preset

    fit_help = re.sub(r"\s+", " ", all_help[("fit",)].replace("│", " "))
    refine_help = re.sub(r"\s+", " ", all_help[("refine",)].replace("│", " "))
    for name in PRESET_NAMES:
        cfg = preset(name)
        for text in (fit_help, refine_help):
            assert f"{name} {cfg.fit.semantic_grad}" in text, name
            assert f"{name} {cfg.fit.steps}" in text, name
        assert f"{name} {cfg.export.novel_views}" in refine_help, name
        assert f"{name} {cfg.members}" in refine_help, name


@pytest.mark.parametrize("path", SNAPSHOT_COMMANDS, ids=lambda p: "-".join(p))
def test_help_snapshot(all_help, path):
    text = "\n".join(line.rstrip() for line in all_help[path].splitlines()).strip() + "\n"
    snap = SNAPSHOTS / f"{'_'.join(path)}.txt"
    if os.environ.get("LABELSPLAT_UPDATE_HELP_SNAPSHOTS") == "1" or not snap.exists():
        snap.write_text(text)
    assert text == snap.read_text(), f"help of {' '.join(path)} changed: rerun with LABELSPLAT_UPDATE_HELP_SNAPSHOTS=1"


# ----------------------------------------------------------------------------- hints name real options
def _hint_texts():
    """(file:line, text) of every ``hint=`` string (f-string parts joined) in the package."""
    for py in SRC.rglob("*.py"):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "hint":
                parts = [n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                if parts:
                    yield f"{py.relative_to(SRC)}:{node.value.lineno}", " ".join(parts)


def _option_names():
    names = set()
    for _, cmd in _commands():
        for p in cmd.params:
            names.update(o for o in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ())) if o.startswith("--"))
    return names | {"--help", "--debug", "--version", "--max-image-pixels"}  # global options (cli.main)


def test_every_hint_names_existing_options():
    from labelsplat.extract.postprocess import PostprocessConfig
    from labelsplat.splat.config import FitConfig
    from labelsplat.views import ViewSamplerConfig

    options = _option_names()
    setters = {"--sampler-set": ViewSamplerConfig, "--pp-set": PostprocessConfig, "--fit-set": FitConfig}
    fields = {f.name: opt for opt, cls in setters.items() for f in dataclasses.fields(cls) if "_" in f.name}
    hints = list(_hint_texts())
    assert len(hints) > 100
    bad = []
    for where, text in hints:
        text = re.sub(r"`(?!labelsplat )[^`]*`", "", text)  # other programs' commands (`ray start --head`)
        for opt in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text):
            if opt not in options:
                bad.append(f"{where}: {opt} is no option")
        for word in re.findall(r"\b[a-z]+(?:_[a-z0-9]+)+\b", text):
            if word in fields and fields[word] not in text and f"--{word.replace('_', '-')}" not in text:
                bad.append(f"{where}: names the setting {word} but not {fields[word]}")
    assert not bad, bad


def test_sampler_set_reaches_the_settings_the_hint_names():
    from labelsplat.cli.options import build_refine_config
    from labelsplat.errors import LabelsplatError

    cfg = build_refine_config({"preset": "micro", "sampler": "uniform",
                               "sampler_set": ["min_head_fraction=0.02", "max_tries=5000"]})
    assert (cfg.sampler.preset, cfg.sampler.min_head_fraction, cfg.sampler.max_tries) == ("uniform", 0.02, 5000)
    with pytest.raises(LabelsplatError, match="unknown view-sampler setting 'yaw'"):
        build_refine_config({"sampler_set": ["yaw=3"]})
