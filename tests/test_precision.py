"""The training precision is decided once per process."""
from __future__ import annotations

import json

import pytest
import torch

from training import precision


def test_auto_precision_is_measured_once_per_process(monkeypatch, tmp_path):
    """glyph build runs several trainers in one process; a second, noisier timing must not flip the choice, or
    one machine would train one stage in bf16 and the next in fp32."""
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_flags_and_model", lambda: ({"avx512_bf16"}, "a bf16 CPU"))
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


def test_a_cpu_without_bf16_flags_trains_in_fp32_without_timing(monkeypatch, tmp_path):
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_flags_and_model", lambda: ({"avx2", "fma"}, "some AVX2 CPU"))
    monkeypatch.setattr(precision, "_bf16_speedup_on_cpu", lambda: pytest.fail("timed on a CPU without bf16"))
    assert precision.cpu_bf16_is_faster() is False


def test_a_bf16_cpu_is_timed_once_and_the_verdict_is_kept_for_later_processes(monkeypatch, tmp_path):
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_flags_and_model", lambda: ({"avx512_bf16"}, "a bf16 CPU"))
    timings = iter([3.0, 0.5])  # a second timing, on busy cores, would say the opposite
    monkeypatch.setattr(precision, "_bf16_speedup_on_cpu", lambda: next(timings))
    assert precision.cpu_bf16_is_faster() is True
    assert precision.cpu_bf16_is_faster() is True  # read back, not timed again
    kept = json.loads((tmp_path / "precision.json").read_text())
    assert [entry["bf16_speedup"] for entry in kept.values()] == [3.0]
    monkeypatch.setattr(precision, "cpu_flags_and_model", lambda: ({"amx_bf16"}, "another CPU"))
    assert precision.cpu_bf16_is_faster() is False  # another machine is timed anew (0.5)
