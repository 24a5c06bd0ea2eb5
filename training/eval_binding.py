"""Eyes or reading? VQA with the assistant's own image features beside VQA with perfect, noise-free ones.

    glyph eval binding --model models/scenes-smollm2 --data runs/scenes-smollm2/scenes [--train 2000 --scenes 80]

For an assistant whose image slots are the scene grid's cells (one slot per cell), each slot's projected
feature is replaced by the mean projected feature of its true content (that cell's colour and shape, or
empty), averaged over --train scenes of the training split. Those features are as clean as this projector
can make them, so the questions the assistant still gets wrong with them are its LLM's errors (binding a
question's object to the wrong slot), and the gap between the two scores is what better eyes could win.
Scores --scenes scenes of the validation split (never the test split: this is for deciding what to train).
Writes binding.json into --model and prints both scores by question type.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from assistant.config import ConfigError, write_json_atomic
from scenes.world import COLORS, GRID, SHAPES, Scene
from training.eval_assistant import (SceneItem, load_scenes, model_answerer, question_prompt, score_vqa,
                                     vqa_questions)

CONTENTS = 1 + len(COLORS) * len(SHAPES)  # per cell: empty, or one of the colour × shape objects


def cell_contents(scene: Scene) -> list[int]:
    """For each grid cell in row-major order, 0 when empty, else 1 + the index of its (colour, shape)."""
    contents = [0] * GRID * GRID
    for obj in scene.objects:
        contents[obj.row * GRID + obj.col] = 1 + list(COLORS).index(obj.color) * len(SHAPES) + SHAPES.index(obj.shape)
    return contents


@torch.no_grad()
def projected(model, items: list[SceneItem]) -> torch.Tensor:
    """(N, slots, H) the projected image features the assistant's LLM reads for each scene."""
    tower = model.vision_tower
    pixels = [tower.preprocess(Image.open(item.image).convert("RGB")) for item in items]
    return torch.cat([model.image_features(torch.stack(pixels[i:i + 100])).float()
                      for i in tqdm(range(0, len(pixels), 100), desc="features", unit="batch", leave=False)])


def prototypes(model, items: list[SceneItem]) -> torch.Tensor:
    """(cells, CONTENTS, H) the mean projected feature of each cell for each content it held in `items`."""
    features = projected(model, items)  # (N, cells, H)
    if features.shape[1] != GRID * GRID:
        raise ConfigError(f"the assistant gives {features.shape[1]} image slots per scene; the binding check needs "
                          f"one per grid cell ({GRID * GRID}): a projector merge that tiles the grid")
    labels = torch.tensor([cell_contents(item.scene) for item in items])  # (N, cells)
    sums = torch.zeros(GRID * GRID, CONTENTS, features.shape[-1])
    counts = torch.zeros(GRID * GRID, CONTENTS)
    for cell in range(GRID * GRID):
        sums[cell].index_add_(0, labels[:, cell], features[:, cell])
        counts[cell].index_add_(0, labels[:, cell], torch.ones(len(items)))
    if (counts == 0).any():  # a content never seen in a cell would be a zero vector: a lie, not a clean feature
        raise ConfigError(f"{int((counts == 0).sum())} (cell, object) pairs never occur in the {len(items)} training "
                          f"scenes; pass more with --train")
    return sums / counts.unsqueeze(-1)


def clean_answerer(model, protos: torch.Tensor, scenes: dict[Path, Scene], max_new_tokens: int = 96):
    """Answers like model_answerer, but each image slot holds its true content's prototype."""
    from assistant.generation import Sampling, reply_all

    greedy = Sampling(temperature=0, max_new_tokens=max_new_tokens)

    def with_clean_slots(image: Path, question: str):
        prompt = question_prompt(model, image, question)
        cells = torch.arange(GRID * GRID)
        clean = protos[cells, torch.tensor(cell_contents(scenes[image]))][None]  # (1, cells, H)
        return dataclasses.replace(prompt, image_features=clean.to(prompt.image_features.dtype))

    def answer(batch: list[tuple]) -> list[str]:
        return [reply.text for reply in reply_all(model, [with_clean_slots(*q) for q in batch], greedy)]

    return answer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph eval binding", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="an assistant directory")
    p.add_argument("--data", required=True, type=Path, help="a scene dataset (glyph data scenes)")
    p.add_argument("--train", type=int, default=2000, help="training scenes to average features over")
    p.add_argument("--scenes", type=int, default=80, help="validation scenes to ask about (5 questions each)")
    p.add_argument("--seed", type=int, default=7)
    return p


def main(argv: list[str] | None = None) -> int:
    from assistant.model import load_assistant

    args = build_parser().parse_args(argv)
    try:
        model = load_assistant(args.model)  # in eval mode
        protos = prototypes(model, load_scenes(args.data, "train", args.train))
        items = load_scenes(args.data, "validation", args.scenes)
    except ConfigError as error:
        print(f"glyph eval binding: {error}", file=sys.stderr)
        return 2
    questions = vqa_questions(items, args.seed)
    own, _ = score_vqa(questions, model_answerer(model), "VQA, own features")
    clean, _ = score_vqa(questions, clean_answerer(model, protos, {i.image: i.scene for i in items}),
                         "VQA, clean features")
    report = {"scenes": len(items), "train_scenes": args.train, "own_features": own, "clean_features": clean}
    write_json_atomic(args.model / "binding.json", report)
    for name, result in (("own features  ", own), ("clean features", clean)):
        types = "  ".join(f"{kind} {rate:.1%}" for kind, rate in result["by_type"].items())
        print(f"{name} VQA {result['overall']:.1%}  {types}")
    print(f"wrote {args.model / 'binding.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
