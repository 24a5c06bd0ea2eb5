"""Chats about scenes, written by the scene oracle: the training data of every stage in the scene world.

    glyph data chats --scenes data/scenes --kind instruct --out data/chats/instruct.jsonl --n 20000

Kinds:
- `text`: text-only chats for stage 0's language model. The scene comes as its caption, so the LM learns the
  language of scenes, questions, answers and small talk before it ever sees a picture.
- `align`: stage 1 pairs, image → caption and caption → image.
- `instruct`: stage 2 instructions: conversations, detailed descriptions, reasoning, drawing requests by
  GenEval category, multi-turn chats with images in and out, small talk, and (with --mix compare=W)
  questions about two images at once ("Which picture has more circles?"). About 10 % of the drawing
  requests have their text dropped (an empty user turn), so the model also learns the unconditional
  distribution that classifier-free guidance needs. With --describe-drawings the assistant says what it draws
  before each drawing ("Here is a large red circle in the top left corner." then the image; the unconditional
  ones stay bare), so that it settles the layout in words first. With --mix no_image=W, questions about a
  picture come before any picture is attached and are answered by asking for one (scenes.no_picture).

One chat per line, in Hugging Face's messages format:

    {"id": "instruct-000017", "kind": "detail", "messages": [
      {"role": "user", "content": [{"type": "image", "path": "../scenes/images/000123.png"},
                                   {"type": "text", "text": "Describe the image in detail."}]},
      {"role": "assistant", "content": [{"type": "text", "text": "There are two shapes. ..."}]}]}

An image in an assistant turn is one the assistant draws. Image paths are relative to the JSONL file's folder.
Chats use training-split scenes only; scenes made up for drawing prompts are rendered into `drawings/` beside
the file, and only those whose content falls in the training split are kept.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
from boltons.fileutils import atomic_save
from tqdm import tqdm

from data_gen.scene_dataset import split_of
from scenes.captions import NUMBER_WORDS, SIZE_WORDS, describe
from scenes.declines import impossible_request
from scenes.no_picture import NO_PICTURE_REPLY
from scenes.prompts import CATEGORIES, RELATIONS, drawing_prompt
from scenes.questions import KINDS as QUESTION_KINDS
from scenes.questions import MORE_KINDS
from scenes.questions import (SCENE_IN_TEXT, ask, ask_any_of_present, ask_count_balanced, ask_count_of_present,
                              casually, compare, drawing_plan, drawing_request, where)
from scenes.render import render_scene
from scenes.world import Scene, centred, scene_rng

KINDS = ("text", "align", "instruct")
# Seeing outweighs drawing: a drawing supervises 66 tokens and an answer about 10, so at 35 % drawings the
# code tokens took about 80 % of stage 2's token-mean loss and the assistant never learned to read its images.
INSTRUCT_MIX = {"describe": 0.12, "conversation": 0.35, "detail": 0.08, "reasoning": 0.1, "draw": 0.25,
                "mixed": 0.07, "chitchat": 0.03, "decline": 0.03,
                "compare": 0.0,  # two images (--mix compare=0.05); 0 by default, so earlier recipes write the same
                "ask_then_draw": 0.0,  # questions about a picture, then a new drawing request; 0 by default, too
                "no_image": 0.0}  # a question about a picture before one is attached (scenes.no_picture); likewise

CONVERSATION_TURNS = (2, 5)  # questions per image in a conversation, lowest and highest
TEXT_MIX = {"qa": 0.55, "caption": 0.15, "detail": 0.1, "reasoning": 0.1, "chitchat": 0.1}
UNCONDITIONAL_FRACTION = 0.1  # drawing requests whose text is dropped, for classifier-free guidance

DESCRIBE = ("Describe this image.", "What do you see?", "Write a caption for this picture.",
            "What is in this image?", "Describe the picture briefly.", "What does this image show?")
DETAIL = ("Describe the image in detail.", "List every shape in the picture.", "Describe each object you see.")
ATTACHED = ("Here it is.", "Here you go.", "Sorry, here is the picture.", "Attached.")  # after NO_PICTURE_REPLY
AGAIN = ("Now draw it.", "Draw this picture.", "Can you draw it?", "Draw the same scene.")
CHITCHAT = [
    ("Hello!", "Hello! I can describe pictures of shapes and draw new ones. What would you like to do?"),
    ("Hi", "Hi! Show me a picture of shapes, or ask me to draw one."),
    ("Good morning!", "Good morning! Would you like me to look at a picture or draw one?"),
    ("What can you do?", ("I can look at a picture of shapes and tell you what is in it: colours, shapes, how "
                          "many there are and where they are. I can also draw a scene you describe.")),
    ("Who are you?", "I am Glyph, a small assistant that sees and draws scenes of coloured shapes."),
    ("What is your name?", "My name is Glyph."),
    ("Thank you!", "You're welcome!"),
    ("Thanks a lot.", "Glad to help!"),
    ("How are you?", "I'm doing well, thank you. Do you have a picture for me?"),
    ("Can you draw?", "Yes. Tell me which shapes to draw, with their colours and where they go."),
    ("What shapes do you know?", "I know circles, squares, triangles, rings and crosses."),
    ("Which colours can you draw?", "Red, orange, yellow, green, blue and purple."),
    ("Goodbye!", "Goodbye! Come back any time."),
    ("Tell me about yourself.", "I am Glyph. I describe pictures of coloured shapes and draw new ones on request."),
]


def user(text: str = "", image: str | None = None, *more_images: str) -> dict:
    content = [{"type": "image", "path": path} for path in (image, *more_images) if path]
    return {"role": "user", "content": content + ([{"type": "text", "text": text}] if text else [])}


def assistant(text: str = "", image: str | None = None) -> dict:
    content = [{"type": "text", "text": text}] if text else []
    return {"role": "assistant", "content": content + ([{"type": "image", "path": image}] if image else [])}


def detailed_description(scene: Scene, rng: np.random.Generator) -> str:
    objects = sorted(scene.objects, key=lambda o: (o.row, o.col))
    n = len(objects)
    head = f"There {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} {'shape' if n == 1 else 'shapes'}."
    lines = [f"A {_pick(rng, SIZE_WORDS[o.size])} {o.color} {o.shape} is {where(o)}." for o in objects]
    return " ".join([head, *lines])


def reasoning(scene: Scene, rng: np.random.Generator) -> tuple[str, str] | None:
    """A yes/no question about how two objects stand, answered with the reason; None if no pair can be named."""
    unique = [o for o in scene.objects
              if sum((p.color, p.shape) == (o.color, o.shape) for p in scene.objects) == 1]
    if len(unique) < 2:
        return None
    a, b = (unique[i] for i in rng.choice(len(unique), size=2, replace=False))
    vertical = a.row != b.row and (a.col == b.col or rng.random() < 0.5)
    truth = ("above" if a.row < b.row else "below") if vertical else ("to the left of" if a.col < b.col
                                                                    else "to the right of")
    asked = truth if rng.random() < 0.5 else _opposite(truth)
    name_a, name_b = f"the {a.color} {a.shape}", f"the {b.color} {b.shape}"
    question = f"Is {name_a} {asked} {name_b}?"
    answer = (f"{'Yes' if asked == truth else 'No'}. {name_a.capitalize()} is {where(a)} and {name_b} is "
              f"{where(b)}, so {name_a} is {truth} {name_b}.")
    return question, answer


def _opposite(relation: str) -> str:
    d_row, d_col = RELATIONS[relation]
    return next(r for r, d in RELATIONS.items() if d == (-d_row, -d_col))


class ChatWriter:
    """Makes one kind of chat from training scenes, rendering made-up scenes for drawing prompts."""

    def __init__(self, scenes_dir: Path, out: Path, seed: int, brief_answers: float = 0.0,
                 mix: dict[str, float] | None = None, drawing_size: int | None = None,
                 questions: dict[str, float] | None = None, describe_drawings: bool = False,
                 drawings: dict[str, float] | None = None, count_present: float = 0.0, casual: float = 0.0,
                 any_present: float = 0.0, more_wordings: float = 0.0, count_balanced: float = 0.0,
                 conversation_turns: tuple[int, int] = CONVERSATION_TURNS):
        self.scenes_dir, self.out, self.seed = scenes_dir, out, seed
        self.conversation_turns = conversation_turns  # questions per image in a conversation, lowest and highest
        self.count_balanced = count_balanced  # share of count questions with every count the picture has alike
        self.any_present = any_present  # share of `any` questions about a colour or shape the scene has
        self.more_wordings = more_wordings  # share of questions worded from scenes.questions.MORE_FRAMES
        self.casual = casual  # share of questions typed casually (scenes.questions.casually)
        self.count_present = count_present  # share of count questions about a colour or shape the scene has
        self.describe_drawings = describe_drawings  # say drawing_plan(scene) before each requested drawing
        # drawing-prompt category → probability; None draws every category alike, as earlier recipes did
        self.drawing_kinds = drawing_weights(drawings) if drawings else None
        # question kind → probability; None asks every kind alike, drawing from rng as earlier recipes did
        self.question_kinds = question_weights(questions) if questions else None
        self.drawing_size = drawing_size  # None: the assistant draws the scene's own image
        self.brief_answers = brief_answers
        self.mix = mix or {}  # kind → weight, replacing the default weights of those kinds
        info = json.loads((scenes_dir / "dataset_info.json").read_text())
        self.split_seed, self.holdout = info["seed"], info["holdout"]
        self.rows = [json.loads(line) for line in (scenes_dir / "train.jsonl").read_text().splitlines()]
        self.drawings = out.parent / "drawings"
        self.drawn = 0

    def image(self, row: dict) -> str:
        return os.path.relpath(self.scenes_dir / row["image"], self.out.parent)

    def drawing(self, scene: Scene, row: dict | None = None) -> str:
        """What the assistant draws for `scene`: with a drawing size, the scene re-rendered at that size with
        its objects centred in their cells (a request never fixes the jitter, so it would only teach noise);
        otherwise the dataset's image (`row`) of it, or the scene rendered."""
        if self.drawing_size:
            return self.render(centred(scene, self.drawing_size))
        return self.image(row) if row is not None else self.render(scene)

    def drawing_turn(self, scene: Scene, row: dict | None = None) -> dict:
        """The assistant's turn that draws `scene` for a request: the drawing, after its plan in words when
        the chats describe their drawings."""
        return assistant(drawing_plan(scene) if self.describe_drawings else "", image=self.drawing(scene, row))

    def render(self, scene: Scene) -> str:
        """Render a made-up scene to drawings/, returning its path relative to the chat file."""
        self.drawings.mkdir(parents=True, exist_ok=True)
        path = self.drawings / f"{self.out.stem}-{self.drawn:06d}.png"
        render_scene(scene).save(path)
        self.drawn += 1
        return os.path.relpath(path, self.out.parent)

    def training_example(self, rng: np.random.Generator) -> tuple[str, Scene]:
        """A drawing prompt and a scene satisfying it whose content is in the training split.

        Held-out contents never train. A prompt that fixes every attribute of its one object has only
        one content; when that is held out, another prompt is drawn.
        """
        while True:
            prompt = drawing_prompt(self.drawing_category(rng), rng)
            for _ in range(20):
                scene = prompt.example(rng)
                if split_of(scene, self.split_seed, self.holdout) == "train":
                    return prompt.text, scene

    def drawing_category(self, rng: np.random.Generator) -> str:
        """A GenEval category for a drawing prompt, by --drawings' weights (all alike by default)."""
        if self.drawing_kinds is None:
            return _pick(rng, CATEGORIES)
        return _pick(rng, tuple(self.drawing_kinds), p=list(self.drawing_kinds.values()))

    def ask(self, scene: Scene, rng: np.random.Generator):
        """A question about `scene` of a kind drawn by --questions' weights (all kinds alike by default)."""
        phrasing = self.phrasing(rng)
        kind = None if self.question_kinds is None else \
            _pick(rng, tuple(self.question_kinds), p=list(self.question_kinds.values()))
        qa = ask(scene, rng, kind, phrasing)
        # rng is only drawn from when --count-present is given, so earlier recipes' chats stay the same
        if qa.kind == "count" and self.count_present > 0 and rng.random() < self.count_present:
            qa = ask_count_of_present(scene, rng, phrasing)
        if qa.kind == "count" and self.count_balanced > 0 and rng.random() < self.count_balanced:  # likewise
            qa = ask_count_balanced(scene, rng, phrasing)
        if qa.kind == "any" and self.any_present > 0 and rng.random() < self.any_present:  # likewise
            qa = ask_any_of_present(scene, rng, phrasing)
        if self.casual > 0 and rng.random() < self.casual:  # likewise only drawn from with --casual
            qa = dataclasses.replace(qa, question=casually(qa.question, rng))
        return qa

    def phrasing(self, rng: np.random.Generator) -> str:
        """Which wordings a question takes: the more ones with probability --more-wordings, else the training
        ones (rng is only drawn from when --more-wordings is given)."""
        return "more" if self.more_wordings > 0 and rng.random() < self.more_wordings else "train"

    def answer(self, qa, rng: np.random.Generator) -> str:
        """The full sentence, or with probability brief_answers the answer alone ("Red.")."""
        if self.brief_answers <= 0 or (self.brief_answers < 1 and rng.random() >= self.brief_answers):
            return qa.answer
        return qa.brief

    def chat(self, kind: str, index: int) -> dict:
        rng = scene_rng(self.seed, index)
        row = self.rows[int(rng.integers(len(self.rows)))]
        scene = Scene.from_dict(row)
        mix = mix_of(kind, self.mix)
        what = _pick(rng, tuple(mix), p=list(mix.values()))
        messages = getattr(self, f"_{kind}_{what}")(row, scene, rng)
        return {"id": f"{kind}-{index:06d}", "kind": what, "messages": messages}

    # ---- stage 0: text only ---------------------------------------------------------------------------------

    def _text_qa(self, row, scene, rng):
        qa = self.ask(scene, rng)
        return [user(SCENE_IN_TEXT.format(caption=describe(scene, rng), question=qa.question)),
                assistant(self.answer(qa, rng))]

    def _text_caption(self, row, scene, rng):
        return [user(_pick(rng, ("Describe a picture of shapes.", "Write a caption for a scene.",
                                 "Make up a scene with shapes."))), assistant(describe(scene, rng))]

    def _text_detail(self, row, scene, rng):
        return [user(SCENE_IN_TEXT.format(caption=describe(scene, rng), question=_pick(rng, DETAIL))),
                assistant(detailed_description(scene, rng))]

    def _text_reasoning(self, row, scene, rng):
        found = reasoning(scene, rng)
        if found is None:
            return self._text_qa(row, scene, rng)
        return [user(SCENE_IN_TEXT.format(caption=describe(scene, rng), question=found[0])), assistant(found[1])]

    def _text_chitchat(self, row, scene, rng):
        return _chitchat(rng)

    # ---- stage 1: alignment pairs ---------------------------------------------------------------------------

    def _align_describe(self, row, scene, rng):
        return [user(_pick(rng, DESCRIBE), self.image(row)), assistant(describe(scene, rng))]

    def _align_caption_draw(self, row, scene, rng):
        return [user(describe(scene, rng)), self.drawing_turn(scene, row)]

    # ---- stage 2: instructions ------------------------------------------------------------------------------

    def _instruct_describe(self, row, scene, rng):
        return self._align_describe(row, scene, rng)

    def _instruct_conversation(self, row, scene, rng):
        turns = int(rng.integers(self.conversation_turns[0], self.conversation_turns[1] + 1))
        qas = [self.ask(scene, rng) for _ in range(turns)]
        first = [user(qas[0].question, self.image(row)), assistant(self.answer(qas[0], rng))]
        return first + [m for qa in qas[1:] for m in (user(qa.question), assistant(self.answer(qa, rng)))]

    def _instruct_detail(self, row, scene, rng):
        return [user(_pick(rng, DETAIL), self.image(row)), assistant(detailed_description(scene, rng))]

    def _instruct_reasoning(self, row, scene, rng):
        found = reasoning(scene, rng)
        if found is None:
            return self._instruct_conversation(row, scene, rng)
        return [user(found[0], self.image(row)), assistant(found[1])]

    def _instruct_draw(self, row, scene, rng):
        if rng.random() < UNCONDITIONAL_FRACTION:
            return [user(""), assistant(image=self.drawing(scene, row))]
        if rng.random() < 0.4:  # a whole scene, every object given
            return [user(drawing_request(scene, rng)), self.drawing_turn(scene, row)]
        text, example = self.training_example(rng)
        return [user(text), self.drawing_turn(example)]

    def _instruct_mixed(self, row, scene, rng):
        if rng.random() < 0.5:  # see, then draw the same scene
            return [user(_pick(rng, DESCRIBE), self.image(row)), assistant(describe(scene, rng)),
                    user(_pick(rng, AGAIN)), self.drawing_turn(scene, row)]
        qa = self.ask(scene, rng)  # draw, then answer a question about the drawing
        return [user(drawing_request(scene, rng)), self.drawing_turn(scene, row),
                user(qa.question), assistant(self.answer(qa, rng))]

    def _instruct_ask_then_draw(self, row, scene, rng):
        """A conversation about a picture, then a request for a new, unrelated drawing, or one the world cannot
        draw (one in five). Requests otherwise open their chats, and round 14, asked to draw after questions
        about an attached picture, declined in-world requests or drew the wrong shapes in 6 of 10 validation
        chats."""
        turns = self._instruct_conversation(row, scene, rng)
        if rng.random() < 0.2:
            request = impossible_request(rng)
            return turns + [user(request.text), assistant(request.reply)]
        text, example = self.training_example(rng)
        return turns + [user(text), self.drawing_turn(example)]

    def _instruct_compare(self, row, scene, rng):
        """Two training scenes and which has more of something (the images first, as LLaVA puts them)."""
        other = self.rows[int(rng.integers(len(self.rows)))]
        qa = compare(scene, Scene.from_dict(other), rng, self.phrasing(rng))
        return [user(qa.question, self.image(row), self.image(other)), assistant(self.answer(qa, rng))]

    def _instruct_no_image(self, row, scene, rng):
        """A question about a picture before any is in the chat, answered by asking for one (a guess would be
        about a picture nobody has seen: the shipped round 23 answered "The circle is yellow."); in half of
        them the user then attaches the picture, and the question is answered about it."""
        question, answer = self.question_and_answer(scene, rng)
        turns = [user(question), assistant(NO_PICTURE_REPLY)]
        if rng.random() < 0.5:
            return turns
        again = question if rng.random() < 0.3 else _pick(rng, ATTACHED)
        return turns + [user(again, self.image(row)), assistant(answer)]

    def question_and_answer(self, scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
        """A question about `scene` and its answer: most often a scene question, else a request to describe it
        briefly or in detail."""
        roll = rng.random()
        if roll < 0.6:
            qa = self.ask(scene, rng)
            return qa.question, self.answer(qa, rng)
        if roll < 0.85:
            return _pick(rng, DESCRIBE), describe(scene, rng)
        return _pick(rng, DETAIL), detailed_description(scene, rng)

    def _instruct_chitchat(self, row, scene, rng):
        return _chitchat(rng)

    def _instruct_decline(self, row, scene, rng):
        request = impossible_request(rng)  # outside the world: say what can be drawn instead of drawing a blob
        return [user(request.text), assistant(request.reply)]


def _chitchat(rng: np.random.Generator) -> list[dict]:
    turns = [CHITCHAT[int(i)] for i in rng.choice(len(CHITCHAT), size=int(rng.integers(1, 3)), replace=False)]
    return [m for question, answer in turns for m in (user(question), assistant(answer))]


MIXES = {"text": TEXT_MIX, "align": {"describe": 0.5, "caption_draw": 0.5}, "instruct": INSTRUCT_MIX}


def mix_of(kind: str, changes: dict[str, float]) -> dict[str, float]:
    """The chat kinds of `kind` and their probabilities: the defaults, with `changes` to the kinds this mix has
    (others are for other mixes), renormalised."""
    weights = {what: changes.get(what, weight) for what, weight in MIXES[kind].items()}
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"--mix leaves no {kind} chat kind with a weight above 0")
    return {what: weight / total for what, weight in weights.items()}


def parse_mix(settings: list[str]) -> dict[str, float]:
    """["draw=0.1", ...] → {"draw": 0.1, ...}; a kind no mix has, or a weight below 0, is a ValueError."""
    return _parse_weights(settings, sorted({what for mix in MIXES.values() for what in mix}), "--mix")


def question_weights(changes: dict[str, float]) -> dict[str, float]:
    """Each question kind's probability: weight 1 each, with `changes` (--questions count=2), renormalised.

    MORE_KINDS weigh 0 unless given (--questions size=1), and a kind of weight 0 is left out, so the chats of
    recipes written before those kinds existed stay what they were."""
    weights = _kind_weights(changes, QUESTION_KINDS + MORE_KINDS, "--questions",
                            default={kind: 0.0 for kind in MORE_KINDS})
    return {kind: weight for kind, weight in weights.items() if kind in QUESTION_KINDS or weight > 0}


def drawing_weights(changes: dict[str, float]) -> dict[str, float]:
    """Each drawing-prompt category's probability: weight 1 each, with `changes` (--drawings position=3),
    renormalised."""
    return _kind_weights(changes, CATEGORIES, "--drawings")


def _kind_weights(changes: dict[str, float], kinds, option: str, default: dict[str, float] | None = None
                  ) -> dict[str, float]:
    weights = {kind: changes.get(kind, (default or {}).get(kind, 1.0)) for kind in kinds}
    if any(weight < 0 for weight in weights.values()) or set(changes) - set(kinds):
        raise ValueError(f"{option} {changes}: weights must be ≥ 0 and kinds among {', '.join(kinds)}")
    if sum(weights.values()) <= 0:
        raise ValueError(f"{option} leaves no kind with a weight above 0")
    return {kind: weight / sum(weights.values()) for kind, weight in weights.items()}


def parse_questions(settings: list[str]) -> dict[str, float]:
    """["count=2", ...] → {"count": 2.0, ...}; an unknown question kind, or a weight below 0, is a ValueError."""
    return _parse_weights(settings, QUESTION_KINDS + MORE_KINDS, "--questions")


def parse_drawings(settings: list[str]) -> dict[str, float]:
    """["position=3", ...] → {"position": 3.0, ...}; an unknown category, or a weight below 0, is a ValueError."""
    return _parse_weights(settings, CATEGORIES, "--drawings")


def _parse_weights(settings: list[str], known, option: str) -> dict[str, float]:
    """["KIND=WEIGHT", ...] → {KIND: WEIGHT}, every KIND one of `known` and every WEIGHT a number ≥ 0."""
    weights = {}
    for setting in settings:
        kind, _, weight = setting.partition("=")
        if kind not in known or not re.fullmatch(r"\d+(\.\d*)?|\.\d+", weight.strip()):
            raise ValueError(f"{option} {setting!r}: write KIND=WEIGHT with KIND one of {', '.join(known)} "
                             "and WEIGHT a number ≥ 0")
        weights[kind] = float(weight)
    return weights


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))] if p is not None else options[int(rng.integers(len(options)))]


def write_chats(scenes_dir: str | Path, out: str | Path, kind: str, n: int, seed: int = 0,
                brief_answers: float = 0.0, mix: dict[str, float] | None = None,
                drawing_size: int | None = None, questions: dict[str, float] | None = None,
                describe_drawings: bool = False, drawings: dict[str, float] | None = None,
                count_present: float = 0.0, casual: float = 0.0, any_present: float = 0.0,
                more_wordings: float = 0.0, count_balanced: float = 0.0,
                conversation_turns: tuple[int, int] = CONVERSATION_TURNS) -> Path:
    """Write `n` chats of `kind` to `out` (JSONL), atomically; see ChatWriter.answer for brief_answers and
    ChatWriter.ask for questions (question kind → weight)."""
    scenes_dir, out = Path(scenes_dir), Path(out)
    if kind not in KINDS:
        raise ValueError(f"--kind {kind!r} is unknown; choose from {', '.join(KINDS)}")
    if not (scenes_dir / "dataset_info.json").is_file():
        raise FileNotFoundError(f"--scenes {scenes_dir} is not a scene dataset; make one with "
                                "`glyph data scenes --out data/scenes`")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not 0 <= brief_answers <= 1:
        raise ValueError(f"--brief-answers {brief_answers} must be a fraction between 0 and 1")
    for option, fraction in (("--count-present", count_present), ("--casual", casual),
                             ("--any-present", any_present), ("--more-wordings", more_wordings),
                             ("--count-balanced", count_balanced)):
        if not 0 <= fraction <= 1:
            raise ValueError(f"{option} {fraction} must be a fraction between 0 and 1")
    low, high = conversation_turns
    if not 1 <= low <= high:
        raise ValueError(f"--conversation-turns {low}-{high}: give the fewest and the most questions per picture, "
                         "1 or more, the fewest first (e.g. --conversation-turns 2-5)")
    if drawing_size is not None and drawing_size < 16:
        raise ValueError(f"--drawing-size {drawing_size} is too small; use 16 px or more (the VQ-VAE's image size)")
    mix_of(kind, mix or {})  # refuses a mix that leaves nothing to write before any work is done
    writer = ChatWriter(scenes_dir, out, seed, brief_answers, mix, drawing_size, questions, describe_drawings,
                        drawings, count_present, casual, any_present, more_wordings, count_balanced,
                        conversation_turns)
    with atomic_save(str(out), text_mode=True) as file:
        for index in tqdm(range(n), desc=f"writing {kind} chats", unit="chat"):
            file.write(json.dumps(writer.chat(kind, index)) + "\n")
    return out


def _turns_range(text: str) -> tuple[int, int]:
    """--conversation-turns FEWEST-MOST, e.g. 2-5 (one number: always that many)."""
    try:
        low, _, high = str(text).partition("-")
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range of questions like 2-5") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph data chats", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", required=True, type=Path, help="a scene dataset (glyph data scenes)")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--out", required=True, type=Path, help="the JSONL file to write")
    p.add_argument("--n", type=int, default=20_000, help="how many chats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--brief-answers", type=float, default=0.0, metavar="FRACTION",
                   help="answer this fraction of scene questions in a word or phrase ('Red.') instead of a "
                        "sentence that repeats the question's object ('The square is red.')")
    p.add_argument("--mix", action="append", default=[], metavar="KIND=WEIGHT",
                   help="change how often a kind of chat comes (e.g. draw=0.12; weights are renormalised; "
                        "repeatable; kinds of other --kind mixes are ignored)")
    p.add_argument("--questions", action="append", default=[], metavar="KIND=WEIGHT",
                   help="ask some question kinds more often (e.g. count=2; each kind weighs 1 unless given; "
                        f"kinds: {', '.join(QUESTION_KINDS)}; and, weighing 0 unless given: {', '.join(MORE_KINDS)}; "
                        "repeatable)")
    p.add_argument("--drawing-size", type=int, default=None, metavar="PX",
                   help="draw every picture the assistant makes at PX pixels (the VQ-VAE's image size), each "
                        "object centred in its cell; default: the scene's own image")
    p.add_argument("--describe-drawings", action="store_true",
                   help="the assistant says what it draws before each requested drawing ('Here is a large red "
                        "circle in the top left corner.'), settling the layout in words first")
    p.add_argument("--drawings", action="append", default=[], metavar="CATEGORY=WEIGHT",
                   help="ask for some kinds of drawing more often (e.g. position=3; each weighs 1 unless given; "
                        f"categories: {', '.join(CATEGORIES)}; repeatable)")
    p.add_argument("--count-present", type=float, default=0.0, metavar="FRACTION",
                   help="ask this fraction of count questions about a colour or shape the picture has, so that "
                        "answers of two and three come often (default 0: any colour or shape, as the "
                        "evaluation asks)")
    p.add_argument("--count-balanced", type=float, default=0.0, metavar="FRACTION",
                   help="ask this fraction of count questions with the answer drawn evenly from the counts the "
                        "picture has (none, one, two, ...), so that how crowded it is does not tell the answer "
                        "(default 0)")
    p.add_argument("--casual", type=float, default=0.0, metavar="FRACTION",
                   help="type this fraction of questions as people do in a chat box: in lower case, without "
                        "the question mark, or both (default 0)")
    p.add_argument("--any-present", type=float, default=0.0, metavar="FRACTION",
                   help="ask this fraction of `any` questions ('Are there any triangles?') about a colour or "
                        "shape the picture has (default 0: half of them, as the evaluation asks)")
    p.add_argument("--more-wordings", type=float, default=0.0, metavar="FRACTION",
                   help="word this fraction of questions from a further set of training wordings "
                        "(scenes.questions.MORE_FRAMES; default 0)")
    p.add_argument("--conversation-turns", type=_turns_range, default=CONVERSATION_TURNS, metavar="FEWEST-MOST",
                   help="how many questions a conversation asks about its picture, drawn evenly from FEWEST to "
                        f"MOST (default {CONVERSATION_TURNS[0]}-{CONVERSATION_TURNS[1]}); more questions per "
                        "picture supervise more reading for each image the model takes in")
    args = p.parse_args(argv)
    try:
        path = write_chats(args.scenes, args.out, args.kind, args.n, args.seed, args.brief_answers,
                           parse_mix(args.mix), args.drawing_size, parse_questions(args.questions),
                           args.describe_drawings, parse_drawings(args.drawings), args.count_present,
                           args.casual, args.any_present, args.more_wordings, args.count_balanced,
                           args.conversation_turns)
    except (ValueError, FileNotFoundError) as error:
        print(f"glyph data chats: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} {args.kind} chats to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
