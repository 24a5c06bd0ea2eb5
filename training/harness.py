"""What every Glyph training script does the same way: the accelerator, and finished or interrupted runs.

    accelerator, precision = start_accelerator(args.precision, args.out)
    if already_trained(state, args.out): return 0
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from training.precision import choose_precision


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


def already_trained(state: dict | None, out: Path) -> bool:
    """True (and says so) when `out` holds a finished run, which is never trained again by accident."""
    if state is None or not state.get("finished"):
        return False
    print(f"{out} is already trained ({state['step']} steps); see {out / 'report.json'}. "
          "Pass --overwrite to train again.")
    return True
