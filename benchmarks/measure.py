"""Timing and memory of one call, and the machine's physical limits the results are compared with.

    seconds = timed(fn)                      # wall time of fn()
    extra = peak_memory(fn)                  # bytes of resident memory fn() adds at its peak
    bandwidth_bytes_per_s(), matmul_flops_per_s(torch.bfloat16)
"""
from __future__ import annotations

import ctypes
import gc
import os
import statistics
import threading
import time
from collections.abc import Callable

import torch

PAGE = os.sysconf("SC_PAGE_SIZE")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so the next baseline is what is really in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the baseline may include some freed memory
        pass


def peak_memory(fn: Callable[[], object], interval: float = 0.001) -> int:
    """Bytes of resident memory above the baseline at fn()'s peak, sampled every `interval` seconds.

    CPU tensors are ordinary heap memory, so the process's resident set is the measure (torch keeps no
    CPU allocator statistics). Sampled: a peak shorter than the interval can be missed."""
    _release_free_memory()
    baseline = resident_bytes()
    peak, done = baseline, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, resident_bytes())
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return max(peak, resident_bytes()) - baseline


def bandwidth_bytes_per_s(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory read bandwidth: the best of `repeats` sums over a buffer far larger than the caches."""
    buffer = torch.ones(megabytes * 2 ** 20 // 4)
    buffer.sum()
    best = min(timed(buffer.sum) for _ in range(repeats))
    return buffer.numel() * 4 / best


def matmul_flops_per_s(dtype: torch.dtype, size: int = 1024, repeats: int = 5) -> float:
    """Matrix-multiply peak: the best of `repeats` square products, the largest work a small model's layers do."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size ** 3 / best
