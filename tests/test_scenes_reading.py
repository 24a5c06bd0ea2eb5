"""Reading answers back: every caption describe() writes reads back to its scene, and wrong text reads wrong."""
from __future__ import annotations

import re

import pytest

from scenes.captions import describe
from scenes.questions import KINDS, ask
from scenes.reading import read_caption, short_answer
from scenes.world import COLORS, SHAPES, sample_scene, scene_rng

SEED = 31


def captioned(n: int):
    for i in range(n):
        scene = sample_scene(scene_rng(SEED, i))
        yield scene, describe(scene, scene_rng(SEED + 1, i))


def test_every_caption_reads_back_to_its_scene():
    for scene, caption in captioned(2000):
        assert read_caption(caption) == scene.keys(), caption


def test_reading_is_robust_to_case_spacing_and_the_final_period():
    for scene, caption in captioned(200):
        messy = "  " + caption.upper().rstrip(".").replace(" ", "  ") + " \n"
        assert read_caption(messy) == scene.keys(), messy


def test_every_caption_form_is_read():
    clauses = "In the center there is a small red circle, and at the top sits a big blue square."
    relational = "A little green ring on the left side, to the left of a large purple cross in the middle."
    frame = "There are two shapes: a small yellow triangle in the top-left corner and a big red ring at the bottom."
    assert read_caption(clauses) == [("circle", "red", "small", 1, 1), ("square", "blue", "large", 0, 1)]
    assert read_caption(relational) == [("cross", "purple", "large", 1, 1), ("ring", "green", "small", 1, 0)]
    assert read_caption(frame) == [("ring", "red", "large", 2, 1), ("triangle", "yellow", "small", 0, 0)]


def swap_first(caption: str, words, other) -> str | None:
    """`caption` with its first word from `words` replaced by `other(word)`, or None if it has none."""
    found = re.search(rf"\b({'|'.join(words)})\b", caption)
    if found is None:
        return None
    return caption[:found.start()] + other(found[1]) + caption[found.end():]


def next_of(names):
    names = list(names)
    return lambda word: names[(names.index(word) + 1) % len(names)]


@pytest.mark.parametrize("words, other", [
    (list(COLORS), next_of(COLORS)),
    (list(SHAPES), next_of(SHAPES)),
    (["top", "bottom", "upper", "lower"], lambda w: {"top": "bottom", "bottom": "top", "upper": "lower",
                                                      "lower": "upper"}[w]),
], ids=["colour", "shape", "position"])
def test_one_changed_word_reads_differently(words, other):
    changed = 0
    for scene, caption in captioned(500):
        wrong = swap_first(caption, words, other)
        if wrong is not None:
            changed += 1
            assert read_caption(wrong) != scene.keys(), (caption, wrong)
    assert changed >= 300


@pytest.mark.parametrize("text", [
    "Hello there.",
    "",
    "A small red circle.",
    "A small red circle at the top and a big blue square.",
    "A small red circle and a big blue square at the top.",
    "A small red circle at the top and a big blue square at the top.",
    "A red circle at the top.",
    "A small red circle at the top at the bottom.",
])
def test_unreadable_captions_are_none(text):
    assert read_caption(text) is None


@pytest.mark.parametrize("kind", KINDS)
def test_the_oracles_answers_read_back_to_its_short_answers(kind):
    for i in range(500):
        scene = sample_scene(scene_rng(SEED + 2, i))
        qa = ask(scene, scene_rng(SEED + 3, i), kind)
        assert short_answer(qa.kind, qa.answer) == qa.short, qa


@pytest.mark.parametrize("kind, text, short", [
    ("color", "The circle is blue.", "blue"),
    ("color", "The red shape is green.", "green"),
    ("color", "Purple", "purple"),
    ("shape", "The shape at the top is a ring.", "ring"),
    ("shape", "Crosses.", "cross"),
    ("count", "There are 3 circles.", "3"),
    ("count", "There are no red shapes.", "0"),
    ("count", "No, there are seven.", "7"),
    ("position", "It is in the upper-left corner.", "top left"),
    ("position", "The blue ring is at the middle of the right edge.", "right"),
    ("position", "Bottom right.", "bottom right"),
    ("position", "The red circle is in the middle.", "center"),
    ("existence", "Yes, there is one on the left.", "yes"),
    ("existence", "  no.", "no"),
])
def test_hand_written_answers_read_as_written(kind, text, short):
    assert short_answer(kind, text) == short


@pytest.mark.parametrize("kind", KINDS)
def test_answers_without_a_fact_are_none(kind):
    assert short_answer(kind, "I don't know.") is None


@pytest.mark.parametrize(("kind", "reply", "short"), [
    ("size", "It is a big one.", "large"), ("size", "Little.", "small"),
    ("cell", "Nothing is there; the red circle is in the center.", "nothing"),
    ("cell", "In that corner sits a small blue ring.", "blue ring"), ("cell", "I don't know.", None),
    ("shapes", "Two crosses, a circle and another cross.", "circle,cross"), ("shapes", "Hmm.", None),
    ("colors", "Mostly red, with some blue and red again.", "blue,red"),
    ("any", "Yes, the square at the top is red.", "yes"), ("any", "No, nothing is green.", "no")])
def test_more_kinds_read_from_free_replies(kind, reply, short):
    assert short_answer(kind, reply) == short


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown question kind"):
        short_answer("mood", "It is happy.")
