import subprocess
import sys

from labelsplat.errors import LabelsplatError


def test_help_lists_commands(cli):
    r = cli("--help")
    assert r.exit_code == 0
    assert "labelsplat" in r.output


def test_version(cli):
    from labelsplat import __version__

    r = cli("--version")
    assert r.exit_code == 0 and __version__ in r.output


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "labelsplat", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_error_message_without_traceback(cli, monkeypatch):
    import labelsplat.cli as c
    import typer

    def boom():
        raise LabelsplatError("something is wrong", path="x.json", hint="do this")

    sub = typer.Typer()
    sub.command("boom")(boom)
    monkeypatch.setattr(c, "_registered", False)
    c.app.add_typer(sub, name="testboom")
    try:
        r = cli("testboom", "boom")
        assert r.exit_code == 2
        assert "x.json: something is wrong" in r.output and "fix: do this" in r.output
        assert "Traceback" not in r.output
        r = cli("testboom", "boom", "--debug")
        assert "Traceback" in r.output
    finally:
        c.app.registered_groups = [g for g in c.app.registered_groups if g.name != "testboom"]


def test_error_text_keeps_square_brackets(cli, tmp_path):
    # messages are printed without rich markup: "labelsplat[onnx]" must survive
    r = cli("scene", "info", tmp_path / "missing[x]")
    assert r.exit_code == 2 and "missing[x]" in r.output.replace("\n", "")
