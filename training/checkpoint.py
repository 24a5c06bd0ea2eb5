"""Atomic training checkpoints, resume, and atomic directories.

    save_checkpoint(out / "checkpoint", model, optimizer, scheduler, state)
    state = load_checkpoint(out / "checkpoint", model, optimizer, scheduler)   # None when there is none
    with staged_directory(out / "tokenizer") as staged:                         # any directory, whole or not at all
        tokenizer.save_pretrained(staged)

A checkpoint is a directory: the model's weights (safetensors), the optimizer
and scheduler state (torch.save of tensors and numbers only, read back with
`weights_only=True`) and `state.json` (step, history, anything JSON). It is
written beside the old one and swapped in with renames, so a kill at any
moment leaves a whole checkpoint, old or new.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from assistant.config import first_line

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"


def save_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler, state: dict,
                    only_trainable: bool = False) -> Path:
    """only_trainable=True keeps just the parameters that require grad: a frozen LLM is not copied each time."""
    directory = Path(directory)
    weights = trainable_state(model) if only_trainable else model.state_dict()
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    with staged_directory(directory) as staged:
        save_file(weights, staged / MODEL_FILE)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staged / OPTIMIZER_FILE)
        (staged / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")
    return directory


@contextmanager
def staged_directory(destination: Path, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """A fresh folder beside `destination` to write into; when the block ends it replaces `destination` whole.

    The sub-folders named in `keep` move over from the old `destination` first. If the block fails, the staged
    folder is deleted and `destination` stays as it was. Between the two renames of the swap the old directory
    is `.NAME.old` (find_checkpoint looks there), so a kill at any moment leaves a whole directory, old or new.
    """
    destination = Path(destination)
    staged = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    for name in keep:
        if (destination / name).exists():
            os.replace(destination / name, staged / name)
    _swap_in(staged, destination)


def _swap_in(staged: Path, destination: Path) -> None:
    old = destination.with_name(f".{destination.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        destination.rename(old)  # until the next line, `old` is the directory that find_checkpoint finds
    staged.rename(destination)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: Path) -> Path | None:
    """The checkpoint directory to resume from, also when a kill fell between the two renames."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(f".{directory.name}.old")):
        if (candidate / STATE_FILE).is_file():
            return candidate
    return None


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message says how to start over."""


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def load_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler,
                    only_trainable: bool = False) -> dict | None:
    found = find_checkpoint(directory)
    if found is None:
        return None
    try:
        return _restore(found, model, optimizer, scheduler, only_trainable)
    except (OSError, RuntimeError, KeyError, SafetensorError, pickle.UnpicklingError, json.JSONDecodeError) as error:
        raise CheckpointError(f"the checkpoint {found} cannot be read ({type(error).__name__}: {first_line(error)}); "
                              f"delete {directory} to train from the start, or pass --overwrite") from error


def _restore(found: Path, model: torch.nn.Module, optimizer, scheduler, only_trainable: bool) -> dict:
    weights = load_file(found / MODEL_FILE)
    if only_trainable:
        expected = set(trainable_state(model))
        if set(weights) != expected:
            raise ValueError(f"{found} holds other trainable parameters than this model has "
                             f"({len(set(weights) ^ expected)} differ); use a new --out, or --overwrite")
        model.load_state_dict(weights, strict=False)
    else:
        model.load_state_dict(weights)
    states = torch.load(found / OPTIMIZER_FILE, weights_only=True)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    return json.loads((found / STATE_FILE).read_text())


def read_state(directory: Path) -> dict | None:
    found = find_checkpoint(directory)
    return json.loads((found / STATE_FILE).read_text()) if found else None
