"""What this machine is, and answers about it that take a timing to find, kept so later processes skip the timing.

    flags, model = cpu_flags_and_model()            # from /proc/cpuinfo ({...}, "AMD EPYC"), (None, "unknown")
    form = remembered("matmul_forms", key, measure)  # measure() once per machine and key, then read back

Why: some choices are made by timing (is bf16 faster than fp32 here? which matrix product form is fastest for
a decoder's weights?). A timing costs start-up time in every process, and one taken while the cores are busy
can pick wrongly. So the answer is kept in GLYPH_CACHE (default .cache/glyph) as `NAME.json`, under a key that
names this machine's CPU model, its flags, the torch version and what else the caller's answer depends on.
A later process on the same machine reads it; a different machine or torch finds no entry and times again.
Delete the file to time again.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from boltons.fileutils import atomic_save


def cache_root() -> Path:
    return Path(os.environ.get("GLYPH_CACHE", ".cache/glyph"))


def cpu_flags_and_model() -> tuple[set[str] | None, str]:
    """The CPU's flags and model name from /proc/cpuinfo (None where there is no such file: then time it)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "unknown"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return set(fields.get("flags", "").split()) or None, fields.get("model name", "unknown")


def machine_key(*details: Any, flags_and_model: tuple[set[str] | None, str] | None = None) -> str:
    """A short key for this CPU model and flags, the torch version and `details` (shapes, thread counts...)."""
    flags, model = flags_and_model or cpu_flags_and_model()
    text = "|".join([model, str(sorted(flags or [])), torch.__version__, *map(str, details)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def remembered(name: str, key: str, measure: Callable[[], Any]) -> Any:
    """The answer kept under `key` in NAME.json; measured (and kept, atomically) when there is none."""
    path = cache_root() / f"{name}.json"
    known = _read_json(path)
    if key not in known:
        known[key] = measure()
        _write_json(path, {**_read_json(path), key: known[key]})  # read again: another process may have added
    return known[key]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_save(str(path), text_mode=True) as file:
            file.write(json.dumps(data, indent=2))
    except OSError:
        pass  # an unwritable cache only means timing again next time
