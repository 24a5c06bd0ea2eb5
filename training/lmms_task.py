"""Scene VQA as lmms-eval tasks: the questions `glyph eval assistant` asks, for any OpenAI-compatible server.

    glyph eval lmms-task --data runs/scenes --scenes 50 --out runs/lmms_tasks/scene_vqa
    glyph serve --port 8000 &
    python -m lmms_eval eval --model openai --tasks scene_vqa,scene_vqa_two_images --include_path runs/lmms_tasks \\
        --batch_size 1 --model_args model_version=glyph,base_url=http://127.0.0.1:8000/v1,api_key=none

The repository ships one such pair of tasks, training/lmms_tasks/scene_vqa (50 held-out test scenes of the shipped
assistant's scene dataset, `glyph data scenes --n 10000 --seed 0`), written by this command. Their questions are
exactly `glyph eval assistant --scenes N --seed S`'s VQA and two-image questions (both call `vqa_questions` and
`two_image_questions`), and the tasks score a reply with the same reader (`scenes.reading.short_answer`), so both
report the same accuracy on the same replies. The task folder holds:

    scene_vqa.yaml              the one-image task (data_files names data/test.jsonl by its absolute path, or by
                                the path from the repository root for the shipped task)
    scene_vqa_two_images.yaml   the two-image task ("Which picture has more circles?"), data/two_images.jsonl
    utils.py                    images, prompts and scoring for lmms-eval (imports Glyph's scene reader)
    data/test.jsonl             one question a row: image, question, kind, short (the canonical answer), answer
    data/two_images.jsonl       the same with images: [first, second] and kind compare
    data/images/                the scene images
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from assistant.config import ConfigError
from training.checkpoint import staged_directory
from training.eval_assistant import load_scenes, two_image_questions, vqa_questions

TEMPLATE = Path(__file__).parent / "lmms_tasks" / "scene_vqa"  # the shipped tasks: their yaml and utils.py
ONE_IMAGE, TWO_IMAGES = "test.jsonl", "two_images.jsonl"  # the questions files in data/
TASKS = {"scene_vqa.yaml": ONE_IMAGE, "scene_vqa_two_images.yaml": TWO_IMAGES}  # each task's yaml → its questions
DATA_FILES_KEY = "    test: "  # the yaml line that names the questions file


def question_rows(data: Path, split: str, scenes: int, seed: int) -> tuple[dict[str, list[dict]], list[Path]]:
    """The rows of each questions file (one per VQA question, and one per two-image question, of `glyph eval
    assistant` on the first `scenes` scenes), and the images they use."""
    items = load_scenes(data, split, scenes)
    one = [{"id": f"{item.image.stem}-{qa.kind}", "image": f"images/{item.image.name}", "question": qa.question,
            "kind": qa.kind, "short": qa.short, "answer": qa.answer}
           for item, qa in vqa_questions(items, seed)]
    two = [{"id": f"{a.image.stem}-{b.image.stem}-{qa.kind}", "images": [f"images/{a.image.name}",
                                                                        f"images/{b.image.name}"],
            "question": qa.question, "kind": qa.kind, "short": qa.short, "answer": qa.answer}
           for (a, b), qa in two_image_questions(items, seed)]
    return {ONE_IMAGE: one, TWO_IMAGES: two}, [item.image for item in items]


def write_task(out: Path, rows: dict[str, list[dict]], images: list[Path], data_dir: str) -> Path:
    """The task folder at `out`, all of it or nothing: the yamls (naming their questions files in `data_dir`),
    utils.py, data/."""
    with staged_directory(out) as staged:
        shutil.copyfile(TEMPLATE / "utils.py", staged / "utils.py")
        for task, questions in TASKS.items():
            yaml = (TEMPLATE / task).read_text().splitlines()
            line = next(i for i, text in enumerate(yaml) if text.startswith(DATA_FILES_KEY))
            yaml[line] = DATA_FILES_KEY + f"{data_dir}/{questions}"
            (staged / task).write_text("\n".join(yaml) + "\n")
        (staged / "data" / "images").mkdir(parents=True)
        for image in images:
            shutil.copyfile(image, staged / "data" / "images" / image.name)
        for questions, table in rows.items():
            (staged / "data" / questions).write_text("".join(json.dumps(row) + "\n" for row in table))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph eval lmms-task", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="the scene dataset (glyph data scenes)")
    p.add_argument("--split", default="test")
    p.add_argument("--scenes", type=int, default=50,
                   help="scenes (5 questions and one two-image question each), as glyph eval assistant's")
    p.add_argument("--seed", type=int, default=0, help="glyph eval assistant's --seed: the same questions")
    p.add_argument("--out", required=True, type=Path, help="the task folder to write (lmms-eval's --include_path "
                   "is the folder above it)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--relative-to", type=Path, default=None, metavar="DIR",
                   help="name the questions files relative to DIR (where lmms-eval will run) instead of absolutely")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.out.exists() and not args.overwrite:
            raise ConfigError(f"--out {args.out} exists; pass --overwrite to replace it")
        rows, images = question_rows(args.data, args.split, args.scenes, args.seed)
        data = (args.out / "data").resolve()
        write_task(args.out, rows, images, str(data.relative_to(args.relative_to.resolve()) if args.relative_to
                                               else data))
    except (ConfigError, ValueError, OSError) as error:
        print(f"glyph eval lmms-task: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(rows[ONE_IMAGE])} questions and {len(rows[TWO_IMAGES])} two-image questions on "
          f"{len(images)} scenes to {args.out}; run lmms-eval with --tasks scene_vqa,scene_vqa_two_images "
          f"--include_path {args.out.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
