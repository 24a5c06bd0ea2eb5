"""The assistant shipped in models/scenes-smollm2, on 30 scenes it never trained on: it guards the shipped weights.

The scenes are fresh (seed 2027) and kept only where the build's own split (seed 0, the recipe's scenes step)
puts them outside training, so no chat of the build was about them."""
from __future__ import annotations

from assistant.model import load_assistant
from data_gen.scene_dataset import split_of, write_scene_dataset
from training.eval_assistant import load_scenes, model_answerer, score_vqa, vqa_questions

BUILD_SPLIT_SEED, HOLDOUT = 0, 0.05  # training/recipes/scenes-smollm2.yaml's scenes step, and its default holdout


def held_out_scenes(folder, n: int):
    scenes = write_scene_dataset(folder, n=1200, seed=2027)
    items = [item for split in ("train", "validation", "test") for item in load_scenes(scenes, split, 10_000)]
    held_out = [item for item in items if split_of(item.scene, BUILD_SPLIT_SEED, HOLDOUT) != "train"]
    assert len(held_out) >= n
    return held_out[:n]


def test_the_shipped_assistant_answers_questions_about_scenes_it_never_saw(tmp_path):
    model = load_assistant()  # the shipped one
    items = held_out_scenes(tmp_path / "scenes", 30)
    vqa, outcomes = score_vqa(vqa_questions(items, seed=2027), model_answerer(model, max_new_tokens=32))
    wrong = [(o.prompt, o.reply) for o in outcomes if not o.right][:10]
    assert vqa["questions"] == 150
    assert vqa["overall"] >= 0.90, f"VQA {vqa['overall']:.1%} by type {vqa['by_type']}; wrong: {wrong}"
