"""Checkpoints come by step count and by wall time, so a kill loses at most a few minutes however slow a step is."""
from __future__ import annotations

import pytest

from assistant.config import ConfigError
from training import harness
from training.harness import SaveSchedule


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(harness.time, "monotonic", fake)
    return fake


def test_a_save_comes_every_n_steps_when_steps_are_fast(clock):
    saving = SaveSchedule(every=3, minutes=2)
    due = []
    for step in range(1, 10):
        clock.now += 1  # a second a step: the wall-time rule never fires
        due.append(saving.due(step))
    assert due == [False, False, True] * 3


def test_a_save_comes_after_the_minutes_when_steps_are_slow(clock):
    saving = SaveSchedule(every=100, minutes=2)
    due = []
    for step in range(1, 8):
        clock.now += 50  # 50 s a step: 100 steps would be 83 minutes of work at risk
        due.append(saving.due(step))
    assert due == [False, False, True, False, False, True, False]  # at 150 s and 300 s: the clock restarts on a save


def test_zero_minutes_saves_by_steps_only(clock):
    saving = SaveSchedule(every=4, minutes=0)
    clock.now += 10 ** 6
    assert not saving.due(1) and saving.due(4)


@pytest.mark.parametrize(("every", "minutes", "named"), [(0, 2, "--save-every 0"), (10, -1, "--save-minutes -1"),
                                                             (10, float("nan"), "--save-minutes nan")])
def test_bad_values_are_one_error_naming_the_option(every, minutes, named):
    with pytest.raises(ConfigError, match=named):
        SaveSchedule(every, minutes)


@pytest.mark.parametrize("trainer", ["train_vqvae", "train_clip", "train_lm", "train_align", "train_instruct"])
def test_every_trainer_takes_save_minutes(trainer, capsys):
    module = __import__(f"training.{trainer}", fromlist=["main"])
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "--save-minutes" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--save-every", "0"], ["--save-minutes", "-1"], ["--save-minutes", "nan"],
                                 ["--save-every", "many"]])
def test_a_bad_value_on_the_command_line_is_one_line_naming_it(bad, capsys, tmp_path):
    from training import train_vqvae

    with pytest.raises(SystemExit) as stopped:
        train_vqvae.main(["--data", str(tmp_path), "--out", str(tmp_path / "vq"), *bad])
    assert stopped.value.code == 2 and f"argument {bad[0]}" in capsys.readouterr().err
