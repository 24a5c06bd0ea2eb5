"""Pick the training precision that is fastest on this machine.

bf16 autocast doubles matmul speed on CPUs with AVX-512-BF16 or AMX and on
recent GPUs, but on a CPU without them (AVX2 only) PyTorch emulates it and a
step runs tens of times slower. `auto` therefore times a small matmul both
ways instead of guessing from the CPU's name.
"""
from __future__ import annotations

import functools
import time

import torch

PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def choose_precision(requested: str, device: torch.device) -> str:
    """'no' (fp32) or 'bf16', in accelerate's `mixed_precision` spelling.

    Decided once per process: `glyph build` runs several trainers in one process, and a timing taken while
    the cores are busy can come out the other way (it did, between stage 1 and stage 2 on an AVX-512-BF16
    machine), so the same machine would train one stage in bf16 and the next in fp32."""
    if requested == "fp32":
        return "no"
    if requested == "bf16":
        return "bf16"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if _bf16_speedup_on_cpu() > 1.2 else "no"


def _bf16_speedup_on_cpu(size: int = 256, repeats: int = 3) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)

    def seconds(dtype: torch.dtype) -> float:
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # warm-up: first calls pick kernels
        start = time.perf_counter()
        for _ in range(repeats):
            x @ y
        return time.perf_counter() - start

    return seconds(torch.float32) / seconds(torch.bfloat16)
