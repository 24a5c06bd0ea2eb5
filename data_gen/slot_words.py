"""The words for each image slot of a training scene: the grounding that warms up the projector before stage 1.

    glyph data slot-words --scenes data/scenes --grid 3 --out data/chats/slot-words.jsonl

The projector turns each block of vision patches into one image slot (with --projector-merge 2, the scene
CLIP's 6×6 patches fill 3×3 slots, one per grid cell). Stage 1 teaches it from captions alone, through the frozen
LLM, and that is slow to pin down what the CLIP's features hold in a non-linear way (a shape: a linear probe of
the scene CLIP's slot features reads it for 83 % of objects, a small MLP for 99.8 %). With the boxes of a scene
dataset, each slot can be told its words directly: `training.projector_warmup` fits the projector so that a
slot lands on the mean of the LLM's input embeddings of its words ("large red circle", or "empty"), before
stage 1 trains on captions.

Each row: {"image": "../scenes/images/000123.png", "slots": ["large red circle", "empty", ...]}, the image path
relative to this file, one text per slot of a GRID×GRID layout in row-major order (the projector's order). An
object belongs to the slot under its box's centre; two in one slot are joined by "and". Training scenes only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from boltons.fileutils import atomic_save

EMPTY = "empty"  # the words of a slot with no object in it


def slot_texts(objects: list[dict], grid: int) -> list[str]:
    """One text per slot of a grid×grid layout (row-major): the words of the objects whose box centres lie in it."""
    slots: list[list[str]] = [[] for _ in range(grid * grid)]
    for thing in objects:
        x0, y0, x1, y1 = thing["box"]  # fractions of the image's width and height
        row, col = (min(grid - 1, int((y0 + y1) / 2 * grid)), min(grid - 1, int((x0 + x1) / 2 * grid)))
        slots[row * grid + col].append(f"{thing['size']} {thing['color']} {thing['shape']}")
    return [" and ".join(words) if words else EMPTY for words in slots]


def write_slot_words(scenes_dir: str | Path, out: str | Path, grid: int) -> int:
    """Write one row per training scene to `out` (JSONL), atomically; the number of rows."""
    scenes_dir, out = Path(scenes_dir), Path(out)
    rows_file = scenes_dir / "train.jsonl"
    if not rows_file.is_file():
        raise FileNotFoundError(f"--scenes {scenes_dir} is not a scene dataset (no train.jsonl); make one with "
                                "`glyph data scenes --out data/scenes`")
    if grid < 1:
        raise ValueError(f"--grid {grid}: give the slots per side of an image (3 for 3×3 slots)")
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_save(str(out), text_mode=True) as file:
        for line in rows_file.read_text().splitlines():
            scene = json.loads(line)
            image = os.path.relpath((scenes_dir / scene["image"]).resolve(), out.parent.resolve())
            file.write(json.dumps({"image": image, "slots": slot_texts(scene["objects"], grid)}) + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph data slot-words", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", required=True, type=Path, help="a scene dataset (glyph data scenes)")
    p.add_argument("--out", required=True, type=Path, help="the JSONL file to write")
    p.add_argument("--grid", type=int, default=3, help="slots per side of an image: the vision tower's patches "
                                                       "per side over --projector-merge (6 / 2 = 3 for the scene CLIP)")
    args = p.parse_args(argv)
    try:
        count = write_slot_words(args.scenes, args.out, args.grid)
    except (ValueError, FileNotFoundError) as error:
        print(f"glyph data slot-words: {error}", file=sys.stderr)
        return 2
    print(f"wrote the slot words of {count} scenes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
