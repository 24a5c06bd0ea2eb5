"""Atomic training checkpoints, and resume.

    save_checkpoint(out / "checkpoint", model, optimizer, scheduler, state)
    state = load_checkpoint(out / "checkpoint", model, optimizer, scheduler)   # None when there is none

A checkpoint is a directory: the model's weights (safetensors), the optimizer
and scheduler state (torch.save of tensors and numbers only, read back with
`weights_only=True`) and `state.json` (step, history, anything JSON). It is
written beside the old one and swapped in with renames, so a kill at any
moment leaves a whole checkpoint, old or new.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"


def save_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler, state: dict) -> Path:
    directory = Path(directory)
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, partial / MODEL_FILE)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, partial / OPTIMIZER_FILE)
    (partial / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")
    _swap_in(partial, directory)
    return directory


def _swap_in(partial: Path, directory: Path) -> None:
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)  # until the next line, `old` is the checkpoint that load_checkpoint finds
    partial.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: Path) -> Path | None:
    """The checkpoint directory to resume from, also when a kill fell between the two renames."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(f".{directory.name}.old")):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


def load_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler) -> dict | None:
    found = find_checkpoint(directory)
    if found is None:
        return None
    model.load_state_dict(load_file(found / MODEL_FILE))
    states = torch.load(found / OPTIMIZER_FILE, weights_only=True)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    return json.loads((found / STATE_FILE).read_text())


def read_state(directory: Path) -> dict | None:
    found = find_checkpoint(directory)
    return json.loads((found / STATE_FILE).read_text()) if found else None
