"""Drawings in GenEval's layout, so that GenEval's own evaluator, or the scene parser here, can score them.

    glyph eval draw --write-prompts runs/geneval/prompts.jsonl --per-category 40    # scene prompts, GenEval format
    glyph eval draw --model DIR --prompts runs/geneval/prompts.jsonl --geneval-out runs/geneval/images --samples 4
    glyph eval draw --score runs/geneval/images                                     # the scene parser as evaluator
    glyph eval draw --model DIR --sweep-cfg 1,2,3,5 --per-category 20 --seed 1000  # pick the guidance scale

GenEval (Ghosh et al., 2023) reads a prompt file of JSON lines, one per prompt
(`{"tag": "position", "include": [{"class": ..., "count": 1, "color": ...,
"position": ["left of", 0]}], "prompt": "..."}`), and a folder holding, for the
prompt on line i, `<i:05d>/metadata.jsonl` (that line) and
`<i:05d>/samples/<j:04d>.png`. `--geneval-out` writes exactly that for any prompt
file in GenEval's format, resuming where an interrupted run stopped.

The scene world's prompts (scenes.prompts, the categories of `glyph eval
assistant`'s scene-GenEval) are written with GenEval's tags and `include` lists,
shapes as classes, plus a `scene_world` entry holding the whole prompt (sizes and
cells too). `--score` reads each drawing with the scene parser and writes GenEval's
`results.jsonl` (one line per image, `correct` true or false) and the summary:
the share correct per tag, and overall as the mean over tags, as GenEval reports it.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from boltons.fileutils import atomic_save
from PIL import Image
from tqdm import tqdm

from assistant.config import ConfigError, write_json_atomic
from scenes.parser import read_scene
from scenes.prompts import DrawingPrompt, ObjectSpec
from training.eval_assistant import geneval_prompts
from training.pictures import save_png_atomic

TAGS = {"single": "single_object", "two": "two_object", "counting": "counting", "colors": "color_attr",
        "position": "position"}  # scene category → GenEval tag
RELATIONS = {"above": "above", "below": "below", "to the left of": "left of", "to the right of": "right of"}
METADATA, RESULTS = "metadata.jsonl", "results.jsonl"


class PromptFileError(ValueError):
    """A prompt file or GenEval folder that cannot be read; the message names the file and line."""


# ---- prompts in GenEval's format ----------------------------------------------------------------------------

def geneval_metadata(prompt: DrawingPrompt) -> dict:
    """One GenEval prompt line for a scene prompt: its tag, what must be in the drawing, and the text."""
    if prompt.category == "counting":
        spec = prompt.objects[0]
        include = [_entry(spec, count=len(prompt.objects))]
    elif prompt.relation is not None:  # GenEval: the second entry stands in `position` to the first
        subject, reference = prompt.objects
        include = [_entry(reference), _entry(subject) | {"position": [RELATIONS[prompt.relation], 0]}]
    else:
        include = [_entry(spec) for spec in prompt.objects]
    scene_world = {"category": prompt.category, "relation": prompt.relation,
                   "objects": [asdict(spec) | {"cell": list(spec.cell) if spec.cell else None}
                               for spec in prompt.objects]}
    return {"tag": TAGS[prompt.category], "include": include, "prompt": prompt.text, "scene_world": scene_world}


def _entry(spec: ObjectSpec, count: int = 1) -> dict:
    entry = {"class": spec.shape or "shape", "count": count}
    return entry | ({"color": spec.color} if spec.color else {})


def scene_prompt(metadata: dict) -> DrawingPrompt:
    """The DrawingPrompt that geneval_metadata wrote into `scene_world`."""
    world = metadata["scene_world"]
    objects = tuple(ObjectSpec(**{**spec, "cell": tuple(spec["cell"]) if spec.get("cell") else None})
                    for spec in world["objects"])
    return DrawingPrompt(world["category"], metadata["prompt"], objects, world["relation"])


def write_prompts(path: Path, per_category: int, seed: int) -> Path:
    lines = [json.dumps(geneval_metadata(p)) for p in geneval_prompts(per_category, seed)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_save(str(path), text_mode=True) as file:
        file.write("\n".join(lines) + "\n")
    return path


def read_prompts(path: Path) -> list[dict]:
    """GenEval prompt lines; each needs a `prompt` string (and a `tag` for scoring)."""
    if not path.is_file():
        raise PromptFileError(f"--prompts {path} does not exist; write the scene prompts with "
                              "glyph eval draw --write-prompts FILE, or give GenEval's evaluation_metadata.jsonl")
    prompts = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as error:
            raise PromptFileError(f"--prompts {path}, line {number}: not JSON ({error})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str) or not entry["prompt"].strip():
            raise PromptFileError(f"--prompts {path}, line {number}: each line must be a JSON object with a "
                                  "non-empty \"prompt\" string, as in GenEval's evaluation_metadata.jsonl")
        prompts.append(entry)
    if not prompts:
        raise PromptFileError(f"--prompts {path} holds no prompts")
    return prompts


# ---- drawing into GenEval's folder layout ---------------------------------------------------------------------

def draw_into(model, prompts: list[dict], out: Path, samples: int, cfg_scale: float, temperature: float,
              top_k: int, seed: int) -> int:
    """Draw `samples` images per prompt into out/<i:05d>/samples/; prompts whose samples all exist are kept.
    Sample j of prompt i has seed `seed + i * samples + j`, so a resumed run draws what one run would have."""
    from assistant.chat import one_turn_prompts
    from assistant.generation import Sampling, draw_all

    settings = Sampling(temperature=temperature, top_k=top_k, cfg_scale=cfg_scale)
    todo = [i for i in range(len(prompts)) if not _complete(out / f"{i:05d}", samples)]
    for i in tqdm(todo, desc="drawing (GenEval layout)", unit="prompt"):
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        with atomic_save(str(folder / METADATA), text_mode=True) as file:
            file.write(json.dumps(prompts[i]) + "\n")
        prompt, unconditional = one_turn_prompts(model, prompts[i]["prompt"], cfg_scale=cfg_scale)
        seeds = [seed + i * samples + j for j in range(samples)]
        drawn = draw_all(model, [prompt] * samples, [unconditional] * samples if cfg_scale != 1 else None,
                         settings, seeds)
        for j, done in enumerate(drawn):
            save_png_atomic(done.image, folder / "samples" / f"{j:04d}.png")
    return len(todo)


def _complete(folder: Path, samples: int) -> bool:
    return (folder / METADATA).is_file() and all((folder / "samples" / f"{j:04d}.png").is_file()
                                                 for j in range(samples))


# ---- scoring a GenEval folder with the scene parser -----------------------------------------------------------

def score_folder(out: Path) -> dict:
    """Read every sample of every prompt folder in `out` with the scene parser; write out/results.jsonl."""
    folders = sorted(p for p in out.iterdir() if p.is_dir() and p.name.isdigit()) if out.is_dir() else []
    if not folders:
        raise PromptFileError(f"--score {out} holds no GenEval prompt folders (00000/, 00001/, ...); "
                              "draw into it with --geneval-out first")
    results = []
    for folder in tqdm(folders, desc="scoring", unit="prompt"):
        metadata = _folder_metadata(folder)
        prompt = scene_prompt(metadata)
        for image in sorted((folder / "samples").glob("*.png")):
            reading = read_scene(Image.open(image).convert("RGB"))
            correct = not reading.unknown and prompt.satisfied_by(reading.objects)
            results.append({"filename": str(image), "tag": metadata["tag"], "prompt": metadata["prompt"],
                            "correct": bool(correct), "read": [list(map(str, key[:3])) for key in reading.keys()]})
    with atomic_save(str(out / RESULTS), text_mode=True) as file:
        file.write("".join(json.dumps(r) + "\n" for r in results))
    tags = sorted({r["tag"] for r in results})
    by_tag = {t: round(float(np.mean([r["correct"] for r in results if r["tag"] == t])), 4) for t in tags}
    summary = {"overall": round(float(np.mean(list(by_tag.values()))), 4) if by_tag else 0.0, "by_tag": by_tag,
               "images": len(results), "prompts": len(folders)}
    write_json_atomic(out / "summary.json", summary)
    return summary


def _folder_metadata(folder: Path) -> dict:
    path = folder / METADATA
    try:
        metadata = json.loads(path.read_text().splitlines()[0])
    except (OSError, IndexError, ValueError) as error:
        raise PromptFileError(f"{path} cannot be read ({error}); draw this prompt again with --geneval-out") from None
    if not isinstance(metadata, dict) or "scene_world" not in metadata:
        raise PromptFileError(f"{path} is not a scene-world prompt (no scene_world entry): the scene parser can "
                              "only score scene prompts; score other prompts with GenEval's own evaluator")
    return metadata


def sweep_cfg(model, scales: list[float], per_category: int, seed: int, temperature: float, top_k: int) -> dict:
    """Scene-GenEval on validation prompts at each guidance scale: {scale: overall and by category}."""
    from training.eval_assistant import model_drawer, score_drawings

    if seed == 0:
        raise ValueError("--seed 0 makes the test prompts; sweep on validation prompts (e.g. --seed 1000)")
    prompts = geneval_prompts(per_category, seed, phrasing="train")
    return {f"{scale:g}": score_drawings(prompts, model_drawer(model, scale, temperature, top_k, seed))[0]
            for scale in scales}


def _scales(text: str) -> list[float]:
    try:
        scales = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 1,2,3,5") from None
    if not scales or any(not 0 <= s <= 50 for s in scales):
        raise argparse.ArgumentTypeError(f"guidance scales must lie in [0, 50]; got {text}")
    return scales


# ---- the command ------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph eval draw", description=__doc__.split("\n\n")[0])
    task = p.add_mutually_exclusive_group(required=True)
    task.add_argument("--write-prompts", type=Path, metavar="FILE", help="write the scene prompts in GenEval's format")
    task.add_argument("--geneval-out", type=Path, metavar="DIR", help="draw --prompts into GenEval's folder layout")
    task.add_argument("--score", type=Path, metavar="DIR", help="score a GenEval folder of scene prompts")
    task.add_argument("--sweep-cfg", type=_scales, metavar="S1,S2,...",
                      help="draw validation prompts (training wordings, --seed apart from the test prompts' 0) at "
                           "each guidance scale and score them with the scene parser: to choose the default scale")
    p.add_argument("--per-category", type=int, default=40, help="with --write-prompts or --sweep-cfg: prompts per "
                                                                "category")
    p.add_argument("--model", default=None, help="with --geneval-out: an assistant or build directory "
                                                 "(default: the shipped one)")
    p.add_argument("--prompts", type=Path, help="with --geneval-out: a prompt file in GenEval's format")
    p.add_argument("--samples", type=int, default=4, help="images per prompt (GenEval draws 4)")
    p.add_argument("--cfg-scale", type=float, default=3.0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.geneval_out is not None and args.prompts is None:
        p.error("--geneval-out needs --prompts FILE")
    if args.samples < 1 or args.per_category < 1:
        p.error("--samples and --per-category must be at least 1")
    try:
        if args.write_prompts is not None:
            path = write_prompts(args.write_prompts, args.per_category, args.seed)
            print(f"wrote {args.per_category * len(TAGS)} scene prompts in GenEval's format to {path}")
        elif args.score is not None:
            summary = score_folder(args.score)
            print(json.dumps(summary, indent=2))
        elif args.sweep_cfg is not None:
            from assistant.model import load_assistant

            print(json.dumps(sweep_cfg(load_assistant(args.model), args.sweep_cfg, args.per_category, args.seed,
                                       args.temperature, args.top_k), indent=2))
        else:
            from assistant.model import load_assistant

            prompts = read_prompts(args.prompts)
            model = load_assistant(args.model)
            drawn = draw_into(model, prompts, args.geneval_out, args.samples, args.cfg_scale, args.temperature,
                              args.top_k, args.seed)
            print(f"drew {drawn} prompt(s) ({len(prompts) - drawn} already there) x {args.samples} into "
                  f"{args.geneval_out}; score it with GenEval's evaluator, or glyph eval draw --score for scenes")
    except (PromptFileError, ConfigError, ValueError, OSError) as error:
        print(f"glyph eval draw: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
