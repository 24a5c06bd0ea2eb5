"""Evaluate a trained scene assistant on held-out scenes: understanding, captioning and drawing.

    glyph eval assistant --model runs/instruct --data data/scenes --split test --out runs/eval

- VQA: one question of each type (colour, shape, count, position, existence) per scene, answered greedily;
  the answer is read back to its canonical short form (scenes.reading) and compared with the spec's.
  Asked three ways: in the wordings training chats use; in held-out wordings that no training chat uses
  (scenes.questions.FRAMES); and as follow-ups, each question the second turn of a chat whose first turn
  was another question about the same image, answered by the model itself.
- More kinds of question, in held-out wordings, one of each per scene: an object's size, what is in a place
  (or that nothing is), which shapes and which colours the picture has, whether anything has a colour or a
  shape (scenes.questions.MORE_KINDS). The shipped round 18 never trained on them: for it the row shows how
  far the five kinds' training carries.
- Two images: "Which picture has more circles?" about each scene and the next, both pictures in one
  message (scenes.questions.compare): right when the reply names the right one, or says they have as many.
- Words, not pictures: how often the model, free to start a drawing, would open its answer to a question
  with one (its greedy first token is <boi>).
- Yes/no (POPE-like): the existence questions, half about objects that are not there: accuracy,
  precision, recall and how often the model says yes.
- Captions: "Describe this image."; a caption counts when the objects it names (size, colour, shape and
  place) are exactly the scene's.
- Scene-GenEval: drawing prompts by category (single object, two objects, counting, colour binding, position,
  see scenes.prompts), in wordings no training chat uses, drawn with classifier-free guidance and read
  by the scene parser; a drawing counts when it has exactly what the prompt asks for. Overall is the mean over
  categories, as in GenEval. The same prompts are also drawn without guidance (--compare-cfg), to show what
  guidance does.
- Late requests: the GenEval prompts again, each after one to three questions (held-out wordings) about a
  test picture, answered as the scene oracle answers: users ask for a drawing mid-conversation, not only
  first. Scored as GenEval is, and by how many of them the model declines (it should decline none).
- No picture: one question per scene in held-out wordings, and requests such as "What's in the photo I sent?",
  asked before any picture is in the chat: right when the reply asks for a picture (scenes.no_picture) instead
  of answering about one nobody has seen. And 16 questions that have nothing to do with pictures ("Who painted
  the Mona Lisa?"): right when the reply is word for word the frozen LLM's own; also reported, how often the
  first sentence is, and how often the reply asks for a picture or talks of shapes.
- Declines: requests the world cannot satisfy (things, shapes, colours it lacks, too many objects,
  contradictions; scenes.declines, held-out things and wordings) should be declined in words, and the
  GenEval prompts should not: the share of each whose greedy first reply token is not <boi>.

Writes report.json and examples.png into --out and prints the report.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from assistant.config import ConfigError, write_json_atomic
from scenes.declines import REASONS, impossible_request
from scenes.no_picture import asks_for_picture
from scenes.parser import read_scene
from scenes.prompts import CATEGORIES, DrawingPrompt, drawing_prompt
from scenes.questions import COMPARE, KINDS, MORE_KINDS, QA, ask, ask_count_of_shared, casually, compare
from scenes.reading import read_caption, short_answer
from scenes.world import COLORS, SHAPES, Scene, plural, scene_rng
from training.pictures import save_png_atomic

CAPTION_REQUEST = "Describe this image."
# Scorers hand their answerer and drawer a batch at a time: the model answers a batch as the rows of one pass.
AnswerAll = Callable[[list[tuple[Path, str]]], list[str]]  # [(image file, question)] → replies
DrawAll = Callable[[list[str]], list[Image.Image]]  # requests → drawings
BLANK = Image.new("RGB", (48, 48), "white")  # the example sheet's picture for a question asked without one
BATCH = 20  # per call; on a scenes-tiny build, 20 rows at once made VQA 4× and drawing 11–17× faster than 1


@dataclass(frozen=True)
class SceneItem:
    image: Path
    scene: Scene


@dataclass(frozen=True)
class LateRequest:
    """A drawing prompt asked after `earlier` (question, answer) turns about `item`'s picture."""
    prompt: DrawingPrompt
    item: SceneItem
    earlier: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Outcome:
    """One scored example, kept for the report's example sheet."""
    task: str
    prompt: str
    reply: str
    right: bool
    image: Path | Image.Image | None = None


def load_scenes(directory: Path, split: str, limit: int) -> list[SceneItem]:
    index = directory / f"{split}.jsonl"
    if not index.is_file():
        raise ConfigError(f"{index} does not exist; pass a scene dataset (glyph data scenes) and a split it has")
    rows = [json.loads(line) for line in index.read_text().splitlines()[:limit]]
    return [SceneItem(directory / row["image"], Scene.from_dict(row)) for row in rows]


# ---- scoring, for any answerer and drawer (the model, a perfect oracle, a blank canvas) -------------------

def vqa_questions(items: list[SceneItem], seed: int, phrasing: str = "train") -> list[tuple[SceneItem, QA]]:
    return [(item, ask(item.scene, scene_rng(seed, i * len(KINDS) + k), kind, phrasing))
            for i, item in enumerate(items) for k, kind in enumerate(KINDS)]


def more_kind_questions(items: list[SceneItem], seed: int) -> list[tuple[SceneItem, QA]]:
    """One question of each of MORE_KINDS per scene, in held-out wordings."""
    return [(item, ask(item.scene, scene_rng(seed + 11, i * len(MORE_KINDS) + k), kind, "held_out"))
            for i, item in enumerate(items) for k, kind in enumerate(MORE_KINDS)]


def casual_questions(items: list[SceneItem], seed: int) -> list[tuple[SceneItem, QA]]:
    """The five kinds in held-out wordings, typed as people type into a chat box: in lower case, without the
    question mark, or both (scenes.questions.casually)."""
    return [(item, dataclasses.replace(qa, question=casually(qa.question, scene_rng(seed + 13, i))))
            for i, (item, qa) in enumerate(vqa_questions(items, seed + 13, "held_out"))]


def shared_count_questions(items: list[SceneItem], seed: int) -> list[tuple[SceneItem, QA]]:
    """For each scene where two or more objects share a colour or a shape, how many there are, in held-out
    wordings ("How many crosses do you spot?": two). ask()'s count questions are mostly about none or one, so
    a model that says "one" of every pair can still score 95 % on them."""
    asked = [(item, ask_count_of_shared(item.scene, scene_rng(seed + 19, i), "held_out"))
             for i, item in enumerate(items)]
    return [(item, qa) for item, qa in asked if qa is not None]


def follow_up_questions(items: list[SceneItem], seed: int) -> list[tuple[SceneItem, QA, QA]]:
    """(scene, first question, follow-up) triples: every kind as a follow-up, after a question of the next kind."""
    return [(item, ask(item.scene, scene_rng(seed + 1, i * len(KINDS) + k), KINDS[(k + 1) % len(KINDS)]),
             ask(item.scene, scene_rng(seed + 2, i * len(KINDS) + k), kind))
            for i, item in enumerate(items) for k, kind in enumerate(KINDS)]


def two_image_questions(items: list[SceneItem], seed: int, phrasing: str = "train"
                        ) -> list[tuple[tuple[SceneItem, SceneItem], QA]]:
    """One question about two scenes per scene: it and the next one (the last with the first)."""
    pairs = [(item, items[(i + 1) % len(items)]) for i, item in enumerate(items)] if len(items) > 1 else []
    return [((a, b), compare(a.scene, b.scene, scene_rng(seed + 3, i), phrasing)) for i, (a, b) in enumerate(pairs)]


# Asked with no picture in the chat: requests for one in wordings no training chat uses, and questions that
# need no picture at all, hand-written apart from data_gen.everyday_requests' templates (the assistant should
# answer those as its LLM does on its own).
PICTURE_REQUESTS = ("What's in the photo I sent?", "Can you tell me what you see in my image?",
                    "How many shapes are in this picture?", "Look at my picture and tell me the colours.",
                    "what is in the top left corner of the image", "Is the square in my picture big or small?")
GENERAL_QUESTIONS = ("What is the tallest mountain in the world?", "Write a limerick about a cat who loves fish.",
                     "How many days are there in a leap year?", "What is 15 divided by 3?",
                     "Who painted the Mona Lisa?", "Suggest a good book for a long flight.",
                     "What is the boiling point of water in Celsius?", "How do bees make honey?",
                     "Can you recommend a healthy breakfast?", "What are the three states of matter?",
                     "Write a motivational quote.", "How far is the Moon from the Earth?",
                     "What's the difference between weather and climate?", "Give me a word that rhymes with light.",
                     "How can I improve my handwriting?", "In which year did people first walk on the Moon?")


def no_picture_questions(items: list[SceneItem], seed: int) -> list[str]:
    """One question per scene in held-out wordings (the five kinds in turn), then PICTURE_REQUESTS: to be asked
    with no picture in the chat."""
    return [ask(item.scene, scene_rng(seed + 17, i), KINDS[i % len(KINDS)], "held_out").question
            for i, item in enumerate(items)] + list(PICTURE_REQUESTS)


def score_no_picture(questions: list[str], answer: AnswerAll) -> tuple[dict, list[Outcome]]:
    """Questions about a picture with none in the chat: right when the reply asks for one."""
    replies = in_batches([((), question) for question in questions], answer, "no picture")
    outcomes = [Outcome("no picture", question, reply, asks_for_picture(reply), BLANK)
                for question, reply in zip(questions, replies)]
    return {"asked_for_picture": _rate(outcomes), "questions": len(outcomes)}, outcomes


def score_text_only(questions: list[str], answer: AnswerAll, llm_answer: AnswerAll) -> tuple[dict, list[Outcome]]:
    """Questions that need no picture: right when the reply is, word for word, the one the LLM gives on its own
    (`llm_answer`: the same frozen LLM without anything trained). Also how often its first sentence is the LLM's,
    how often it asks for a picture, and how often it talks of the scene world (names a shape, a corner or the
    grid) when the question does not."""
    asked = [((), question) for question in questions]
    replies, own = in_batches(asked, answer, "text only"), in_batches(asked, llm_answer, "the LLM alone")
    outcomes = [Outcome("text only", question, reply, reply.strip() == theirs.strip(), BLANK)
                for question, reply, theirs in zip(questions, replies, own)]
    return {"same_as_llm": _rate(outcomes),
            "same_first_sentence": _share_of([_first_sentence(r) == _first_sentence(t) for r, t in zip(replies, own)]),
            "asked_for_picture": _share_of([asks_for_picture(r) for r in replies]),
            "scene_talk": _share_of([bool(_scene_words(r)) and not _scene_words(q)
                                     for q, r in zip(questions, replies)]),
            "questions": len(outcomes)}, outcomes


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]


def _scene_words(text: str) -> set[str]:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return words & ({*SHAPES, *map(plural, SHAPES), "corner", "corners", "grid"})


def _share_of(flags: list[bool]) -> float:
    return round(sum(flags) / max(1, len(flags)), 4)


def one_at_a_time(answer: Callable) -> Callable:
    """A batch answerer (or drawer) from one that takes a single (image, question) (or request)."""
    return lambda batch: [answer(*request) if isinstance(request, tuple) else answer(request) for request in batch]


def in_batches(requests: list, respond: Callable[[list], list], desc: str) -> list:
    """respond(batch) over `requests`, BATCH at a time, with a progress bar counting requests."""
    replies = []
    with tqdm(total=len(requests), desc=desc, leave=False) as progress:
        for start in range(0, len(requests), BATCH):
            replies += respond(requests[start:start + BATCH])
            progress.update(len(requests[start:start + BATCH]))
    return replies


def score_vqa(questions: list[tuple[SceneItem, QA]], answer: AnswerAll, desc: str = "VQA"
              ) -> tuple[dict, list[Outcome]]:
    replies = in_batches([(item.image, qa.question) for item, qa in questions], answer, desc)
    outcomes = [Outcome(qa.kind, qa.question, reply, short_answer(qa.kind, reply) == qa.short, item.image)
                for (item, qa), reply in zip(questions, replies)]
    kinds = dict.fromkeys(qa.kind for _, qa in questions)  # in the order asked: KINDS' order for the five
    by_type = {kind: _rate([o for o in outcomes if o.task == kind]) for kind in kinds}
    existence = [(o, qa) for o, (_, qa) in zip(outcomes, questions) if qa.kind == "existence"]
    scores = {"overall": _rate(outcomes), "by_type": by_type, "questions": len(outcomes)}
    anything = [(o, qa) for o, (_, qa) in zip(outcomes, questions) if qa.kind == "any"]
    return scores | ({"yes_no": _pope(existence)} if existence else {}) | \
        ({"any_by": _any_breakdown(anything)} if anything else {}), outcomes


def _any_breakdown(pairs: list[tuple[Outcome, QA]]) -> dict:
    """`any` questions scored apart by what they ask about (a colour or a shape) and the truth (there or not):
    one rate hides a model that says "No" beside small triangles but never misses a colour."""
    def group(qa: QA) -> str:
        about = "colour" if set(re.findall(r"[a-z]+", qa.question.lower())) & set(COLORS) else "shape"
        return f"{about}, {'there' if qa.short == 'yes' else 'not there'}"

    groups = sorted({group(qa) for _, qa in pairs})
    return {g: {"right": _rate([o for o, qa in pairs if group(qa) == g]),
                "questions": sum(group(qa) == g for _, qa in pairs)} for g in groups}


def score_two_images(questions: list[tuple[tuple[SceneItem, SceneItem], QA]], answer: AnswerAll
                     ) -> tuple[dict, list[Outcome]]:
    """"Which picture has more circles?" with both pictures in one message; by the right answer, too."""
    replies = in_batches([((a.image, b.image), qa.question) for (a, b), qa in questions], answer, "two images")
    outcomes = [Outcome(COMPARE, qa.question, reply, short_answer(COMPARE, reply) == qa.short,
                        side_by_side(a.image, b.image)) for ((a, b), qa), reply in zip(questions, replies)]
    by_answer = {short: _rate([o for o, (_, qa) in zip(outcomes, questions) if qa.short == short])
                 for short in ("first", "second", "same")}
    return {"overall": _rate(outcomes), "by_answer": by_answer, "questions": len(outcomes)}, outcomes


def side_by_side(first: Path, second: Path) -> Image.Image:
    with Image.open(first) as a, Image.open(second) as b:
        joined = Image.new("RGB", (a.width + b.width + 4, max(a.height, b.height)), "white")
        joined.paste(a.convert("RGB"), (0, 0))
        joined.paste(b.convert("RGB"), (a.width + 4, 0))
    return joined


def score_follow_ups(triples: list[tuple[SceneItem, QA, QA]], answer: AnswerAll) -> tuple[dict, list[Outcome]]:
    """VQA on second turns: the model answers the first question, then the follow-up with its answer in view."""
    firsts = in_batches([(item.image, first.question) for item, first, _ in triples], answer, "first turns")
    replies = in_batches([(item.image, follow.question, ((first.question, said),))
                          for (item, first, follow), said in zip(triples, firsts)], answer, "follow-ups")
    outcomes = [Outcome(follow.kind, f"{first.question} / {follow.question}", reply,
                        short_answer(follow.kind, reply) == follow.short, item.image)
                for (item, first, follow), reply in zip(triples, replies)]
    return {"overall": _rate(outcomes), "by_type": {kind: _rate([o for o in outcomes if o.task == kind])
                                                    for kind in KINDS}, "questions": len(outcomes)}, outcomes


def _pope(pairs: list[tuple[Outcome, QA]]) -> dict:
    said_yes = [short_answer("existence", o.reply) == "yes" for o, _ in pairs]
    truly = [qa.short == "yes" for _, qa in pairs]
    hits = sum(s and t for s, t in zip(said_yes, truly))
    precision = hits / max(1, sum(said_yes))
    recall = hits / max(1, sum(truly))
    return {"accuracy": _rate([o for o, _ in pairs]), "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / max(1e-9, precision + recall), 4),
            "yes_ratio": round(sum(said_yes) / max(1, len(pairs)), 4), "questions": len(pairs)}


def score_captions(items: list[SceneItem], answer: AnswerAll) -> tuple[dict, list[Outcome]]:
    replies = in_batches([(item.image, CAPTION_REQUEST) for item in items], answer, "captions")
    outcomes = [Outcome("caption", CAPTION_REQUEST, reply, read_caption(reply) == item.scene.keys(), item.image)
                for item, reply in zip(items, replies)]
    return {"exact": _rate(outcomes), "captions": len(outcomes)}, outcomes


def geneval_prompts(per_category: int, seed: int, phrasing: str = "held_out") -> list[DrawingPrompt]:
    return [drawing_prompt(category, scene_rng(seed, c * 100_000 + i), phrasing)
            for c, category in enumerate(CATEGORIES) for i in range(per_category)]


def late_requests(prompts: list[DrawingPrompt], items: list[SceneItem], seed: int) -> list[LateRequest]:
    """Every prompt after one, two or three questions (in turn) about a picture of `items`, with the oracle's
    answers."""
    late = []
    for i, prompt in enumerate(prompts):
        item, rng = items[i % len(items)], scene_rng(seed + 5, i)
        questions = [ask(item.scene, rng, phrasing="held_out") for _ in range(1 + i % 3)]
        late.append(LateRequest(prompt, item, tuple((qa.question, qa.answer) for qa in questions)))
    return late


def impossible_requests(per_reason: int, seed: int) -> list[str]:
    """Requests outside the world, in things and wordings that training never uses."""
    return [impossible_request(scene_rng(seed + 3, r * 100_000 + i), "held_out", reason).text
            for r, reason in enumerate(REASONS) for i in range(per_reason)]


def score_drawings(prompts: list[DrawingPrompt], draw: DrawAll, requests: list | None = None
                   ) -> tuple[dict, list[Outcome]]:
    """GenEval over `prompts`; draw gets requests[i] for prompt i (its text by default; a LateRequest, say)."""
    outcomes = []
    requests = [p.text for p in prompts] if requests is None else requests
    for prompt, drawing in zip(prompts, in_batches(requests, draw, "drawings")):
        reading = read_scene(drawing)
        right = not reading.unknown and prompt.satisfied_by(reading.objects)
        seen = ", ".join(" ".join(map(str, key[:3])) for key in reading.keys()) or "nothing"  # noqa: SIM118
        outcomes.append(Outcome(prompt.category, prompt.text, f"read: {seen}", right, drawing))
    by_category = {c: _rate([o for o in outcomes if o.task == c]) for c in CATEGORIES}
    overall = round(float(np.mean([by_category[c] for c in CATEGORIES])), 4)
    return {"overall": overall, "by_category": by_category, "prompts": len(outcomes)}, outcomes


def _rate(outcomes: list[Outcome]) -> float:
    return round(sum(o.right for o in outcomes) / len(outcomes), 4) if outcomes else 0.0


# ---- the model as an answerer and a drawer ---------------------------------------------------------------

def model_answerer(model, max_new_tokens: int = 96) -> AnswerAll:
    from assistant.generation import Sampling, reply_all

    greedy = Sampling(temperature=0, max_new_tokens=max_new_tokens)

    def answer(batch: list[tuple]) -> list[str]:
        return [reply.text for group in int8_sized(model, batch)
                for reply in reply_all(model, [question_prompt(model, *q) for q in group], greedy)]

    return answer


def int8_sized(model, items: list, rows_each: int = 1) -> list[list]:
    """`items` in groups of at most INT8_MAX_ROWS decoding rows when the model decodes in int8 (`rows_each` per
    item: 2 for a guided drawing), so that its steps read int8 as a chat's do: a step of more rows runs on the
    float weights (assistant/int8.py). One group otherwise."""
    from assistant.int8 import INT8_MAX_ROWS

    size = max(1, INT8_MAX_ROWS // rows_each) if model.int8_decoding else max(1, len(items))
    return [items[start:start + size] for start in range(0, len(items), size)]


def question_prompt(model, image: Path | tuple[Path, ...], question: str, earlier: tuple[tuple[str, str], ...] = ()):
    """The prompt asking `question` about `image` (or several, in order), after `earlier` (question, reply)
    turns about it."""
    return _chat(model, image, question, earlier).next_prompts(cfg_scale=1.0)[0]


def late_prompts(model, late: LateRequest, cfg_scale: float = 1.0) -> tuple:
    """The prompt asking for `late`'s drawing after its earlier turns, and its unconditional prompt for
    guidance (None at scale 1)."""
    return _chat(model, late.item.image, late.prompt.text, late.earlier).next_prompts(cfg_scale)


def _chat(model, image: Path | tuple[Path, ...], text: str, earlier: tuple[tuple[str, str], ...]):
    """A chat session about `image` that has had the `earlier` turns and now says `text`."""
    from assistant.chat import ChatSession, user_message

    images = list(image) if isinstance(image, tuple) else [image]
    session = ChatSession(model)
    for turn, (asked, said) in enumerate(earlier):
        session.messages += [user_message(asked, images if turn == 0 else []),
                             {"role": "assistant", "content": said}]
    session.messages.append(user_message(text, [] if earlier else images))
    return session


def picture_rate(model, questions: list[tuple[SceneItem, QA]]) -> float:
    """The share of questions whose greedy first reply token, over every token the model may say, is <boi>."""
    prompts = [question_prompt(model, item.image, qa.question) for item, qa in questions]
    return _share(model, prompts, drawn=True)


def decline_rate(model, requests: list[str]) -> float:
    """The share of drawing requests that the model, free to say anything, answers in words (a decline) instead
    of opening a drawing."""
    from assistant.chat import one_turn_prompts

    return _share(model, [one_turn_prompts(model, request)[0] for request in requests], drawn=False)


def _share(model, prompts: list, drawn: bool) -> float:
    from assistant.generation import would_draw

    opened = [d for start in range(0, len(prompts), BATCH) for d in would_draw(model, prompts[start:start + BATCH])]
    return round(sum(d == drawn for d in opened) / max(1, len(opened)), 4)


def model_drawer(model, cfg_scale: float, temperature: float, top_k: int, seed: int, late: bool = False) -> DrawAll:
    """Draws request texts, or LateRequests (late=True) after their earlier turns."""
    from assistant.chat import one_turn_prompts
    from assistant.generation import Sampling, draw_all

    settings = Sampling(temperature=temperature, top_k=top_k, cfg_scale=cfg_scale)
    count = iter(range(10 ** 9))

    def prompts_of(request) -> tuple:
        if late:
            return late_prompts(model, request, cfg_scale)
        return one_turn_prompts(model, request, cfg_scale=cfg_scale)

    def draw(requests: list) -> list[Image.Image]:
        return [image for group in int8_sized(model, requests, rows_each=1 if cfg_scale == 1 else 2)
                for image in draw_group(group)]

    def draw_group(requests: list) -> list[Image.Image]:
        pairs = [prompts_of(request) for request in requests]
        unconditional = [u for _, u in pairs] if cfg_scale != 1 else None
        seeds = [seed + next(count) for _ in requests]  # drawing i has seed + i, however the batches fall
        return [done.image for done in draw_all(model, [p for p, _ in pairs], unconditional, settings, seeds)]

    return draw


# ---- the command -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph eval assistant", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="an assistant directory (stage 1 or 2 output)")
    p.add_argument("--int8", action="store_true", help="decode with int8 weights, as glyph chat --int8 does")
    p.add_argument("--data", required=True, type=Path, help="the scene dataset")
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, default=None, help="where report.json and examples.png go (default: MODEL/eval)")
    p.add_argument("--scenes", type=int, default=100, help="held-out scenes for VQA (5 questions each) and captions")
    p.add_argument("--prompts", type=int, default=40, help="drawing prompts per GenEval category")
    p.add_argument("--cfg-scale", type=float, default=3.0)
    p.add_argument("--draw-temperature", type=float, default=1.0)
    p.add_argument("--draw-top-k", type=int, default=0)
    p.add_argument("--compare-cfg", action="store_true", help="also draw every prompt without guidance")
    p.add_argument("--seed", type=int, default=0)
    return p


def evaluate(model, items: list[SceneItem], args: argparse.Namespace) -> tuple[dict, list[Outcome]]:
    started = time.perf_counter()
    answer = model_answerer(model)
    questions = vqa_questions(items, args.seed)
    vqa, vqa_outcomes = timed(score_vqa, questions, answer)
    unseen, unseen_outcomes = timed(score_vqa, vqa_questions(items, args.seed + 7, "held_out"), answer, "VQA unseen")
    casual, casual_outcomes = timed(score_vqa, casual_questions(items, args.seed), answer, "VQA casual")
    shared, shared_outcomes = timed(score_vqa, shared_count_questions(items, args.seed), answer, "counts of a kind")
    follow_ups, follow_outcomes = timed(score_follow_ups, follow_up_questions(items, args.seed), answer)
    more_kinds, more_outcomes = timed(score_vqa, more_kind_questions(items, args.seed), answer, "VQA more kinds")
    two_images, two_outcomes = timed(score_two_images, two_image_questions(items, args.seed), answer)
    no_picture, no_picture_outcomes = timed(score_no_picture, no_picture_questions(items, args.seed), answer)
    from assistant.model import GlyphModel

    llm_alone = model_answerer(GlyphModel.build(model.config))  # nothing trained: the LLM's own replies
    text_only, text_outcomes = timed(score_text_only, list(GENERAL_QUESTIONS), answer, llm_alone)
    vqa["picture_rate"] = picture_rate(model, questions)
    captions, caption_outcomes = timed(score_captions, items, answer)
    prompts = geneval_prompts(args.prompts, args.seed)
    draw = model_drawer(model, args.cfg_scale, args.draw_temperature, args.draw_top_k, args.seed)
    geneval, draw_outcomes = timed(score_drawings, prompts, draw)
    declines = {"out_of_world": decline_rate(model, impossible_requests(args.prompts, args.seed)),
                "in_world": decline_rate(model, [p.text for p in prompts]),
                "requests": {"out_of_world": args.prompts * len(REASONS), "in_world": len(prompts)}}
    late = late_requests(prompts, items, args.seed)
    late_draw = model_drawer(model, args.cfg_scale, args.draw_temperature, args.draw_top_k, args.seed, late=True)
    late_geneval, late_outcomes = timed(score_drawings, prompts, late_draw, late)
    report = {"split": args.split, "scenes": len(items), "vqa": vqa, "vqa_unseen_phrasings": unseen,
              "vqa_casual": casual, "vqa_counts_of_a_kind": shared, "vqa_follow_ups": follow_ups,
              "vqa_more_kinds": more_kinds,
              "vqa_two_images": two_images, "no_picture": no_picture,
              "text_only": text_only,
              "captions": captions,
              "geneval": {"cfg_scale": args.cfg_scale, "phrasing": "held_out", **geneval}, "declines": declines,
              "late_requests": {"after": "1-3 questions about a test picture", **late_geneval,
                                "declined": _share(model, [late_prompts(model, r)[0] for r in late], drawn=False)}}
    if args.compare_cfg:
        plain = model_drawer(model, 1.0, args.draw_temperature, args.draw_top_k, args.seed)
        report["geneval_without_cfg"] = {"cfg_scale": 1.0, **timed(score_drawings, prompts, plain)[0]}
    report["weights"] = "int8" if model.int8_decoding else str(model.causal_lm.dtype).removeprefix("torch.")
    report["sampling"] = {"answers": "greedy", "drawings": {"temperature": args.draw_temperature,
                                                            "top_k": args.draw_top_k, "seed": args.seed}}
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report, (vqa_outcomes + unseen_outcomes[:1] + casual_outcomes[:1] + shared_outcomes[:1]
                    + follow_outcomes[:1]
                    + more_outcomes[:5] + two_outcomes[:2] + no_picture_outcomes[:1]
                    + text_outcomes[:1]
                    + caption_outcomes + draw_outcomes
                    + [dataclasses.replace(o, task=f"late {o.task}") for o in late_outcomes])


def timed(score, *args) -> tuple[dict, list[Outcome]]:
    """score(*args) with its wall time added to the scores, so a report says which part the time went to."""
    started = time.perf_counter()
    scores, outcomes = score(*args)
    return {**scores, "seconds": round(time.perf_counter() - started, 1)}, outcomes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from assistant.model import GlyphModel

        items = load_scenes(args.data, args.split, args.scenes)
        model = GlyphModel.from_pretrained(args.model, merge_lora=True)
    except (ConfigError, ValueError, OSError) as error:
        print(f"glyph eval assistant: {error}", file=sys.stderr)
        return 2
    model.int8_decoding = args.int8
    report, outcomes = evaluate(model, items, args)
    out = args.out or args.model / "eval"
    write_json_atomic(out / "report.json", report)
    example_sheet(outcomes, out / "examples.png")
    drawing_sheet(lambda seed: model_drawer(model, args.cfg_scale, args.draw_temperature, args.draw_top_k, seed),
                  out / "drawings.png")
    print(summary(report))
    return 0


def summary(report: dict) -> str:
    vqa, pope, geneval = report["vqa"], report["vqa"]["yes_no"], report["geneval"]
    parts = [(name, report[key]["seconds"]) for name, key in (("VQA", "vqa"), ("unseen", "vqa_unseen_phrasings"),
             ("casual", "vqa_casual"), ("counts of a kind", "vqa_counts_of_a_kind"), ("follow-ups", "vqa_follow_ups"),
             ("more kinds", "vqa_more_kinds"),
             ("two images", "vqa_two_images"), ("no picture", "no_picture"),
             ("text only", "text_only"), ("captions", "captions"),
             ("drawings", "geneval"), ("drawings without CFG", "geneval_without_cfg"),
             ("late requests", "late_requests")) if key in report]
    lines = [f"held-out {report['split']} split, {report['scenes']} scenes ({report['seconds']} s: "
             + ", ".join(f"{name} {seconds} s" for name, seconds in parts) + ")",
             f"VQA        overall {vqa['overall']:.1%}  " + "  ".join(f"{k} {v:.1%}" for k, v in vqa["by_type"].items()),
             *[f"{label} overall {report[key]['overall']:.1%}  "
               + "  ".join(f"{k} {v:.1%}" for k, v in report[key]["by_type"].items())
               for label, key in (("  unseen", "vqa_unseen_phrasings"), ("  casual", "vqa_casual"),
                                  ("follow-up", "vqa_follow_ups"),
                                  ("more kinds", "vqa_more_kinds"))
               if key in report],
             (f"counts     {report['vqa_counts_of_a_kind']['overall']:.1%} of "
              f"{report['vqa_counts_of_a_kind']['questions']} questions about a colour or shape that two or more "
              "objects share") if "vqa_counts_of_a_kind" in report else "",
             (f"two images overall {report['vqa_two_images']['overall']:.1%}  "
              + "  ".join(f"{k} {v:.1%}" for k, v in report["vqa_two_images"]["by_answer"].items()))
             if "vqa_two_images" in report else "",
             ("  any      " + "  ".join(f"{group} {score['right']:.1%}" for group, score
                                    in report["vqa_more_kinds"]["any_by"].items()))
             if "any_by" in report.get("vqa_more_kinds", {}) else "",
             (f"no picture {report['no_picture']['asked_for_picture']:.1%} of questions asked with no picture got "
              "a request for one") if "no_picture" in report else "",
             (f"text only  {report['text_only']['same_as_llm']:.1%} of questions that need no picture got the "
              f"LLM's own reply word for word ({report['text_only']['same_first_sentence']:.1%} its first "
              f"sentence), {report['text_only']['asked_for_picture']:.1%} a request for a picture, "
              f"{report['text_only']['scene_talk']:.1%} talk of shapes") if "text_only" in report else "",
             f"pictures   {vqa['picture_rate']:.1%} of questions would be answered with a drawing"
             if "picture_rate" in vqa else "",
             (f"yes/no     accuracy {pope['accuracy']:.1%}  precision {pope['precision']:.1%}  "
              f"recall {pope['recall']:.1%}  yes-ratio {pope['yes_ratio']:.1%}"),
             f"captions   exact {report['captions']['exact']:.1%}",
             f"GenEval    overall {geneval['overall']:.2f} (CFG {geneval['cfg_scale']:g})  "
             + "  ".join(f"{k} {v:.2f}" for k, v in geneval["by_category"].items())]
    lines = [line for line in lines if line]
    if "geneval_without_cfg" in report:
        plain = report["geneval_without_cfg"]
        lines.append(f"           overall {plain['overall']:.2f} without CFG  "
                     + "  ".join(f"{k} {v:.2f}" for k, v in plain["by_category"].items()))
    if "late_requests" in report:
        late = report["late_requests"]
        lines.append(f"late       overall {late['overall']:.2f} after {late['after']}, {late['declined']:.1%} "
                     "declined  " + "  ".join(f"{k} {v:.2f}" for k, v in late["by_category"].items()))
    if "declines" in report:
        lines.append(f"declines   {report['declines']['out_of_world']:.1%} of out-of-world drawing requests, "
                     f"{report['declines']['in_world']:.1%} of in-world ones")
    return "\n".join(lines)


def example_sheet(outcomes: list[Outcome], path: Path, per_task: int = 2) -> Path:
    """A few examples of every task, green when right and red when wrong."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(o.task for o in outcomes))
    shown = [o for t in tasks for o in [x for x in outcomes if x.task == t][:per_task]]
    columns = 6
    rows = max(1, -(-len(shown) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.7 * columns, 3.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, outcome in zip(axes.flat, shown):
        picture = Image.open(outcome.image).convert("RGB") if isinstance(outcome.image, Path) else outcome.image
        axis.imshow(picture, interpolation="nearest")
        axis.set_title(f"[{outcome.task}] " + _wrap(outcome.prompt), fontsize=6, loc="left")
        axis.text(0, -0.04, _wrap(outcome.reply), transform=axis.transAxes, fontsize=6, va="top",
                  color="green" if outcome.right else "red")
    figure.tight_layout()
    save_png_atomic(figure, path)
    plt.close(figure)
    return path


# Fixed requests for the drawing sheet (drawings.png, shown in the model card and the README), in plain words.
SHEET_PROMPTS = ("Draw a red circle.", "Draw a big blue square in the top left corner.",
                 "Draw a small yellow triangle in the middle.", "Draw three green crosses.",
                 "Draw a purple ring above an orange square.", "Draw a blue circle to the left of a red triangle.",
                 "Draw two rings and a square.", "Draw a green square in the bottom right and a yellow circle "
                 "in the top left.")


def drawing_sheet(draw_with_seed: Callable[[int], DrawAll], path: Path, seeds: int = 4) -> Path:
    """SHEET_PROMPTS drawn with `seeds` seeds (one row per prompt, one column per seed), each with what the
    scene parser reads in it: the picture to look at before reading GenEval's numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawings = [draw_with_seed(seed)(list(SHEET_PROMPTS)) for seed in range(seeds)]  # [seed][prompt]
    figure, axes = plt.subplots(len(SHEET_PROMPTS), seeds, figsize=(1.9 * seeds + 2.6, 1.9 * len(SHEET_PROMPTS)),
                                squeeze=False)
    for row, prompt in enumerate(SHEET_PROMPTS):
        for column in range(seeds):
            axis, picture = axes[row][column], drawings[column][row]
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([]), axis.set_yticks([])
            seen = "; ".join(" ".join(map(str, key[:3])) for key in read_scene(picture).keys()) or "nothing"
            axis.set_xlabel(_wrap(seen, 30, 3), fontsize=6)
        axes[row][0].set_ylabel(_wrap(prompt, 24, 4), fontsize=7, rotation=0, ha="right", va="center")
    figure.suptitle("Drawings for fixed requests (a column per seed; below each, what the scene parser reads)",
                    fontsize=8)
    figure.tight_layout()
    save_png_atomic(figure, path)
    plt.close(figure)
    return path


def _wrap(text: str, width: int = 36, lines: int = 5) -> str:
    return "\n".join(textwrap.wrap(text, width)[:lines])


if __name__ == "__main__":
    sys.exit(main())
