"""One training run in --out, the same for every Glyph trainer: resume, checkpoints, log rows, Ctrl+C, --stop-after.

    def main(argv):                                   # exit status: 0, 2 (bad input, one line), 130 (Ctrl+C)
        return trainer_main("vqvae", lambda: prepare(argv), train_loop)

    state = previous_state(args, fits=lambda saved: saved["config"] == config)  # --overwrite; None: a fresh run
    if already_trained(state, args.out): ...                                   # prepare returns None

    run = Run.resume(args, "vqvae", accelerator, model, optimizer, warmup_steps, total_steps, fresh={...})
    model, optimizer = run.prepare(model, optimizer)    # accelerate's, and TensorBoard under out/logs
    with run.interruptible():                          # Ctrl+C: a checkpoint, then exit status 130
        for step in run.steps():                       # from the resumed step to the end or --stop-after
            ... forward, backward ...
            run.optimizer_step()                       # clip gradients, optimizer and schedule, step + 1
            if run.log_due(): run.log(row)
            run.end_step()                             # the progress bar, and a checkpoint when one is due
    return run.finish(write=..., evaluate=...)         # the finished model, written once; or resumable

The checkpoint in out/checkpoint/ holds the weights, optimizer and schedule, and `state`: step, history (the
log rows), evals, seconds of training over every resumed run, and whatever `fresh` adds (the config).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm

from assistant.config import ConfigError
from training.checkpoint import CheckpointError, load_checkpoint, read_state, save_checkpoint
from training.harness import SaveSchedule
from training.schedule import cosine_with_warmup

CHECKPOINT = "checkpoint"
INTERRUPTED = 130  # the shell's exit status for Ctrl+C


def trainer_main(name: str, prepare: Callable[[], tuple | None], train: Callable[..., int]) -> int:
    """Run `prepare()` (options, --out, data; None when already trained), then `train(*prepared)`.

    Bad input is one line on stderr naming it, and exit status 2: any ValueError or OSError while preparing
    (ConfigError and the data's and recipe's errors are ValueErrors); a checkpoint that cannot be resumed or a
    batch that does not split while training (other errors there are bugs, and keep their traceback).
    """
    try:
        prepared = prepare()
    except (ValueError, OSError) as error:
        return _refused(name, error)
    if prepared is None:
        return 0
    try:
        return train(*prepared)
    except (CheckpointError, ConfigError) as error:
        return _refused(name, error)


def _refused(name: str, error: Exception) -> int:
    print(f"glyph train {name}: {error}", file=sys.stderr)
    return 2


def previous_state(args: argparse.Namespace, fits: Callable[[dict], bool] | None = None,
                   what: str = "model config") -> dict | None:
    """The saved training state in --out to resume from (None: a fresh run); --overwrite deletes --out first.

    A checkpoint whose state does not `fits` was trained with another `what`, and is refused.
    """
    if args.overwrite and args.out.exists():
        shutil.rmtree(args.out)
    state = read_state(args.out / CHECKPOINT)
    if fits is not None:
        refuse_another(state, args.out, fits, what)
    return state


def refuse_another(state: dict | None, out: Path, fits: Callable[[dict], bool], what: str) -> None:
    """ConfigError when `out` holds a checkpoint whose state does not `fits` this run (another `what`)."""
    if state is not None and not fits(state):
        raise ConfigError(f"{out / CHECKPOINT} was trained with another {what}; "
                          "use a new --out, or --overwrite to start over")


def already_trained(state: dict | None, out: Path) -> bool:
    """True (and says so) when `out` holds a finished run, which is never trained again by accident."""
    if state is None or not state.get("finished"):
        return False
    print(f"{out} is already trained ({state['step']} steps); see {out / 'report.json'}. "
          "Pass --overwrite to train again.")
    return True


def per_process(batch_size: int, processes: int, micro_batches: int = 1) -> int:
    """Examples per process and micro-batch: --batch-size must split evenly."""
    size, left = divmod(batch_size, processes * micro_batches)
    if left or size < 1:
        raise ConfigError(f"--batch-size {batch_size} does not split into {processes} process(es) × "
                          f"{micro_batches} micro-batch(es) (--grad-accum)")
    return size


class Run:
    """A training run in --out: its state, checkpoints, log rows and progress; made by Run.resume."""

    def __init__(self, args: argparse.Namespace, name: str, accelerator: Accelerator, model: torch.nn.Module,
                 optimizer, scheduler, total_steps: int, stop_after: int, only_trainable: bool,
                 checkpoint_view: Callable):
        self.args, self.name, self.accelerator, self.total_steps = args, name, accelerator, total_steps
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.stop_after, self.only_trainable, self.checkpoint_view = stop_after, only_trainable, checkpoint_view
        self.saving = SaveSchedule(args.save_every, args.save_minutes, accelerator)
        self.state: dict = {}
        self.progress: tqdm | None = None
        self.interrupted = False
        self.started, self.started_step, self.earlier_seconds = time.perf_counter(), 0, 0.0

    @classmethod
    def resume(cls, args: argparse.Namespace, name: str, accelerator: Accelerator, model: torch.nn.Module,
               optimizer, warmup_steps: int, total_steps: int, fresh: dict, stop_after: int = 0,
               only_trainable: bool = False, checkpoint_view: Callable = lambda model: model) -> Run:
        """The run, its schedule made and its checkpoint (if any) loaded into model, optimizer and schedule.

        only_trainable: checkpoints hold only the parameters that train (a frozen LLM is not copied each time).
        checkpoint_view(model): what save_checkpoint and load_checkpoint see of the model.
        """
        scheduler = cosine_with_warmup(optimizer, warmup_steps, total_steps)
        run = cls(args, name, accelerator, model, optimizer, scheduler, total_steps, stop_after, only_trainable,
                  checkpoint_view)
        run.state = load_checkpoint(args.out / CHECKPOINT, checkpoint_view(model), optimizer, scheduler,
                                    only_trainable=only_trainable) or {
            "step": 0, "history": [], "evals": [], "seconds": 0.0, **fresh}
        run.started_step, run.earlier_seconds = run.step, run.state["seconds"]
        if run.step:
            print(f"resuming {args.out} from step {run.step} of {total_steps}")
        return run

    @property
    def step(self) -> int:
        """Optimizer steps done, over every resumed run."""
        return self.state["step"]

    def prepare(self, model: torch.nn.Module, optimizer) -> tuple:
        """accelerate's model and optimizer (the ones to train and save from now on), and TensorBoard logs."""
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.accelerator.init_trackers(self.name, config={k: str(v) for k, v in vars(self.args).items()})
        return self.model, self.optimizer

    @property
    def inner_model(self) -> torch.nn.Module:
        """The model itself, without the wrapper accelerate may put around it for several processes."""
        return self.accelerator.unwrap_model(self.model)

    # ---- the loop ----

    def steps(self) -> Iterator[int]:
        """The steps to train now: from the resumed one to the last, or --stop-after steps of this run."""
        last = min(self.total_steps, self.step + self.stop_after) if self.stop_after else self.total_steps
        self.progress = tqdm(total=self.total_steps, initial=self.step, desc=self.name, unit="step")
        self.started, self.started_step = time.perf_counter(), self.step
        yield from range(self.step, last)

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Ctrl+C in the block saves a checkpoint, says how to resume, and makes finish() return 130."""
        try:
            yield
        except KeyboardInterrupt:
            self.save()
            self._close_progress()
            print(f"\nstopped at step {self.step}; the same command resumes from there", file=sys.stderr)
            self.interrupted = True

    def optimizer_step(self) -> None:
        """Gradients clipped to norm 1, an optimizer and a schedule step, gradients cleared; one more step done."""
        self.accelerator.clip_grad_norm_(self.parameters, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state["step"] += 1

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def seconds_this_run(self) -> float:
        return time.perf_counter() - self.started

    def per_second(self, count_per_step: float) -> float:
        """A rate over the steps of this run: images, chats or tokens per second."""
        return (self.step - self.started_step) * count_per_step / self.seconds_this_run()

    def log_due(self) -> bool:
        return self.step % self.args.log_every == 0 or self.step == self.total_steps

    def due(self, every: int) -> bool:
        """Every `every` steps (0: never) before the last step, which finish() evaluates anyway."""
        return bool(every) and self.step % every == 0 and self.step < self.total_steps

    def log(self, row: dict, **shown: str) -> None:
        """A training row: kept in the checkpoint's history, logged to TensorBoard, `shown` on the progress bar."""
        self.state["history"].append(row)
        self.accelerator.log(row, step=self.step)
        self.progress.set_postfix(**shown)

    def log_eval(self, row: dict, logged: dict) -> None:
        """A held-out evaluation: `row` kept in the checkpoint's evals, `logged` to TensorBoard."""
        self.state["evals"].append(row)
        self.accelerator.log(logged, step=self.step)

    def say(self, text: str) -> None:
        """A line that does not break the progress bar."""
        (self.progress.write if self.progress is not None else print)(text)

    def end_step(self) -> None:
        """The progress bar forward, and a checkpoint when one is due (--save-every, --save-minutes)."""
        self.progress.update(1)
        if self.saving.due(self.step):
            self.save()

    # ---- checkpoints and the end ----

    def save(self) -> None:
        """The checkpoint, written by the main process (every process holds the same weights)."""
        self._count_seconds()
        if self.accelerator.is_main_process:
            save_checkpoint(self.args.out / CHECKPOINT, self.checkpoint_view(self.inner_model), self.optimizer,
                            self.scheduler, self.state, only_trainable=self.only_trainable)

    def _count_seconds(self) -> None:
        """state["seconds"]: wall time of training over every resumed run, up to now."""
        self.state["seconds"] = self.earlier_seconds + self.seconds_this_run()

    def finish(self, write: Callable[[], None], evaluate: Callable[[], None] | None = None) -> int:
        """After the loop, the exit status. Past the last step: `evaluate` on every process, `write` (the model,
        report and pictures) on the main one, then the checkpoint marked finished. Short of it (--stop-after): a
        checkpoint to resume from. After Ctrl+C: nothing more (interruptible() saved), status 130."""
        self._close_progress()
        if self.interrupted:
            return INTERRUPTED
        if self.step < self.total_steps:
            self.save()
            print(f"stopped after {self.step - self.started_step} steps at step {self.step} of {self.total_steps} "
                  "(--stop-after); the same command resumes")
        else:
            if evaluate is not None:
                evaluate()
            self._count_seconds()
            if self.accelerator.is_main_process:
                write()
            self.state["finished"] = True  # only once the model and report are written
            self.save()
        self.accelerator.end_training()
        return 0

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
