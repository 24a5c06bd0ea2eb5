"""Timing and memory of one call, and the machine's physical limits the results are compared with.

    seconds = timed(fn)                      # wall time of fn()
    extra = peak_memory(fn)                  # bytes of resident memory fn() adds at its peak
    bandwidth_bytes_per_s(), matmul_flops_per_s(torch.bfloat16)
    timed(fn, cuda), peak_memory(fn, cuda)   # on a GPU: the clock read after the GPU's work, its allocator's peak

On a GPU the work is queued and runs after the call returns, so every clock reading waits for it first
(torch.cuda.synchronize), and memory is the CUDA allocator's own peak (torch keeps those statistics for CUDA,
not for the CPU).
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
CPU = torch.device("cpu")


def now(device: torch.device = CPU) -> float:
    """The clock, once the work queued on `device` is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def timed(fn: Callable[[], object], device: torch.device = CPU) -> float:
    started = now(device)
    fn()
    return now(device) - started


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


def peak_memory(fn: Callable[[], object], device: torch.device = CPU, interval: float = 0.001) -> int:
    """Bytes of memory above the baseline at fn()'s peak: the GPU allocator's on CUDA, else resident memory."""
    if device.type == "cuda":
        return peak_cuda_memory(fn, device)
    return peak_resident_memory(fn, interval)


def peak_cuda_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes the CUDA allocator holds for tensors above the baseline at fn()'s peak (exact: no sampling)."""
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - baseline


def peak_resident_memory(fn: Callable[[], object], interval: float = 0.001) -> int:
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


def bandwidth_bytes_per_s(megabytes: int = 512, repeats: int = 5, device: torch.device = CPU) -> float:
    """Memory read bandwidth: the best of `repeats` sums over a buffer far larger than the caches."""
    buffer = torch.ones(megabytes * 2 ** 20 // 4, device=device)
    buffer.sum()
    best = min(timed(buffer.sum, device) for _ in range(repeats))
    return buffer.numel() * 4 / best


def matmul_flops_per_s(dtype: torch.dtype, size: int = 1024, repeats: int = 5, device: torch.device = CPU) -> float:
    """Matrix-multiply peak: the best of `repeats` square products, the largest work a small model's layers do."""
    a, b = torch.randn(size, size, device=device).to(dtype), torch.randn(size, size, device=device).to(dtype)
    a @ b
    best = min(timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * size ** 3 / best
