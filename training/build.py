"""Build a whole assistant from one recipe: data, stage 0, the VQ-VAE, chats, stages 1 and 2, then evaluation.

    glyph build scenes-tiny --out runs/scenes-tiny
    glyph build training/recipes/scenes-tiny.yaml --out runs/scenes-tiny --steps-scale 0.01   # a smoke run

A build recipe (training/recipes/<name>.yaml) lists steps in order. Each step runs one Glyph command's
`main(argv)` in this process, with the options the recipe gives it and the paths the build lays out:

    OUT/scenes  OUT/chats/{text,align,instruct}.jsonl  OUT/vq  OUT/clip  OUT/lm  OUT/align  OUT/instruct
    OUT/refine, OUT/refine-2, ... (refine rounds: more stage 2, each going on from the phase before it)
    OUT/lm/context_qa.json (the LM's readiness)  ASSISTANT/eval/report.json  OUT/build.json (seconds per step)

ASSISTANT is the build's last stage-2 phase: its last refine round when it has one, else OUT/instruct.
A refine step's `round: N` (default 1) says which round it is, and `chats: NAME` trains it (or the instruct step)
on OUT/chats/NAME.jsonl (default instruct; a list of names mixes those files); a replies step writes the frozen
LLM's own replies to everyday requests into OUT/chats/replies.jsonl (data_gen.text_replies), and a hand_over
step (`replies: NAME`, `pictures: NAME`) the chats that teach handing them over into OUT/chats/hand-over.jsonl
(data_gen.hand_over); a slot_words step writes each training scene's words per image slot into
OUT/chats/slot-words.jsonl (data_gen.slot_words), which an align step with `slot_words: true` fits the projector
to before its first step (training.projector_warmup); a chats step's
`suffix: -2` writes OUT/chats/instruct-2.jsonl etc., other questions about the same scenes when its seed
differs. A vq step's `name: vq-3x3` trains a second image tokenizer into OUT/vq-3x3 (stage 1 draws with
OUT/vq), and a refine step's `vq: vq-3x3` draws with OUT/vq-3x3 from that round on: the round learns fresh
code rows for the new codebook.

Every step skips work that is done (a finished run is never trained again, a written file is kept), so
running the same command after a kill resumes where it stopped, and running it on a finished build returns
at once. --steps-scale multiplies every training step count (for smoke tests and quick looks). --ship DIR
copies each trained part into DIR as it lands (training/ship.py) and restores parts found there, so a build
longer than one sitting resumes from the parts committed to the repository, on any machine.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import yaml

from assistant.config import write_json_atomic
from assistant.model import FIRST_STAGE_2, stage_2_folder, stage_2_phases, stage_2_rank
from training import ship
from training.build_recipe import RECIPES, STEP_MODULES, BuildError, read_build, recipe_path
from training.checkpoint import read_state

TRAINED_STEPS = ("vq", "clip", "lm", "align", "instruct", "refine")  # each leaves a folder with a checkpoint
CHAT_KINDS = ("text", "align", "instruct")  # the chats step's counts (glyph data chats --kind)


def step_runs(step: dict, out: Path, scale: float) -> list[tuple[str, list[str]]]:
    """The (module, argv) calls one recipe step makes."""
    kind, options = step["step"], {k: v for k, v in step.items() if k != "step"}
    if "config" in options and "steps" not in options and scale != 1:  # a config file's steps scale too
        options["steps"] = _config_steps(RECIPES / options["config"])
    for key in ("steps", "scenes", "prompts"):  # training steps, and how much the evaluation looks at
        if options.get(key) is not None and kind != "scenes":
            options[key] = max(2, round(options[key] * scale))
    if "config" in options:
        options["config"] = str(RECIPES / options["config"])
    if kind == "chats":  # how many chats of each kind; any other option is the chat writer's own
        suffix = options.pop("suffix", "")
        flags = _flags({k: v for k, v in options.items() if k not in CHAT_KINDS})
        return [(STEP_MODULES[kind], ["--scenes", str(out / "scenes"), "--kind", chat_kind, "--n",
                                      str(max(40, round(n * scale))),
                                      "--out", str(out / "chats" / f"{chat_kind}{suffix}.jsonl")] + flags)
                for chat_kind, n in options.items() if chat_kind in CHAT_KINDS and n]
    if kind == "replies":  # the LLM's own replies, into OUT/chats/NAME.jsonl (default replies)
        name = options.pop("name", "replies")
        options["n"] = max(8, round(options.get("n", 1000) * scale))
        return [(STEP_MODULES[kind], ["--out", str(out / "chats" / f"{name}.jsonl")] + _flags(options))]
    if kind == "hand_over":  # OUT/chats/NAME.jsonl (default hand-over) from the named replies and scene chats
        chats = out / "chats"
        return [(STEP_MODULES[kind], ["--replies", str(chats / f"{options.pop('replies')}.jsonl"),
                                      "--pictures", str(chats / f"{options.pop('pictures')}.jsonl"),
                                      "--out", str(chats / f"{options.pop('name', 'hand-over')}.jsonl")]
                 + _flags(options))]
    if kind == "slot_words":  # OUT/chats/slot-words.jsonl: each training scene's words per image slot
        return [(STEP_MODULES[kind], ["--scenes", str(out / "scenes"), "--out", str(out / "chats" / "slot-words.jsonl")]
                 + _flags(options))]
    if kind == "align" and "slot_words" in options:  # slot_words: true warms the projector up from that file
        warm = ["--slot-words", str(out / "chats" / "slot-words.jsonl")] if options.pop("slot_words") else []
        return [(STEP_MODULES[kind], _paths(kind, out) + warm + _flags(options))]
    if kind == "refine":  # vq: draw with that VQ of the build from this round on (the round before used another)
        vq, soup = options.pop("vq", None), options.pop("average_with", None)  # average_with: an earlier round
        swap = ["--vq", str(out / vq)] if vq else []
        swap += ["--average-with", str(out / stage_2_folder(soup))] if soup else []
        return [(STEP_MODULES[kind], _refine_paths(options.pop("round", 1), options.pop("chats", "instruct"), out)
                 + swap + _flags(options))]
    if kind == "instruct":  # chats: NAME or a list of names mixed, as for refine
        return [(STEP_MODULES[kind], _paths(kind, out, options.pop("chats", "instruct")) + _flags(options))]
    if kind == "vq":  # its folder is its name (ship.part_folder), not an option of the trainer
        options.pop("name", None)
        return [(STEP_MODULES[kind], ["--data", str(out / "scenes"), "--out", str(out / label(step))]
                 + _flags(options))]
    return [(STEP_MODULES[kind], _paths(kind, out) + _flags(options))]


def _config_steps(config: Path) -> int | None:
    """The training steps a trainer's config file sets, or None (the trainer's default)."""
    try:
        steps = (yaml.safe_load(config.read_text()) or {}).get("steps")
    except (OSError, yaml.YAMLError):
        return None  # the trainer reports an unreadable config itself, in its own words
    return steps if isinstance(steps, int) else None


def _refine_paths(round_number: int, chats: str | list[str], out: Path) -> list[str]:
    """Refine round N goes on from round N-1 (round 1 from instruct/), on OUT/chats/CHATS.jsonl (or on each of
    a list of chat files, mixed)."""
    before = stage_2_folder(round_number - 1) if round_number > 1 else FIRST_STAGE_2
    return ["--data", *_chat_files(chats, out), "--init", str(out / before),
            "--out", str(out / stage_2_folder(round_number)), "--cache-dir", str(out / "cache")]


def _chat_files(chats: str | list[str], out: Path) -> list[str]:
    """OUT/chats/NAME.jsonl for a chat file's name, or for each of a list of names."""
    return [str(out / "chats" / f"{name}.jsonl") for name in ([chats] if isinstance(chats, str) else chats)]


def label(step: dict) -> str:
    """A step's name in progress lines and build.json: its kind, or its folder for refine rounds after the first
    and for named VQs."""
    return ship.part_folder(step["step"], step) if step["step"] in ship.PARTS else step["step"]


def _paths(kind: str, out: Path, instruct_chats: str | list[str] = "instruct") -> list[str]:
    scenes, chats = out / "scenes", out / "chats"
    return {
        "scenes": ["--out", str(scenes)],
        "clip": ["--data", str(scenes), "--out", str(out / "clip")],
        "lm": ["--data", str(chats / "text.jsonl"), "--out", str(out / "lm")],
        "align": ["--data", str(chats / "align.jsonl"), "--out", str(out / "align"), "--vision",
                  f"local-dir:{out / 'clip'}", "--llm", str(out / "lm"), "--vq", str(out / "vq"),
                  "--cache-dir", str(out / "cache")],
        "instruct": ["--data", *_chat_files(instruct_chats, out), "--init", str(out / "align"), "--out",
                     str(out / "instruct"), "--cache-dir", str(out / "cache")],
        "eval": ["--model", str(ship.assistant_dir(out)), "--data", str(scenes)],
        "eval_lm": ["--model", str(out / "lm"), "--data", str(scenes)],
    }[kind]


def _flags(options: dict) -> list[str]:
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):  # a repeatable option: --mix draw=0.12 --mix conversation=0.45
            for item in value:
                argv += [flag, str(item)]
        elif value is not False and value is not None:
            argv += [flag, str(value)]
    return argv


def done(step: dict, out: Path) -> bool:
    """Is this step's output complete? (A trainer would also see it and return at once.)"""
    kind = step["step"]
    if kind in TRAINED_STEPS:
        folder = label(step)
        if kind in ship.PARTS and ship.restored(folder, out):
            return True
        if kind in ("align", "instruct", "refine"):  # stage 1 and each stage-2 phase only feed the phases after
            rank = -1 if kind == "align" else stage_2_rank(folder)  # them: a restored later phase stands for them
            if any(stage_2_rank(p.name) > rank and ship.restored(p.name, out) for p in stage_2_phases(out)):
                return True
        state = read_state(out / folder / "checkpoint")
        return bool(state and state.get("finished"))
    if kind == "scenes":
        return (out / "scenes" / "dataset_info.json").is_file()
    if kind == "chats":
        suffix = step.get("suffix", "")
        return all((out / "chats" / f"{k}{suffix}.jsonl").is_file() for k, n in step.items() if k in CHAT_KINDS and n)
    if kind == "eval":
        return (ship.assistant_dir(out) / "eval" / "report.json").is_file()
    if kind == "replies":
        return (out / "chats" / f"{step.get('name', 'replies')}.jsonl").is_file()
    if kind == "hand_over":
        return (out / "chats" / f"{step.get('name', 'hand-over')}.jsonl").is_file()
    if kind == "slot_words":
        return (out / "chats" / "slot-words.jsonl").is_file()
    if kind == "eval_lm":
        return (out / "lm" / "context_qa.json").is_file()
    return False


def _starts_afresh(step: dict, out: Path) -> bool:
    """Does this step start from nothing (no checkpoint of its own to resume; an evaluation always does)?
    The chats steps share one label and one sum, so they never do."""
    if step["step"] == "eval":
        return True
    return step["step"] in TRAINED_STEPS and read_state(out / label(step) / "checkpoint") is None


def _restore_shipped(steps: list[dict], shipped: Path, out: Path) -> None:
    """Before anything trains, restore each part in `shipped` that the same recipe step made. A shipped assistant
    (a stage-2 phase) is restored first of all, so the stages that only fed it are not trained again."""
    for step in sorted(steps, key=lambda s: s["step"] not in ("instruct", "refine")):
        kind = step["step"]
        if kind in ship.PARTS and not done(step, out) and ship.restore_part(kind, shipped, out, step):
            print(f"[ship]  {label(step)}: restored from {shipped}")


def _shipped_timings(steps: list[dict], shipped: Path, out: Path) -> dict:
    """The seconds the shipped parts took when they were trained, for the training steps they stand in for here,
    so that build.json and the model card of a build resumed from the repository still tell the whole build."""
    file = shipped / ship.TIMINGS_FILE
    try:
        recorded = json.loads(file.read_text()) if file.is_file() else {}
    except (OSError, ValueError):
        return {}  # only a record: a damaged one is not worth stopping a build for
    if not isinstance(recorded, dict):
        return {}
    trained = {label(s) for s in steps if s["step"] in TRAINED_STEPS and done(s, out)}
    return {name: seconds for name, seconds in recorded.items()
            if name in trained and isinstance(seconds, (int, float))}


def _ship(kind: str, step: dict, out: Path, into: Path) -> None:
    if kind in ship.PARTS:
        ship.ship_part(kind, out, into, step)
        print(f"[ship]  {label(step)} → {into}; commit it (git add {into})")
    elif kind == "eval":
        ship.ship_report(out, into)
        print(f"[ship]  eval report and model card → {into}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph build", description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help="a build recipe name (scenes-tiny) or .yaml path")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every training step count")
    p.add_argument("--skip", action="append", default=[], metavar="STEP", help="leave out this step (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="STEP.KEY=VALUE",
                   help="change one option of one step, e.g. --set instruct.batch_size=8 (repeatable)")
    p.add_argument("--ship", type=Path, default=None, metavar="DIR",
                   help="copy each trained part (vq, clip, the assistant) into DIR as it lands, and restore a part "
                        "found there, made by the same recipe step, instead of training it (glyph ship)")
    args = p.parse_args(argv)
    if args.ship is not None and args.steps_scale != 1:
        print("glyph build: --ship ships full-size parts only; leave out --steps-scale", file=sys.stderr)
        return 2
    # The assistant's config.json names its parts (CLIP, LM, VQ) by path: absolute ones load from any directory.
    args.out = args.out.resolve()
    try:
        steps = [s for s in read_build(recipe_path(args.recipe), args.set) if s["step"] not in args.skip]
    except BuildError as error:
        print(f"glyph build: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    timings_file = args.out / ship.TIMINGS_FILE
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    started = time.perf_counter()
    if args.ship is not None:
        _restore_shipped(steps, args.ship, args.out)
        timings = _shipped_timings(steps, args.ship, args.out) | timings
    for step in steps:
        kind = step["step"]
        if done(step, args.out):
            print(f"[done]  {label(step)}")
            continue
        print(f"[build] {label(step)}", flush=True)
        if _starts_afresh(step, args.out):  # seconds of an earlier, other version of the step (a changed recipe)
            timings.pop(label(step), None)  # are not this one's; a resumed step adds to its own
        began = time.perf_counter()
        for module, step_argv in step_runs(step, args.out, args.steps_scale):
            code = importlib.import_module(module).main(step_argv) or 0
            if code:
                print(f"glyph build: step {label(step)} failed (exit {code}); fix it and run the same command to resume",
                      file=sys.stderr)
                return code
        timings[label(step)] = round(time.perf_counter() - began, 1) + timings.get(label(step), 0.0)
        write_json_atomic(timings_file, timings)
        if args.ship is not None:
            _ship(kind, step, args.out, args.ship)
            write_json_atomic(args.ship / ship.TIMINGS_FILE, timings)
    total = round(time.perf_counter() - started, 1)
    print(f"built {args.out} in {total} s this run ({sum(timings.values()):.0f} s of steps in all); "
          f"the assistant is {ship.assistant_dir(args.out)}")
    report = ship.assistant_dir(args.out) / "eval" / "report.json"
    if report.is_file():
        from training.eval_assistant import summary

        print(summary(json.loads(report.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
