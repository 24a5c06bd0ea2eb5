"""Pack a build's trained parts into one small, self-contained assistant directory to ship, part by part.

    glyph ship runs/scenes-smollm2 --out models/scenes-smollm2      # every finished part of a build
    glyph build scenes-smollm2 --out runs/scenes-smollm2 --ship models/scenes-smollm2
                       # the same, each part as soon as it is trained; and a part already there is restored
                       # into the build instead of trained again (a long build resumes from the repository)

What the directory holds (everything the assistant needs except the frozen LLM, which is named, not copied):

    SHIP/vq/                   the VQ-VAE that turns drawn codes into pixels
    SHIP/clip/                 the scene CLIP (open_clip's local-dir layout); the assistant uses its image half
    SHIP/config.json           the assistant's config, its parts named by paths inside SHIP
    SHIP/model.safetensors     projector and image-vocabulary rows
    SHIP/adapter/              the LoRA adapter (peft)
    SHIP/eval.json, README.md  the build's evaluation report, and the model card made from it

Each part carries `recipe_step.json`, the recipe step that trained it: a build restores a part only when its
recipe asks for exactly that step. Weights are stored in bf16 by default (half the bytes; widened back to
fp32 when loaded). Every part appears complete or not at all.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from boltons.fileutils import atomic_save
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from assistant.config import LOCAL_DIR, AssistantConfig, ConfigError, write_json_atomic
from assistant.model import ADAPTER_DIR, FIRST_STAGE_2, REFINE, WEIGHTS_NAME, stage_2_folder, stage_2_phases
from training.checkpoint import staged_directory

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
STEP_FILE = "recipe_step.json"
TIMINGS_FILE = "build.json"  # seconds per build step, in a build folder and beside the parts it shipped
DRAWING_SHEET = "drawings.png"  # glyph eval assistant's drawings of fixed requests, shown in the model card
NOTES_HEADING = "## Notes\n"  # the model card's last section, written by hand and kept by each new card
ASSISTANT_FILES = ("config.json", WEIGHTS_NAME, f"{ADAPTER_DIR}/adapter_config.json",
                   f"{ADAPTER_DIR}/adapter_model.safetensors")
# part → (the build's folder it comes from, the files it needs there, where it goes in SHIP)
PARTS = {"vq": ("vq", ("config.json", "model.safetensors"), "vq"),
         "clip": ("clip", ("open_clip_config.json", "open_clip_model.safetensors"), "clip"),
         "instruct": ("instruct", ASSISTANT_FILES, "."),
         "refine": ("refine", ASSISTANT_FILES, ".")}  # a later stage-2 phase: it replaces instruct's assistant


def part_folder(kind: str, step: dict | None) -> str:
    """The build folder a part comes from: refine rounds after the first have their own (refine-2/, ...), and a
    named VQ its name (vq-3x3/)."""
    if kind == REFINE:
        return stage_2_folder(int((step or {}).get("round", 1)))
    if kind == "vq":
        return (step or {}).get("name", PARTS[kind][0])
    return PARTS[kind][0]


def part_target(kind: str, step: dict | None) -> str:
    """Where a part goes in SHIP: "." for the assistant; a VQ and the CLIP keep their build folder's name."""
    return "." if PARTS[kind][2] == "." else part_folder(kind, step)


class ShipError(ValueError):
    """A part that cannot be shipped; the message says what is missing."""


# ---- shipping -------------------------------------------------------------------------------------------

def ship_part(kind: str, build: Path, ship: Path, step: dict | None, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Copy the build's finished `kind` part into `ship` (replacing what was there), with the step that made it."""
    _, files, _ = PARTS[kind]
    source, target = part_folder(kind, step), part_target(kind, step)
    missing = [str(build / source / f) for f in files if not (build / source / f).is_file()]
    if missing:
        raise ShipError(f"the {kind} part is not finished: {', '.join(missing)} missing; run glyph build first")
    whole = target == "."  # the assistant itself: the other parts (vq/, clip/) stay inside it
    with staged_directory(ship if whole else ship / target, keep=_other_parts(ship) if whole else ()) as staged:
        for name in files:
            _copy(build / source / name, staged / name, dtype)
        if whole:
            _write_portable_config(build / source, staged)
        write_json_atomic(staged / STEP_FILE, step or {})
    return ship


def ship_report(build: Path, ship: Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """The evaluation report and the model card, once the assistant and its evaluation are shipped/done."""
    report_file = assistant_dir(build) / "eval" / "report.json"
    if not report_file.is_file() or not (ship / "config.json").is_file():
        raise ShipError(f"{report_file} or {ship / 'config.json'} is missing: evaluate and ship the assistant first")
    report = json.loads(report_file.read_text())
    write_json_atomic(ship / "eval.json", report)
    if (build / TIMINGS_FILE).is_file():  # so that a build resumed from `ship` still knows what each part took
        write_json_atomic(ship / TIMINGS_FILE, json.loads((build / TIMINGS_FILE).read_text()))
    sheet = assistant_dir(build) / "eval" / DRAWING_SHEET
    if sheet.is_file():
        shutil.copyfile(sheet, ship / DRAWING_SHEET)
    card = model_card(build, AssistantConfig.load(ship), report, dtype, _size(ship))
    notes = _card_notes(ship / "README.md")
    with atomic_save(str(ship / "README.md"), text_mode=True) as readme:
        readme.write(card + notes)
    return ship


def _card_notes(card: Path) -> str:
    """The hand-written NOTES_HEADING section that ends a shipped card (how rounds trained apart from one build
    were made, what each changed): a build cannot know it, so a new card keeps it."""
    text = card.read_text() if card.is_file() else ""
    start = text.find(NOTES_HEADING)
    return "\n" + text[start:] if start >= 0 else ""


def _other_parts(ship: Path) -> tuple[str, ...]:
    """The parts shipped beside the assistant (clip/, vq/ and any other VQ): they stay when it is replaced."""
    return tuple(d.name for d in ship.iterdir() if d.is_dir() and d.name != ADAPTER_DIR) if ship.is_dir() else ()


def _write_portable_config(assistant: Path, staged: Path) -> None:
    """The assistant's config with its parts named inside the shipped directory (clip/, and the VQ it draws
    with by its build folder's name: vq/, or vq-3x3/ for a round trained with a second tokenizer)."""
    config = AssistantConfig.load(assistant)
    vision = dataclasses.replace(config.vision, model_name=LOCAL_DIR + "clip", pretrained=None)
    dataclasses.replace(config, vq=Path(config.vq).name, vision=vision).save(staged)  # everything else as trained


def _copy(source: Path, target: Path, dtype: torch.dtype) -> None:
    """A file as it is, or safetensors with its floating tensors in `dtype` (and its metadata kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix != ".safetensors":
        shutil.copyfile(source, target)
        return
    with safe_open(str(source), "pt") as f:
        metadata = f.metadata()
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in load_file(source).items()}
    save_file(tensors, target, metadata)


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


# ---- restoring into a build -------------------------------------------------------------------------------

def restore_part(kind: str, ship: Path, build: Path, step: dict) -> bool:
    """Copy a shipped part into the build when the same recipe step made it; True when restored."""
    _, files, _ = PARTS[kind]
    target = part_target(kind, step)
    shipped = ship if target == "." else ship / target
    made_by = shipped / STEP_FILE
    if not made_by.is_file() or json.loads(made_by.read_text()) != json.loads(json.dumps(step)):
        return False
    # the assistant brings the VQ it draws with (named in its portable config) and the CLIP
    names = list(files) + ([json.loads((ship / "config.json").read_text())["vq"], "clip"] if target == "." else [])
    with staged_directory(build / part_folder(kind, step)) as staged:
        for name in names:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (shipped / name).is_dir() else shutil.copyfile)(shipped / name, staged / name)
        write_json_atomic(staged / STEP_FILE, step)
    return True


def assistant_dir(build: Path) -> Path:
    """The build's assistant: its last stage-2 phase that has started (refine-2/ after refine/ after instruct/)."""
    phases = stage_2_phases(build)
    return phases[0] if phases else build / FIRST_STAGE_2


def restored(folder: str, build: Path) -> bool:
    """Was the build's `folder` (vq, clip, instruct, refine, refine-2, ...) restored from shipped parts?"""
    return (build / folder / STEP_FILE).is_file()


def parts_to_ship(build: Path, steps: list[dict]) -> list[tuple[str, dict]]:
    """(kind, recipe step) of each finished part of the build to ship: vq, clip and its last stage-2 phase."""
    assistant = assistant_dir(build)
    parts = [(s["step"], s) for s in steps if s["step"] in PARTS and (build / part_folder(s["step"], s)).is_dir()]
    if assistant.is_dir() and not any(build / part_folder(kind, s) == assistant for kind, s in parts):
        raise ShipError(f"no step of the recipe makes {assistant}; pass the recipe the build ran (--recipe)")
    return [(kind, s) for kind, s in parts if PARTS[kind][2] != "." or build / part_folder(kind, s) == assistant]


# ---- the model card ---------------------------------------------------------------------------------------

def model_card(build: Path, config: AssistantConfig, report: dict, dtype: torch.dtype, size: int) -> str:
    """README.md for the shipped assistant: what it is, the recipe and build, the scores, the limits."""
    timings = json.loads((build / TIMINGS_FILE).read_text()) if (build / TIMINGS_FILE).is_file() else {}
    lines = ["# Glyph scene assistant on SmolLM2-135M-Instruct", "",
             "A LLaVA-style assistant for the scene world (coloured shapes on a 3×3 grid): the scene CLIP "
             "(`clip/`) sees, a trained projector and LoRA adapter let the frozen SmolLM2-135M-Instruct read "
             f"what it sees, and image-vocabulary rows let it draw with the VQ-VAE (`{Path(config.vq).name}/`).", "",
             f"- LLM (frozen, not stored here): `{config.llm.name_or_path}`"
             + (f" ({config.llm.gguf_file})" if config.llm.gguf_file else ""),
             f"- vision: `{config.vision.model_name}`, feature layer {config.vision.feature_layer}; projector "
             f"`{config.projector.kind}`, {config.projector.merge}×{config.projector.merge} patches per slot",
             f"- weights stored in {'bf16' if dtype == torch.bfloat16 else 'fp32'}: {size / 1e6:.1f} MB in all",
             "", "## How it was made", "",
             "`glyph build scenes-smollm2 --out runs/scenes-smollm2` (training/recipes/scenes-smollm2.yaml), "
             "then `glyph ship runs/scenes-smollm2 --out models/scenes-smollm2`.", "",
             f"- commit `{_commit()}`; machine: {platform.machine()}, {os.cpu_count()} CPU cores",
             "- seconds per build step: " + (", ".join(f"{k} {v:g}" for k, v in timings.items()) or "unknown"),
             "", "## Evaluation (held-out test scenes, `glyph eval assistant`)", ""]
    lines += _score_lines(report)
    if (assistant_dir(build) / "eval" / DRAWING_SHEET).is_file():
        lines += ["", f"![Drawings for fixed requests, four seeds each]({DRAWING_SHEET})"]
    lines += ["", "## Limits", "",
              "- It knows only the scene world: 1-4 shapes (circle, square, triangle, ring, cross) in six colours "
              "on a 3×3 grid, in small pictures (64 px in, the VQ-VAE's size out: "
              f"{Path(config.vq).name}/config.json). "
              "Photos and other pictures are outside what it was trained on.",
              "- Questions worded unlike the training chats are answered less reliably (the unseen row).", ""]
    return "\n".join(lines)


def _score_lines(report: dict) -> list[str]:
    vqa = report["vqa"]
    rows = [("VQA, training wordings", vqa), ("VQA, unseen wordings", report.get("vqa_unseen_phrasings")),
            ("VQA, unseen wordings typed casually (lower case, no question mark)", report.get("vqa_casual")),
            ("VQA, follow-up turns", report.get("vqa_follow_ups"))]
    kinds = list(vqa["by_type"])
    lines = [f"{report['scenes']} scenes of the {report['split']} split.", "",
             "| | overall | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    lines += [f"| {name} | {row['overall']:.1%} | " + " | ".join(f"{row['by_type'][k]:.1%}" for k in kinds) + " |"
              for name, row in rows if row]
    pope = vqa["yes_no"]
    lines += ["", f"- yes/no: {pope['accuracy']:.1%} (yes-ratio {pope['yes_ratio']:.1%})",
              f"- captions exact: {report['captions']['exact']:.1%}"]
    if "picture_rate" in vqa:
        lines.append(f"- questions it would answer with a drawing: {vqa['picture_rate']:.1%}")
    if "vqa_counts_of_a_kind" in report:
        shared = report["vqa_counts_of_a_kind"]
        lines.append(f"- how many of a colour or shape that two or more objects share, in unseen wordings (\"How "
                     f"many crosses do you spot?\": two): {shared['overall']:.1%} of {shared['questions']}")
    if "vqa_more_kinds" in report:
        more = report["vqa_more_kinds"]
        lines.append(f"- other kinds of question, in unseen wordings (size, what is in a place, which shapes, which "
                     f"colours, whether anything is a colour or shape): {more['overall']:.1%} ("
                     + ", ".join(f"{kind} {rate:.1%}" for kind, rate in more["by_type"].items()) + ")"
                     + ("; whether anything is: " + ", ".join(f"{group} {score['right']:.1%}" for group, score
                                                             in more["any_by"].items()) if "any_by" in more else ""))
    if "vqa_two_images" in report:
        two = report["vqa_two_images"]
        lines.append(f"- questions about two pictures at once (\"Which picture has more circles?\"): "
                     f"{two['overall']:.1%} of {two['questions']}")
    return lines + _no_picture_lines(report) + _drawing_lines(report)


def _no_picture_lines(report: dict) -> list[str]:
    """Questions asked with no picture in the chat: about a picture, and everyday ones that need none."""
    lines = []
    if "no_picture" in report:
        asked = report["no_picture"]
        lines.append(f"- asked about a picture before any was attached: {asked['asked_for_picture']:.1%} of "
                     f"{asked['questions']} questions got a request for one")
    if "text_only" in report:
        text = report["text_only"]
        lines.append(f"- everyday questions that need no picture ({text['questions']}, hand-written): "
                     f"{text['same_as_llm']:.1%} answered word for word as SmolLM2 alone answers them "
                     f"({text['same_first_sentence']:.1%} in the same first sentence), {text['asked_for_picture']:.1%} "
                     f"with a request for a picture, {text['scene_talk']:.1%} with talk of shapes")
    return lines


def _drawing_lines(report: dict) -> list[str]:
    """Scene-GenEval by category, with and without guidance, and how often it declines requests."""
    runs = [report[key] for key in ("geneval", "geneval_without_cfg") if key in report]
    categories = list(runs[0]["by_category"])
    lines = ["", f"Scene-GenEval: {runs[0]['prompts']} drawing prompts in wordings training never used, each "
             "drawn once and read by the scene parser (overall = mean over categories).", "",
             "| guidance | overall | " + " | ".join(categories) + " |", "|---|---|" + "---|" * len(categories)]
    lines += [f"| CFG {run['cfg_scale']:g} | {run['overall']:.2f} | "
              + " | ".join(f"{run['by_category'][c]:.2f}" for c in categories) + " |" for run in runs]
    if "late_requests" in report:  # the same prompts, each after questions about a picture
        late = report["late_requests"]
        lines += [f"| CFG {runs[0]['cfg_scale']:g}, asked after {late['after']} | {late['overall']:.2f} | "
                  + " | ".join(f"{late['by_category'][c]:.2f}" for c in categories) + " |",
                  "", f"- asked after {late['after']}, {late['declined']:.1%} of the GenEval prompts were declined"]
    if "declines" in report:
        declines = report["declines"]
        lines += ["", f"- declined (answered in words, not drawn): {declines['out_of_world']:.1%} of "
                      f"{declines['requests']['out_of_world']} requests outside the scene world, "
                      f"{declines['in_world']:.1%} of the {declines['requests']['in_world']} GenEval prompts"]
    return lines


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---- the command ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph ship", description=__doc__.split("\n\n")[0])
    p.add_argument("build", type=Path, help="a glyph build --out directory")
    p.add_argument("--out", required=True, type=Path, help="the directory to write, e.g. models/scenes-smollm2")
    p.add_argument("--recipe", default="scenes-smollm2", help="the recipe the build ran (its steps are recorded)")
    p.add_argument("--dtype", choices=DTYPES, default="bf16", help="how the weights are stored")
    args = p.parse_args(argv)
    from training.build_recipe import BuildError, read_build, recipe_path

    try:
        parts = parts_to_ship(args.build, read_build(recipe_path(args.recipe)))
        for kind, step in parts:
            ship_part(kind, args.build, args.out, step, DTYPES[args.dtype])
        if (assistant_dir(args.build) / "eval" / "report.json").is_file():
            ship_report(args.build, args.out, DTYPES[args.dtype])
    except (ShipError, BuildError, ConfigError, OSError) as error:
        print(f"glyph ship: {error}", file=sys.stderr)
        return 2
    shipped = [part_folder(kind, step) for kind, step in parts]
    print(f"shipped {', '.join(shipped) or 'nothing'} of {args.build} into {args.out} "
          f"({_size(args.out) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
