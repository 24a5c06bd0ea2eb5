"""Scene VQA as an lmms-eval task: the questions `glyph eval assistant` asks, for any OpenAI-compatible server.

    glyph eval lmms-task --data runs/scenes --scenes 50 --out runs/lmms_tasks/scene_vqa
    glyph serve --port 8000 &
    python -m lmms_eval eval --model openai --tasks scene_vqa --include_path runs/lmms_tasks --batch_size 1 \\
        --model_args model_version=glyph,base_url=http://127.0.0.1:8000/v1,api_key=none

The repository ships one such task, training/lmms_tasks/scene_vqa (50 held-out test scenes of the shipped
assistant's scene dataset, `glyph data scenes --n 10000 --seed 0`), written by this command. Its questions are
exactly `glyph eval assistant --scenes N --seed S`'s VQA questions (both call `vqa_questions`), and the task
scores a reply with the same reader (`scenes.reading.short_answer`), so both report the same accuracy on the
same replies. The task folder holds:

    scene_vqa.yaml      the lmms-eval task (data_files names data/test.jsonl by its absolute path, or by the path
                        from the repository root for the shipped task)
    utils.py            images, prompts and scoring for lmms-eval (imports Glyph's scene reader)
    data/test.jsonl     one question a row: image, question, kind, short (the canonical answer), answer
    data/images/        the scene images
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from assistant.config import ConfigError
from training.checkpoint import staged_directory
from training.eval_assistant import load_scenes, vqa_questions

TEMPLATE = Path(__file__).parent / "lmms_tasks" / "scene_vqa"  # the shipped task: its yaml and utils.py
TASK_FILES = ("scene_vqa.yaml", "utils.py")
DATA_FILES_KEY = "    test: "  # the yaml line that names the questions file


def question_rows(data: Path, split: str, scenes: int, seed: int) -> tuple[list[dict], list[Path]]:
    """One row per VQA question of `glyph eval assistant` on the first `scenes` scenes, and the images they use."""
    items = load_scenes(data, split, scenes)
    rows = [{"id": f"{item.image.stem}-{qa.kind}", "image": f"images/{item.image.name}", "question": qa.question,
             "kind": qa.kind, "short": qa.short, "answer": qa.answer}
            for item, qa in vqa_questions(items, seed)]
    return rows, [item.image for item in items]


def write_task(out: Path, rows: list[dict], images: list[Path], data_files: str) -> Path:
    """The task folder at `out`, all of it or nothing: yaml (naming `data_files`), utils.py, data/."""
    with staged_directory(out) as staged:
        for name in TASK_FILES:
            shutil.copyfile(TEMPLATE / name, staged / name)
        yaml = (staged / "scene_vqa.yaml").read_text().splitlines()
        line = next(i for i, text in enumerate(yaml) if text.startswith(DATA_FILES_KEY))
        yaml[line] = DATA_FILES_KEY + data_files
        (staged / "scene_vqa.yaml").write_text("\n".join(yaml) + "\n")
        (staged / "data" / "images").mkdir(parents=True)
        for image in images:
            shutil.copyfile(image, staged / "data" / "images" / image.name)
        (staged / "data" / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph eval lmms-task", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="the scene dataset (glyph data scenes)")
    p.add_argument("--split", default="test")
    p.add_argument("--scenes", type=int, default=50, help="scenes (5 questions each), as glyph eval assistant's")
    p.add_argument("--seed", type=int, default=0, help="glyph eval assistant's --seed: the same questions")
    p.add_argument("--out", required=True, type=Path, help="the task folder to write (lmms-eval's --include_path "
                   "is the folder above it)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--relative-to", type=Path, default=None, metavar="DIR",
                   help="name the questions file relative to DIR (where lmms-eval will run) instead of absolutely")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.out.exists() and not args.overwrite:
            raise ConfigError(f"--out {args.out} exists; pass --overwrite to replace it")
        rows, images = question_rows(args.data, args.split, args.scenes, args.seed)
        questions = (args.out / "data" / "test.jsonl").resolve()
        data_files = str(questions.relative_to(args.relative_to.resolve()) if args.relative_to else questions)
        write_task(args.out, rows, images, data_files)
    except (ConfigError, ValueError, OSError) as error:
        print(f"glyph eval lmms-task: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows)} questions on {len(images)} scenes to {args.out}; run lmms-eval with "
          f"--tasks scene_vqa --include_path {args.out.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
