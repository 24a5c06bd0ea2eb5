"""The glyph command: help, dispatch, unknown commands."""
import subprocess
import sys

from glyph.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for words, _, _ in COMMANDS:
        assert " ".join(words) in out


def test_unknown_command_prints_help_and_exits_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "data scenes" in err


def test_every_command_module_has_main():
    import importlib
    for _, module, _ in COMMANDS:
        assert callable(importlib.import_module(module).main)


def test_data_scenes_runs_through_the_console_script(tmp_path):
    out = tmp_path / "scenes"
    done = subprocess.run([sys.executable, "-m", "glyph", "data", "scenes", "--out", str(out), "--n", "12"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 12 scenes" in done.stdout and "rendering scenes" in done.stderr  # progress bar
    assert len(list((out / "images").glob("*.png"))) == 12
