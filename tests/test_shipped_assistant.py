"""The assistant shipped in models/scenes-smollm2, on 30 scenes it never trained on: it guards the shipped weights.

The scenes are fresh (seed 2027) and kept only where the build's own split (seed 0, the recipe's scenes step)
puts them outside training, so no chat of the build was about them."""
from __future__ import annotations

import torch

from assistant.chat import ChatSession
from assistant.generation import Finished, Sampling
from assistant.llm import load_language_model
from assistant.model import GlyphModel, load_assistant
from data_gen.scene_dataset import split_of, write_scene_dataset
from training.eval_assistant import (
    GENERAL_QUESTIONS,
    load_scenes,
    model_answerer,
    no_picture_questions,
    score_no_picture,
    score_text_only,
    score_vqa,
    vqa_questions,
)

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


def test_the_shipped_assistant_asks_for_a_picture_it_was_not_given_and_answers_everyday_questions_in_words(tmp_path):
    """Round 23 made up answers about pictures nobody had attached ("The circle is yellow.") and answered
    "Write a motivational quote." with a red cross in a corner; the shipped assistant must do neither."""
    model = load_assistant()
    items = held_out_scenes(tmp_path / "scenes", 20)
    asked, outcomes = score_no_picture(no_picture_questions(items, seed=2027), model_answerer(model, 64))
    guesses = [(o.prompt, o.reply) for o in outcomes if not o.right][:5]
    assert asked["asked_for_picture"] >= 0.7, f"{asked}; answered instead: {guesses}"
    everyday, outcomes = score_text_only(list(GENERAL_QUESTIONS), model_answerer(model, 48),
                                         model_answerer(GlyphModel.build(model.config), 48))
    replies = [(o.prompt, o.reply) for o in outcomes]
    assert everyday["scene_talk"] <= 0.1 and everyday["asked_for_picture"] <= 0.25, f"{everyday}: {replies}"
    assert everyday["same_as_llm"] == 1.0, f"{everyday}: {replies}"  # handed over to SmolLM2 (hands_over)


def test_a_text_only_conversation_with_the_shipped_assistant_is_smollm2s_own_token_for_token():
    """Issue 20: a chat with no picture stays SmolLM2's own. The reference is SmolLM2 through plain
    transformers (its chat template, greedy generate()), not Glyph's generation, turn by turn."""
    model = load_assistant()
    llm, tokenizer = load_language_model(model.config.llm.name_or_path, model.config.llm.gguf_file)
    session, history = ChatSession(model), []
    for text in ("Who painted the Mona Lisa?", "Write a short poem about the sea."):
        ours = [e for e in session.send(text, settings=Sampling(temperature=0, max_new_tokens=40))
                if isinstance(e, Finished)][0]
        history.append({"role": "user", "content": text})
        prompt = tokenizer.apply_chat_template(history, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        with torch.inference_mode():
            out = llm.generate(**prompt, max_new_tokens=40, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        theirs = [t for t in out[0, prompt["input_ids"].shape[1]:].tolist() if t != tokenizer.eos_token_id]
        assert ours.token_ids == theirs, f"{text!r}: {ours.text!r} against {tokenizer.decode(theirs)!r}"
        history.append({"role": "assistant", "content": ours.text})
