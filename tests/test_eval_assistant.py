"""Eval scores: a perfect oracle 1.0, a blank canvas 0, a constant answerer exactly the share it gets right."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from data_gen.scene_dataset import write_scene_dataset
from scenes.captions import describe
from scenes.questions import FRAMES, KINDS, MORE_KINDS, SCENE_IN_TEXT, ask
from scenes.render import render_scene
from scenes.world import BACKGROUND, COLORS, scene_rng
from scenes.no_picture import NO_PICTURE_REPLY
from training.eval_assistant import (
    CAPTION_REQUEST,
    GENERAL_QUESTIONS,
    PICTURE_REQUESTS,
    casual_questions,
    follow_up_questions,
    geneval_prompts,
    load_scenes,
    more_kind_questions,
    no_picture_questions,
    one_at_a_time,
    score_captions,
    score_drawings,
    score_follow_ups,
    score_no_picture,
    score_text_only,
    score_vqa,
    shared_count_questions,
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


def test_a_blank_canvas_and_a_know_nothing_score_zero(items):
    blank = Image.new("RGB", (64, 64), BACKGROUND)
    geneval, outcomes = score_drawings(geneval_prompts(per_category=12, seed=1), one_at_a_time(lambda text: blank))
    assert geneval["overall"] == 0.0 and all(o.reply == "read: nothing" for o in outcomes)
    assert set(geneval["by_category"].values()) == {0.0}
    questions = vqa_questions(items, seed=1)
    vqa, _ = score_vqa(questions, one_at_a_time(lambda image, question: "I am not sure."))
    assert vqa["overall"] == 0.0 and set(vqa["by_type"].values()) == {0.0} and vqa["yes_no"]["yes_ratio"] == 0.0


def test_a_constant_answerer_scores_exactly_the_share_its_answer_is_right(items):
    """"Yes." is right on the existence questions whose answer is yes and nowhere else; "Red." on red ones."""
    questions = vqa_questions(items, seed=1)

    def share(kind, short):
        asked = [qa for _, qa in questions if qa.kind == kind]
        return sum(qa.short == short for qa in asked) / len(asked)

    assert 0.2 < share("existence", "yes") < 0.8 and 0 < share("color", "red") < 1  # neither is all or nothing
    always_yes, _ = score_vqa(questions, one_at_a_time(lambda image, question: "Yes."))
    yes_no = always_yes["yes_no"]
    assert yes_no["accuracy"] == pytest.approx(share("existence", "yes"), abs=1e-4) and yes_no["yes_ratio"] == 1.0
    assert yes_no["recall"] == 1.0 and yes_no["precision"] == pytest.approx(share("existence", "yes"), abs=1e-4)
    assert always_yes["by_type"] == {**dict.fromkeys(("color", "shape", "count", "position"), 0.0),
                                     "existence": yes_no["accuracy"]}
    always_red, _ = score_vqa(questions, one_at_a_time(lambda image, question: "Red."))
    assert always_red["by_type"]["color"] == pytest.approx(share("color", "red"), abs=1e-4)
    assert always_red["overall"] == pytest.approx(always_red["by_type"]["color"] / 5, abs=1e-4)  # 5 kinds, equal


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


class PromptLookup:
    """A stand-in LM and tokenizer that answers a prompt by looking it up: right only for the expected prompts."""

    pad_token_id = 0

    def __init__(self, answers: dict[str, str]):
        self.answers, self.prompts = answers, []

    def apply_chat_template(self, messages, **options):
        (message,) = messages
        self.prompts.append(message["content"])
        return {"input_ids": torch.zeros(1, 3, dtype=torch.long)}

    def generate(self, input_ids, **options):
        return torch.zeros(1, input_ids.shape[1] + 2, dtype=torch.long)

    def decode(self, ids, **options):
        return self.answers.get(self.prompts[-1], "I do not know.")


def test_the_lm_readiness_check_gives_the_lm_each_scenes_own_caption(tmp_path, items, monkeypatch):
    """An LM that answers right exactly when its prompt holds the question's own scene caption scores 100 %."""
    from training import eval_lm

    scenes = items[0].image.parents[1]
    captions = {scenes / row["image"]: row["caption"]
                for row in map(json.loads, (scenes / "test.jsonl").read_text().splitlines())}
    questions = vqa_questions(load_scenes(scenes, "test", 4), seed=0)
    lookup = PromptLookup({SCENE_IN_TEXT.format(caption=captions[item.image], question=qa.question): qa.answer
                           for item, qa in questions})
    monkeypatch.setattr("assistant.llm.load_language_model", lambda name: (lookup, lookup))
    model = tmp_path / "lm"
    model.mkdir()
    assert eval_lm.main(["--model", str(model), "--data", str(scenes), "--scenes", "4"]) == 0
    report = json.loads((model / "context_qa.json").read_text())
    assert report["overall"] == 1.0 and report["questions"] == 20 and set(report["by_type"].values()) == {1.0}
    assert len(lookup.prompts) == 20
    lookup.answers = {prompt.replace("Here is a scene", "A scene"): a for prompt, a in lookup.answers.items()}
    assert eval_lm.main(["--model", str(model), "--data", str(scenes), "--scenes", "4"]) == 0
    assert json.loads((model / "context_qa.json").read_text())["overall"] == 0.0  # another prompt, nothing right


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
    casual = casual_questions(items, seed=1)  # held-out wordings, typed in lower case or without a question mark
    assert all(qa.question[0].islower() or not qa.question.endswith("?") for _, qa in casual)
    assert {qa.kind for _, qa in casual} == set(KINDS)
    vqa, _ = score_vqa(casual, oracle_answerer(items, casual))
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


def test_two_image_questions_score_an_oracle_one_and_a_one_eyed_answerer_by_its_share(items):
    from training.eval_assistant import score_two_images, two_image_questions

    questions = two_image_questions(items, seed=0)
    assert len(questions) == len(items) and all(len(pair) == 2 for pair, _ in questions)
    truth = {(pair[0].image, pair[1].image, qa.question): qa for pair, qa in questions}
    perfect, _ = score_two_images(questions, one_at_a_time(lambda images, question: truth[(*images, question)].answer))
    assert perfect["overall"] == 1.0 and perfect["questions"] == len(items)
    always_first, outcomes = score_two_images(questions, one_at_a_time(lambda images, question: "The first one."))
    share = sum(qa.short == "first" for _, qa in questions) / len(questions)
    assert always_first["overall"] == pytest.approx(share, abs=1e-4) and always_first["by_answer"]["first"] == 1.0
    assert outcomes[0].image.width > outcomes[0].image.height  # both pictures, side by side, on the sheet


def test_late_requests_follow_questions_about_a_picture_and_score_like_first_ones(items, tiny_assistant):
    from assistant.model import GlyphModel
    from training.eval_assistant import late_prompts, late_requests

    prompts = geneval_prompts(per_category=6, seed=1)
    late = late_requests(prompts, items, seed=1)
    assert [r.prompt for r in late] == prompts and {len(r.earlier) for r in late} == {1, 2, 3}
    assert all(r.item == items[i % len(items)] for i, r in enumerate(late))
    unseen = {qa.question for _, qa in vqa_questions(items, seed=1, phrasing="held_out")}
    assert sum(question in unseen for r in late for question, _ in r.earlier) > 0  # held-out wordings
    examples = {r: r.prompt.example(scene_rng(9, i)) for i, r in enumerate(late)}
    right, _ = score_drawings(prompts, one_at_a_time(lambda r: render_scene(examples[r])), late)
    assert right["overall"] == 1.0
    # A drawer carried away by the conversation draws the picture it was asked about instead.
    confused, _ = score_drawings(prompts, one_at_a_time(lambda r: Image.open(r.item.image)), late)
    assert confused["overall"] < 0.3
    model = GlyphModel.from_pretrained(tiny_assistant)
    request = next(r for r in late if len(r.earlier) == 2)
    prompt, unconditional = late_prompts(model, request, cfg_scale=3.0)
    text = model.tokenizer.decode(prompt.input_ids[0])
    assert all(question in text and answer in text for question, answer in request.earlier)
    assert text.index(request.earlier[-1][1]) < text.index(request.prompt.text)
    assert prompt.image_features.shape[0] == 1 and request.prompt.text not in model.tokenizer.decode(
        unconditional.input_ids[0])
    assert torch.equal(late_prompts(model, request)[0].input_ids, prompt.input_ids)
    assert late_prompts(model, request)[1] is None


def long_context_copy(assistant, root):
    """A copy of `assistant` whose (tiny, character-level) LLM attends over 1,024 positions, not 256."""
    import shutil

    config = json.loads((assistant / "config.json").read_text())
    llm = shutil.copytree(config["llm"]["name_or_path"], root / "llm")
    llm_config = json.loads((llm / "config.json").read_text())
    (llm / "config.json").write_text(json.dumps(llm_config | {"max_position_embeddings": 1024}))
    copy = shutil.copytree(assistant, root / "assistant")
    config["llm"]["name_or_path"] = str(llm)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_more_kinds_of_question_score_an_oracle_one_and_a_stock_answer_by_its_share(items):
    questions = more_kind_questions(items, seed=1)
    assert [qa.kind for _, qa in questions[:5]] == list(MORE_KINDS)
    assert not {qa.question for _, qa in questions} & {frame for kind in MORE_KINDS for frame in FRAMES[kind]["train"]}
    vqa, _ = score_vqa(questions, oracle_answerer(items, questions))
    assert vqa["overall"] == 1.0 and list(vqa["by_type"]) == list(MORE_KINDS) and "yes_no" not in vqa
    stock, _ = score_vqa(questions, one_at_a_time(lambda image, question: "No, it is large and there is nothing."))
    expected = {kind: sum(qa.short == short for _, qa in questions if qa.kind == kind) / len(items)
                for kind, short in (("size", "large"), ("cell", "nothing"), ("any", "no"))}
    assert stock["by_type"] == pytest.approx(expected | {"shapes": 0.0, "colors": 0.0}, abs=1e-4)


def test_any_questions_are_scored_apart_by_colour_or_shape_and_by_the_truth(items):
    questions = [(item, ask(item.scene, scene_rng(5, i), "any", "held_out")) for i, item in enumerate(items * 10)]
    always_no, _ = score_vqa(questions, one_at_a_time(lambda image, question: "No."))
    groups = always_no["any_by"]
    assert set(groups) == {"colour, there", "colour, not there", "shape, there", "shape, not there"}
    assert sum(g["questions"] for g in groups.values()) == len(questions)
    assert groups["colour, there"]["right"] == groups["shape, there"]["right"] == 0.0
    assert groups["colour, not there"]["right"] == groups["shape, not there"]["right"] == 1.0
    for group, score in groups.items():  # each group's questions are about what it says
        about, truth = group.split(", ")
        asked = [qa for _, qa in questions if (qa.short == "yes") == (truth == "there")
                 and any(c in qa.question for c in COLORS) == (about == "colour")]
        assert len(asked) == score["questions"], group


def test_counts_of_a_kind_ask_only_about_twos_and_more_and_catch_a_model_that_says_one(items):
    questions = shared_count_questions(items, seed=3)
    assert 0 < len(questions) < len(items)  # only scenes where two objects share a colour or shape
    assert all(qa.kind == "count" and int(qa.short) >= 2 for _, qa in questions)
    held_out = tuple(frame.split("{")[0] for frame in FRAMES["count"]["held_out"])
    assert all(qa.question.startswith(held_out) for _, qa in questions)  # wordings training never used
    says_one, _ = score_vqa(questions, one_at_a_time(lambda image, question: "There is one circle."))
    perfect, _ = score_vqa(questions, oracle_answerer(items, questions))
    assert says_one["overall"] == 0.0 and perfect["overall"] == 1.0


def test_the_command_reports_every_section_on_a_saved_assistant(tiny_assistant, tmp_path, capsys):
    from training import eval_assistant

    model = long_context_copy(tiny_assistant, tmp_path)  # late requests after three turns outgrow 256 positions
    scenes = write_scene_dataset(tmp_path / "scenes", n=40, seed=1)
    out = tmp_path / "eval"
    assert eval_assistant.main(["--model", str(model), "--data", str(scenes), "--scenes", "2",
                                "--prompts", "1", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["late_requests"]["prompts"] == 5 and 0 <= report["late_requests"]["declined"] <= 1
    assert set(report["late_requests"]["by_category"]) == set(report["geneval"]["by_category"])
    printed = capsys.readouterr().out
    assert "late       overall" in printed and "more kinds overall" in printed and "  casual overall" in printed
    assert report["vqa_more_kinds"]["questions"] == report["vqa_casual"]["questions"] == 2 * 5
    assert report["no_picture"]["questions"] == 2 + len(PICTURE_REQUESTS)
    assert report["vqa_counts_of_a_kind"]["questions"] <= 2 and "counts     " in printed
    assert report["text_only"]["questions"] == len(GENERAL_QUESTIONS) and "no picture " in printed
    assert (out / "examples.png").stat().st_size > 0


def test_int8_evaluation_decodes_in_groups_small_enough_to_read_int8():
    """A decoding step of more than INT8_MAX_ROWS rows runs on the float weights, so an int8 evaluation that
    batched 20 questions would test float: it groups them (and guided drawings, two rows each) to fit."""
    from types import SimpleNamespace

    from assistant.int8 import INT8_MAX_ROWS
    from training.eval_assistant import int8_sized

    items = list(range(20))
    assert int8_sized(SimpleNamespace(int8_decoding=False), items) == [items]
    groups = int8_sized(SimpleNamespace(int8_decoding=True), items)
    assert [i for g in groups for i in g] == items and max(map(len, groups)) == INT8_MAX_ROWS
    guided = int8_sized(SimpleNamespace(int8_decoding=True), items, rows_each=2)
    assert [i for g in guided for i in g] == items and max(2 * len(g) for g in guided) <= INT8_MAX_ROWS


def test_questions_with_no_picture_score_a_request_for_one_and_text_only_ones_the_llms_own_reply(items):
    questions = no_picture_questions(items, seed=1)
    assert len(questions) == len(items) + len(PICTURE_REQUESTS)
    trained = {qa.question for seed in range(3) for _, qa in vqa_questions(items, seed, phrasing="train")}
    assert not set(questions) & trained  # held-out wordings

    def asks_without_picture(image, question):
        return NO_PICTURE_REPLY if image == () else "The circle is red."

    def guesses(image, question):
        return "The circle is yellow."

    right, _ = score_no_picture(questions, one_at_a_time(asks_without_picture))
    wrong, outcomes = score_no_picture(questions, one_at_a_time(guesses))
    assert right["asked_for_picture"] == 1.0 and wrong["asked_for_picture"] == 0.0
    assert not any(o.right for o in outcomes)

    def llm(image, question):
        return f"My own answer to {question}"

    same, _ = score_text_only(list(GENERAL_QUESTIONS), one_at_a_time(llm), one_at_a_time(llm))
    assert same == {"same_as_llm": 1.0, "same_first_sentence": 1.0, "asked_for_picture": 0.0, "scene_talk": 0.0,
                    "questions": len(GENERAL_QUESTIONS)}
    overeager, _ = score_text_only(list(GENERAL_QUESTIONS), one_at_a_time(asks_without_picture), one_at_a_time(llm))
    assert overeager["same_as_llm"] == 0.0 and overeager["asked_for_picture"] == 1.0
    assert overeager["scene_talk"] == 0.0  # "The circle is red." only ever answers a picture

    def shapes_everywhere(image, question):
        return f"My own answer to {question} There is a red cross in the top right corner."

    drifted, _ = score_text_only(list(GENERAL_QUESTIONS), one_at_a_time(shapes_everywhere), one_at_a_time(llm))
    assert drifted["scene_talk"] == 1.0 and drifted["same_first_sentence"] == 1.0 and drifted["same_as_llm"] == 0.0
