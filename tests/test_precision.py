"""The training precision is decided once per process."""
from __future__ import annotations

import torch

from training import precision


def test_auto_precision_is_measured_once_per_process(monkeypatch):
    """glyph build runs several trainers in one process; accelerate's state refuses a second precision, so a
    second, noisier timing must not flip the choice."""
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
