"""Pick the training precision that is fastest on this machine.

bf16 autocast doubles matmul speed on CPUs with AVX-512-BF16 or AMX and on
recent GPUs, but on a CPU without them (AVX2 only) PyTorch emulates it and a
step runs tens of times slower. `auto` decides in two steps, because a timing
alone flips when the cores are busy (a load made an AVX-512-BF16 machine pick
fp32, and a batch of 32 then took 84 s a step):

1. the CPU's flags: without avx512_bf16 or amx_bf16 bf16 is never faster, so fp32, no timing;
2. with them, a timing of fp32 against bf16 matmuls, best of several rounds (the best round is the one
   least disturbed by other work), kept per CPU model and flags (assistant/machine.py), so a later process on
   the same machine decides the same without timing again.
"""
from __future__ import annotations

import functools
import time

import torch

from assistant.machine import cpu_flags_and_model, machine_key, remembered

PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def choose_precision(requested: str, device: torch.device) -> str:
    """'no' (fp32) or 'bf16', in accelerate's `mixed_precision` spelling.

    Decided once per process: `glyph build` runs several trainers in one process, and each must train in
    the same precision."""
    if requested == "fp32":
        return "no"
    if requested == "bf16":
        return "bf16"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_bf16_is_faster() else "no"


def cpu_bf16_is_faster() -> bool:
    flags, model = cpu_flags_and_model()
    if flags is not None and not any(flag in flags for flag in BF16_FLAGS):
        return False
    known = remembered("precision", machine_key(flags_and_model=(flags, model)),
                       lambda: {"cpu": model, "bf16_speedup": round(_bf16_speedup_on_cpu(), 2)})
    return known["bf16_speedup"] > 1.2


def _bf16_speedup_on_cpu(size: int = 512, rounds: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)

    def best_seconds(dtype: torch.dtype) -> float:
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # warm-up: first calls pick kernels
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - start)
        return min(times)

    return best_seconds(torch.float32) / best_seconds(torch.bfloat16)
