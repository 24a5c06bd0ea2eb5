"""Pick the training precision that is fastest on this machine.

bf16 autocast doubles matmul speed on CPUs with AVX-512-BF16 or AMX and on
recent GPUs, but on a CPU without them (AVX2 only) PyTorch emulates it and a
step runs tens of times slower. `auto` decides in two steps, because a timing
alone flips when the cores are busy (a load made an AVX-512-BF16 machine pick
fp32, and a batch of 32 then took 84 s a step):

1. the CPU's flags: without avx512_bf16 or amx_bf16 bf16 is never faster, so fp32, no timing;
2. with them, a timing of fp32 against bf16 matmuls, best of several rounds (the best round is the one
   least disturbed by other work), kept in the cache per CPU model and flags, so a later process on
   the same machine decides the same without timing again.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

import torch
from boltons.fileutils import atomic_save

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
    flags, model = _cpu_flags_and_model()
    if flags is not None and not any(flag in flags for flag in BF16_FLAGS):
        return False
    cache = Path(os.environ.get("GLYPH_CACHE", ".cache/glyph")) / "precision.json"
    key = hashlib.sha256(f"{model}|{sorted(flags or [])}|{torch.__version__}".encode()).hexdigest()[:16]
    known = _read_json(cache)
    if key not in known:
        known[key] = {"cpu": model, "bf16_speedup": round(_bf16_speedup_on_cpu(), 2)}
        _write_json(cache, known)
    return known[key]["bf16_speedup"] > 1.2


def _cpu_flags_and_model() -> tuple[set[str] | None, str]:
    """The CPU's flags and model name from /proc/cpuinfo (None where there is no such file: then time it)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "unknown"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return set(fields.get("flags", "").split()) or None, fields.get("model name", "unknown")


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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_save(str(path), text_mode=True) as file:
            file.write(json.dumps(data, indent=2))
    except OSError:
        pass  # an unwritable cache only means timing again next time
