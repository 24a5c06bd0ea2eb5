"""The glyph command: help, dispatch to each command's module, unknown commands."""
import subprocess
import sys

import pytest

from glyph.cli import COMMANDS, find_command, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for words, _, summary in COMMANDS:
        assert f"  {' '.join(words)} " in out and summary in out


@pytest.mark.parametrize("words", [words for words, _, _ in COMMANDS], ids=" ".join)
def test_every_command_reaches_its_own_parser_and_its_help_exits_0(words, capsys):
    """The module imports, has main(argv), and its parser is named after the command (so it is the right one)."""
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: glyph {' '.join(words)} ")


def test_the_longest_command_wins_and_the_rest_are_its_arguments():
    assert find_command(["eval", "lm", "--model", "runs/lm"]) == ("training.eval_lm", ["--model", "runs/lm"])
    assert find_command(["build", "scenes-tiny", "--out", "x"]) == ("training.build", ["scenes-tiny", "--out", "x"])
    assert find_command(["eval"]) is None and find_command(["lm"]) is None


@pytest.mark.parametrize("argv", [["frobnicate"], ["train", "frobnicate", "--out", "x"], ["eval"]])
def test_unknown_command_is_one_error_line_then_the_usage_and_exits_2(argv, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    first, rest = err.split("\n", 1)
    assert out == "" and first == f"glyph: unknown command {' '.join(argv[:2])!r}"
    assert rest.strip().startswith("usage: glyph <command>") and "data scenes" in rest


def test_data_scenes_runs_through_the_console_script(tmp_path):
    out = tmp_path / "scenes"
    done = subprocess.run([sys.executable, "-m", "glyph", "data", "scenes", "--out", str(out), "--n", "12"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 12 scenes" in done.stdout and "rendering scenes" in done.stderr  # progress bar
    assert len(list((out / "images").glob("*.png"))) == 12
