"""What every Glyph trainer sets up the same way: its common options, the accelerator, when checkpoints are saved.

    parser = trainer_parser("vqvae", description, data_help, out_help, bad_help)  # --data --out --overwrite ...
    add_run_options(train_group, outputs_group, log_every=20, save_every=250)       # --precision --seed --log-every
    accelerator, precision = start_accelerator(args.precision, args.out)
    saving = SaveSchedule(args.save_every, args.save_minutes, accelerator)   # add_run_options(...) adds both
    ... if saving.due(step): save()
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import broadcast

from assistant.config import ConfigError
from training.precision import PRECISIONS, choose_precision


def start_accelerator(requested_precision: str, out: Path, gradient_accumulation_steps: int = 1,
                      kwargs_handlers: list | None = None) -> tuple[Accelerator, str]:
    """An Accelerator logging to out/logs (TensorBoard), and the precision chosen ('no' = fp32, or 'bf16')."""
    precision = choose_precision(requested_precision, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    _forget_other_precision(precision)
    accelerator = Accelerator(mixed_precision=precision, log_with="tensorboard", project_dir=str(out / "logs"),
                              gradient_accumulation_steps=gradient_accumulation_steps,
                              kwargs_handlers=kwargs_handlers)
    if accelerator.device.type == "cpu" and accelerator.num_processes == 1:
        # `accelerate launch` sets OMP_NUM_THREADS=1 for every process; one process alone should use every core.
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    return accelerator, precision


def _forget_other_precision(precision: str) -> None:
    """Let this trainer use its own precision after an earlier trainer in the same process used another.

    accelerate keeps one AcceleratorState per process and refuses a second mixed precision. `glyph build` runs
    its trainers one after another in one process (so does a test session), and one may ask for fp32 while
    the next's `auto` picks bf16. The earlier trainer is finished by then, so its state is dropped; the
    process group (accelerate's PartialState) stays as it is.
    """
    state = AcceleratorState._shared_state
    if state.get("_mixed_precision") not in (None, precision):
        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()


def trainer_parser(command: str, description: str, data_help: str, out_help: str, bad_help: str,
                   **data_options) -> argparse.ArgumentParser:
    """The options every trainer has: --data (with `data_options`), --out, --overwrite and --skip-bad."""
    p = argparse.ArgumentParser(prog=f"glyph train {command}", description=description)
    p.add_argument("--data", required=True, help=data_help, **data_options)
    p.add_argument("--out", required=True, type=Path, help=out_help)
    p.add_argument("--overwrite", action="store_true", help="delete --out and train from scratch")
    p.add_argument("--skip-bad", action="store_true", help=bad_help)
    return p


def add_run_options(train: argparse._ArgumentGroup, outputs: argparse._ArgumentGroup, log_every: int,
                    save_every: int) -> None:
    """--precision and --seed in the `train` group; --log-every and the save options in `outputs`."""
    train.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 autocast only where this machine runs it faster")
    train.add_argument("--seed", type=int, default=0)
    outputs.add_argument("--log-every", type=int, default=log_every, help="a log row every this many steps")
    add_save_options(outputs, save_every)


def add_schedule_options(train: argparse._ArgumentGroup, lr: float, warmup: int, weight_decay: float,
                         decay_help: str | None = None) -> None:
    """--lr, --warmup (steps) and --weight-decay: training.schedule's AdamW and cosine schedule."""
    train.add_argument("--lr", type=float, default=lr)
    train.add_argument("--warmup", type=int, default=warmup, help="linear warm-up steps before the cosine decay")
    train.add_argument("--weight-decay", type=float, default=weight_decay, help=decay_help)


def add_save_options(group: argparse._ArgumentGroup, every: int) -> None:
    """--save-every (steps) and --save-minutes (wall time): a checkpoint is written when either comes round."""
    group.add_argument("--save-every", type=_at_least(int, 1), default=every,
                       help="save a checkpoint every this many steps")
    group.add_argument("--save-minutes", type=_at_least(float, 0), default=2.0,
                       help="and whenever this many minutes have passed since the last save, so that a kill "
                            "loses no more than that however slow a step is; 0: by steps only")


def _at_least(kind: type, low: float):
    """An argparse type: a number of `kind` no smaller than `low` (argparse prints the one-line error)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= low:  # NaN too
            raise argparse.ArgumentTypeError(f"{text} is below {low}")
        return value
    return parse


class SaveSchedule:
    """When to save: every `every` steps, and once `minutes` of wall time have passed since the last save.

    Every process must save together (a save may gather the model), while their clocks differ, so the main
    process decides and the others follow it.
    """

    def __init__(self, every: int, minutes: float, accelerator: Accelerator | None = None):
        if every < 1:
            raise ConfigError(f"--save-every {every}: save every 1 or more steps")
        if not minutes >= 0:  # NaN too
            raise ConfigError(f"--save-minutes {minutes:g}: give 0 (by steps only) or more minutes")
        self.every, self.seconds, self.accelerator = every, minutes * 60, accelerator
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        due = step % self.every == 0 or (self.seconds > 0 and time.monotonic() - self.last >= self.seconds)
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            due = bool(broadcast(torch.tensor([int(due)], device=self.accelerator.device)).item())
        if due:
            self.last = time.monotonic()
        return due
