"""The evaluation scores a perfect oracle as 1.0 and a blank canvas (or a wrong answerer) near 0."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from scenes.captions import describe
from scenes.render import render_scene
from data_gen.scene_dataset import write_scene_dataset
from scenes.world import BACKGROUND, scene_rng
from training.eval_assistant import (
    CAPTION_REQUEST,
    follow_up_questions,
    geneval_prompts,
    load_scenes,
    one_at_a_time,
    score_captions,
    score_drawings,
    score_follow_ups,
    score_vqa,
    vqa_questions,
)


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    scenes = write_scene_dataset(tmp_path_factory.mktemp("eval") / "scenes", n=400, seed=5)
    return load_scenes(scenes, "test", limit=20)


def oracle_answerer(items, questions):
    """Answers from the spec: the scene oracle's own answer, and a caption of the true scene."""
    answers = {(item.image, qa.question): qa.answer for item, qa in questions}
    scenes = {item.image: item.scene for item in items}

    def answer(image, question):
        if question == CAPTION_REQUEST:
            return describe(scenes[image], scene_rng(0, 1))
        return answers[(image, question)]

    return one_at_a_time(answer)


def test_a_perfect_oracle_scores_one(items):
    questions = vqa_questions(items, seed=1)
    vqa, _ = score_vqa(questions, oracle_answerer(items, questions))
    assert vqa["overall"] == 1.0 and set(vqa["by_type"].values()) == {1.0}
    assert vqa["yes_no"]["accuracy"] == 1.0 and 0.2 < vqa["yes_no"]["yes_ratio"] < 0.8
    captions, _ = score_captions(items, oracle_answerer(items, questions))
    assert captions["exact"] == 1.0
    prompts = geneval_prompts(per_category=12, seed=1)
    examples = {p.text: p.example(scene_rng(9, i)) for i, p in enumerate(prompts)}
    geneval, _ = score_drawings(prompts, one_at_a_time(lambda text: render_scene(examples[text])))
    assert geneval["overall"] == 1.0


def test_a_blank_canvas_and_a_know_nothing_score_near_zero(items):
    blank = Image.new("RGB", (64, 64), BACKGROUND)
    geneval, outcomes = score_drawings(geneval_prompts(per_category=12, seed=1), one_at_a_time(lambda text: blank))
    assert geneval["overall"] == 0.0 and all(o.reply == "read: nothing" for o in outcomes)
    questions = vqa_questions(items, seed=1)
    vqa, _ = score_vqa(questions, one_at_a_time(lambda image, question: "I am not sure."))
    assert vqa["overall"] == 0.0
    always_yes, _ = score_vqa(questions, one_at_a_time(lambda image, question: "Yes."))
    assert 0.2 < always_yes["yes_no"]["accuracy"] < 0.8 and always_yes["yes_no"]["yes_ratio"] == 1.0


def test_a_drawing_of_the_wrong_scene_does_not_count(items):
    prompts = [p for p in geneval_prompts(per_category=12, seed=2) if p.category in ("colors", "position")]
    wrong = {p.text: render_scene(p.example(scene_rng(3, i))) for i, p in enumerate(prompts)}
    swapped = dict(zip(wrong, list(wrong.values())[1:] + list(wrong.values())[:1]))  # each gets another's drawing
    geneval, _ = score_drawings(prompts, one_at_a_time(lambda text: swapped[text]))
    assert max(geneval["by_category"][c] for c in ("colors", "position")) < 0.3


def test_the_lm_readiness_check_runs_on_a_saved_lm(tmp_path, items, capsys):
    from tests.tiny_parts import build_llm
    from training import eval_lm

    llm = build_llm(tmp_path / "llm", "llama")
    scenes = items[0].image.parents[1]
    assert eval_lm.main(["--model", str(llm), "--data", str(scenes), "--scenes", "2"]) == 0
    report = json.loads((llm / "context_qa.json").read_text())
    assert report["questions"] == 10 and 0.0 <= report["overall"] <= 1.0
    assert "answered from a caption" in capsys.readouterr().out
    assert eval_lm.main(["--model", str(tmp_path / "missing"), "--data", str(scenes)]) == 2


def test_follow_ups_and_unseen_wordings_score_an_oracle_one_and_a_forgetful_answerer_low(items):
    """A follow-up is the second turn of a chat: the answerer sees the first question and its own reply."""
    triples = follow_up_questions(items, seed=1)
    answers = {(item.image, qa.question): qa.answer for item, first, follow in triples for qa in (first, follow)}
    seen_earlier = []

    def oracle(image, question, earlier=()):
        seen_earlier.append(earlier)
        return answers[(image, question)]

    follow_ups, _ = score_follow_ups(triples, one_at_a_time(oracle))
    assert follow_ups["overall"] == 1.0 and follow_ups["questions"] == 5 * len(items)
    first_turns = [(first.question, first.answer) for _, first, _ in triples]
    assert seen_earlier[len(triples):] == [(turn,) for turn in first_turns]  # each follow-up saw its first turn
    assert {first.kind != follow.kind for _, first, follow in triples} == {True}
    # An answerer that answers the first question again in the second turn gets follow-ups wrong.
    stuck, _ = score_follow_ups(triples, one_at_a_time(lambda image, question, earlier=():
                                                          earlier[0][1] if earlier else answers[(image, question)]))
    assert stuck["overall"] < 0.5
    unseen = vqa_questions(items, seed=1, phrasing="held_out")
    assert not {qa.question for _, qa in unseen} & {qa.question for _, qa in vqa_questions(items, seed=1)}
    vqa, _ = score_vqa(unseen, oracle_answerer(items, unseen))
    assert vqa["overall"] == 1.0


def test_drawing_prompts_and_impossible_requests_come_in_wordings_training_never_uses():
    from scenes import prompts as scene_prompts
    from training.eval_assistant import impossible_requests

    trained = [frame.split("{}")[0] for frame in scene_prompts.FRAMES["train"]]
    for prompt in geneval_prompts(per_category=20, seed=1):
        assert not any(prompt.text.startswith(start) for start in trained if start), prompt.text
    assert {p.text for p in geneval_prompts(per_category=20, seed=1, phrasing="train")}.isdisjoint(
        p.text for p in geneval_prompts(per_category=20, seed=1))
    requests = impossible_requests(per_reason=10, seed=1)
    assert len(requests) == 50 and len(set(requests)) > 40


def test_decline_and_picture_rates_count_what_the_model_would_open_with(tiny_assistant, items, monkeypatch):
    from assistant.model import GlyphModel
    from training.eval_assistant import decline_rate, picture_rate

    model = GlyphModel.from_pretrained(tiny_assistant)
    pattern = iter([True, False, False, True] * 20)  # the model's choice, request by request
    monkeypatch.setattr("assistant.generation.would_draw", lambda model, prompts: [next(pattern) for _ in prompts])
    assert decline_rate(model, ["Draw a dog."] * 8) == 0.5
    assert picture_rate(model, vqa_questions(items[:2], seed=1)) == 0.5  # 10 questions, True at 1, 4, 5, 8, 9


def test_the_drawing_sheet_draws_every_fixed_request_with_every_seed(tmp_path):
    from training.eval_assistant import SHEET_PROMPTS, drawing_sheet

    asked = []

    def drawer(seed):
        def draw(requests):
            asked.append((seed, tuple(requests)))
            return [render_scene(p.example(scene_rng(seed, 0)))
                    for p in geneval_prompts(per_category=1, seed=seed)[:1] * len(requests)]
        return draw

    path = drawing_sheet(drawer, tmp_path / "drawings.png", seeds=3)
    assert asked == [(seed, SHEET_PROMPTS) for seed in range(3)]
    assert Image.open(path).size[1] > Image.open(path).size[0]  # a row per request, a column per seed
