"""The training precision is decided once per process."""
from __future__ import annotations

import torch

from training import precision


def test_auto_precision_is_measured_once_per_process(monkeypatch):
    """glyph build runs several trainers in one process; a second, noisier timing must not flip the choice, or
    one machine would train one stage in bf16 and the next in fp32."""
    timings = iter([2.0, 1.0])
    monkeypatch.setattr(precision, "_bf16_speedup_on_cpu", lambda: next(timings))
    precision.choose_precision.cache_clear()
    try:
        first = precision.choose_precision("auto", torch.device("cpu"))
        second = precision.choose_precision("auto", torch.device("cpu"))
    finally:
        precision.choose_precision.cache_clear()
    assert first == second == "bf16"
    assert precision.choose_precision("fp32", torch.device("cpu")) == "no"


def test_trainers_in_one_process_may_use_different_precisions(tmp_path):
    """glyph build runs trainers one after another in one process; accelerate's singleton state once refused
    the second one's precision ("AcceleratorState has already been initialized")."""
    from training.harness import start_accelerator

    first, chosen = start_accelerator("fp32", tmp_path / "a")
    assert chosen == "no" and first.mixed_precision == "no"
    second, chosen = start_accelerator("bf16", tmp_path / "b")
    assert chosen == "bf16" and second.mixed_precision == "bf16"
    third, _ = start_accelerator("fp32", tmp_path / "c")
    assert third.mixed_precision == "no"
