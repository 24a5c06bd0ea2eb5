"""The scene oracle's answers are the scene spec's, for every kind of question."""
from __future__ import annotations

import re

import pytest

from scenes.questions import (_WHERE, COMPARE_FRAMES, FRAMES, KINDS, MORE_KINDS, PHRASINGS, POSITION_NAMES, ask,
                              drawing_request)
from scenes.reading import short_answer
from scenes.world import COLORS, SHAPES, Scene, SceneObject, plural, sample_scene, scene_rng

SCENES = [sample_scene(scene_rng(7, i)) for i in range(300)]


def named_objects(question: str, scene):
    """The objects a question's noun phrase can refer to, read back from its words."""
    position = next((n for n in sorted(POSITION_NAMES.values(), key=len, reverse=True)
                     if re.search(rf"\b{n}\b", question) and ("corner" in question or " " not in n)), None)
    found = list(scene.objects)
    if position is not None and ("the shape" in question or "the object" in question):
        found = [o for o in found if POSITION_NAMES[(o.row, o.col)] == position]
    for color in COLORS:
        if re.search(rf"\b{color}\b", question):
            found = [o for o in found if o.color == color]
    for shape in SHAPES:
        if re.search(rf"\b{shape}\b", question):
            found = [o for o in found if o.shape == shape]
    return found


@pytest.mark.parametrize("kind", ["color", "shape", "position"])
def test_questions_name_one_object_and_answer_its_attribute(kind):
    for i, scene in enumerate(SCENES):
        qa = ask(scene, scene_rng(8, i), kind)
        found = named_objects(qa.question, scene)
        assert len(found) == 1, (qa, scene)
        obj = found[0]
        expected = {"color": obj.color, "shape": obj.shape, "position": POSITION_NAMES[(obj.row, obj.col)]}[kind]
        assert qa.short == expected and qa.kind == kind


def counted_in(question: str, scene) -> int:
    """How many objects of `scene` a count question asks about, read from its words."""
    words = question.rstrip("?.").split()
    counted = next(i for i, w in enumerate(words) if w == "shapes" or w in map(plural, SHAPES))
    what = " ".join(words[counted - 1:counted + 1]) if words[counted - 1] in COLORS else words[counted]
    if what == "shapes":
        return len(scene.objects)
    if what.split()[0] in COLORS:
        return sum(o.color == what.split()[0] for o in scene.objects)
    return sum(plural(o.shape) == what for o in scene.objects)


def test_counts_are_the_specs():
    for phrasing in PHRASINGS:
        for i, scene in enumerate(SCENES):
            qa = ask(scene, scene_rng(9, i), "count", phrasing)
            assert qa.short == str(counted_in(qa.question, scene)) and "crosss" not in qa.question, qa
            assert short_answer("count", qa.answer) == qa.short, qa  # the answer says the count


def test_count_answers_say_the_number_with_the_right_noun():
    scene = Scene(64, (SceneObject("cross", "red", "small", 2, 1, (0, 0, 1, 1)),
                       SceneObject("square", "blue", "large", 0, 0, (0, 0, 1, 1)),
                       SceneObject("cross", "red", "large", 1, 2, (0, 0, 1, 1))))
    answers = {ask(scene, scene_rng(3, i), "count").answer for i in range(300)}
    assert {"There are two crosses.", "There is one square.", "There are no triangles.",
            "There are three shapes.", "There is one blue shape.", "There are two red shapes."} <= answers


def test_shared_counts_ask_of_what_two_or_more_objects_share():
    from scenes.questions import ask_count_of_shared

    scene = Scene(64, (SceneObject("cross", "red", "small", 2, 1, (0, 0, 1, 1)),
                       SceneObject("square", "blue", "large", 0, 0, (0, 0, 1, 1)),
                       SceneObject("cross", "red", "large", 1, 2, (0, 0, 1, 1)),
                       SceneObject("ring", "red", "small", 2, 2, (0, 0, 1, 1))))
    answers = {ask_count_of_shared(scene, scene_rng(3, i)).answer for i in range(100)}
    assert answers == {"There are two crosses.", "There are three red shapes."}  # never a one or a zero
    all_different = Scene(64, scene.objects[:2])
    assert ask_count_of_shared(all_different, scene_rng(3, 0)) is None
    for i, scene in enumerate(SCENES):
        qa = ask_count_of_shared(scene, scene_rng(5, i), "held_out")
        if qa is not None:
            what = qa.answer.rstrip(".").split(" ", 3)[3]  # "There are two crosses." → "crosses"
            assert qa.question in {frame.format(what=what) for frame in FRAMES["count"]["held_out"]}
            assert int(qa.short) >= 2 and short_answer("count", qa.answer) == qa.short
            assert qa.short == str(counted_in(qa.question, scene))


def test_balanced_counts_draw_every_count_a_picture_has_alike():
    from collections import Counter

    from scenes.questions import ask_count_balanced

    scene = Scene(64, (SceneObject("cross", "red", "small", 2, 1, (0, 0, 1, 1)),
                       SceneObject("square", "blue", "large", 0, 0, (0, 0, 1, 1)),
                       SceneObject("cross", "red", "large", 1, 2, (0, 0, 1, 1)),
                       SceneObject("ring", "green", "small", 2, 2, (0, 0, 1, 1))))
    asked = [ask_count_balanced(scene, scene_rng(3, i)) for i in range(2000)]
    counts = Counter(qa.short for qa in asked)
    assert set(counts) == {"0", "1", "2", "4"}  # no colour or shape is there three times
    assert all(400 < n < 600 for n in counts.values()), counts  # each a quarter, though most things are absent
    assert {qa.answer for qa in asked if qa.short == "2"} == {"There are two crosses.", "There are two red shapes."}
    for i, scene in enumerate(SCENES):  # right by the spec, as ask()'s counts are
        qa = ask_count_balanced(scene, scene_rng(6, i), "held_out")
        assert qa.short == str(counted_in(qa.question, scene)) and short_answer("count", qa.answer) == qa.short


def test_held_out_phrasings_are_never_training_phrasings():
    for kind, frames in (FRAMES | {"compare": COMPARE_FRAMES}).items():
        trained = set(frames["train"]) | set(frames["more"])  # either set is a training one
        assert frames["train"] and frames["more"] and frames["held_out"], kind
        assert not trained & set(frames["held_out"]) and not set(frames["train"]) & set(frames["more"]), kind
    for i, scene in enumerate(SCENES):
        for kind in KINDS + MORE_KINDS:
            seen = ask(scene, scene_rng(4, i), kind, "train")
            for other in ("held_out", "more"):
                reworded = ask(scene, scene_rng(4, i), kind, other)
                assert reworded.short == seen.short and reworded.question != seen.question  # other words
    with pytest.raises(ValueError, match="phrasing"):
        ask(SCENES[0], scene_rng(4, 0), "color", "test")


def test_existence_is_balanced_and_true():
    answers = []
    for i, scene in enumerate(SCENES):
        qa = ask(scene, scene_rng(10, i), "existence")
        color, shape = re.search(r"\ban? (\w+) (\w+)", qa.question).groups()
        truth = any((o.color, o.shape) == (color, shape) for o in scene.objects)
        assert qa.short == ("yes" if truth else "no")
        answers.append(truth)
    assert 0.4 < sum(answers) / len(answers) < 0.6


def test_existence_negatives_include_near_misses():
    """About half the absent objects share a colour or a shape with one that is there, so that "no" needs the
    colour bound to its shape; the rest are any absent object."""
    near = absent = 0
    for i, scene in enumerate(SCENES):
        qa = ask(scene, scene_rng(13, i), "existence")
        if qa.short == "no":
            color, shape = re.search(r"\ban? (\w+) (\w+)", qa.question).groups()
            absent += 1
            near += any(color == o.color or shape == o.shape for o in scene.objects)
    assert absent > 50 and 0.55 < near / absent < 0.95


def test_orange_takes_an():
    asked = [ask(scene, scene_rng(14, i), "existence") for i, scene in enumerate(SCENES)]
    oranges = [qa for qa in asked if "orange" in qa.question]
    assert oranges and all("an orange" in qa.question and "a orange" not in qa.question for qa in oranges)
    assert all("a orange" not in qa.answer for qa in asked)


def test_every_kind_is_asked_and_unknown_kinds_refused():
    kinds = {ask(scene, scene_rng(11, i)).kind for i, scene in enumerate(SCENES)}
    assert kinds == set(KINDS)
    with pytest.raises(ValueError, match="unknown question kind"):
        ask(SCENES[0], scene_rng(0, 0), "mood")


def expected_short(kind: str, question: str, scene) -> str:
    """The answer to one of MORE_KINDS, worked out from the question's words and the scene spec alone."""
    if kind == "size":
        found = named_objects(question, scene)
        assert len(found) == 1, (question, scene)
        return found[0].size
    if kind == "cell":
        place = next(name for name, words in sorted(_WHERE.items(), key=lambda item: -len(item[1]))
                     if words in question)
        cell = next(cell for cell, name in POSITION_NAMES.items() if name == place)
        there = [o for o in scene.objects if (o.row, o.col) == cell]
        return f"{there[0].color} {there[0].shape}" if there else "nothing"
    if kind in ("shapes", "colors"):
        return ",".join(sorted({o.shape if kind == "shapes" else o.color for o in scene.objects}))
    words = set(re.findall(r"\w+", question))  # one colour or one shape, singular or plural
    asked = [c for c in COLORS if c in words] + [s for s in SHAPES if {s, plural(s)} & words]
    assert len(asked) == 1, question
    return "yes" if any(asked[0] in (o.color, o.shape) for o in scene.objects) else "no"


def test_plural_questions_of_anything_get_plural_answers():
    plural_questions = 0
    for phrasing in PHRASINGS:
        for i, scene in enumerate(SCENES[:200]):
            qa = ask(scene, scene_rng(17, i), "any", phrasing)
            if re.search(r"\bany (?!thing)", qa.question) or qa.question.startswith("Are there"):
                plural_questions += 1
                assert qa.short == "yes" or re.fullmatch(r"No, there are no \w+s\.|No, there are no \w+ shapes\.",
                                                         qa.answer), qa
    assert plural_questions > 50


@pytest.mark.parametrize("kind", MORE_KINDS)
def test_more_kinds_answer_from_the_spec_and_read_back(kind):
    shorts = []
    for phrasing in PHRASINGS:
        for i, scene in enumerate(SCENES):
            qa = ask(scene, scene_rng(15, i), kind, phrasing)
            assert qa.kind == kind and qa.short == expected_short(kind, qa.question, scene), (qa, scene)
            assert short_answer(kind, qa.answer) == qa.short and short_answer(kind, qa.brief) == qa.short, qa
            shorts.append(qa.short)
    if kind in ("cell", "any"):  # about half the places are empty, half the things absent
        negative = "nothing" if kind == "cell" else "no"
        assert 0.3 < shorts.count(negative) / len(shorts) < 0.6


@pytest.mark.parametrize("kind", ["shapes", "colors"])
def test_lists_of_kinds_name_every_object_in_reading_order_first(kind):
    for i, scene in enumerate(SCENES[:100]):
        qa = ask(scene, scene_rng(16, i), kind)
        seen, summary = qa.answer.removeprefix("I can see ").removesuffix(".").split(": ")
        in_order = sorted(scene.objects, key=lambda o: (o.row, o.col))
        assert re.findall(rf"\b({'|'.join(COLORS)}) ({'|'.join(SHAPES)})\b", seen) == \
            [(o.color, o.shape) for o in in_order], qa.answer
        assert short_answer(kind, summary) == qa.short and f"{summary[0].upper()}{summary[1:]}." == qa.brief


def test_drawing_requests_name_every_object():
    for i, scene in enumerate(SCENES[:100]):
        request = drawing_request(scene, scene_rng(12, i))
        for obj in scene.objects:
            assert f"{obj.color} {obj.shape}" in request
        assert request.count(" and ") == (len(scene.objects) > 1)


def test_brief_answers_read_back_to_the_spec_and_never_name_the_object():
    from scenes.reading import short_answer

    for i, scene in enumerate(SCENES[:100]):
        for kind in KINDS:
            qa = ask(scene, scene_rng(9, i), kind)
            assert short_answer(kind, qa.brief) == qa.short, (qa, qa.brief)
            assert len(qa.brief.split()) <= 5 and qa.brief.endswith(".")
            if kind in ("color", "position"):  # the shape named in the question is not repeated
                assert not any(re.search(rf"\b{s}\b", qa.brief) for s in SHAPES), qa.brief


def test_two_scene_questions_compare_the_specs_counts_and_read_back():
    from scenes.questions import COMPARE, COMPARE_FRAMES, compare
    from scenes.reading import short_answer

    shorts = []
    for i in range(len(SCENES) - 1):
        first, second = SCENES[i], SCENES[i + 1]
        qa = compare(first, second, scene_rng(11, i), "held_out" if i % 2 else "train")
        what = re.search(r"more (.+?)[?,]| number of (.+?)[?,]", qa.question)
        what = what[1] or what[2]
        count = {"shapes": lambda o: True} | {f"{c} shapes": (lambda o, c=c: o.color == c) for c in COLORS} | \
            {plural(s): (lambda o, s=s: o.shape == s) for s in SHAPES}
        a, b = sum(map(count[what], first.objects)), sum(map(count[what], second.objects))
        assert qa.kind == COMPARE and qa.short == ("first" if a > b else "second" if b > a else "same"), qa
        assert qa.question in [f.format(what=what) for f in COMPARE_FRAMES["held_out" if i % 2 else "train"]]
        assert short_answer(COMPARE, qa.answer) == short_answer(COMPARE, qa.brief) == qa.short
        shorts.append(qa.short)
    assert all(shorts.count(s) > 0.15 * len(shorts) for s in ("first", "second")) and "same" in shorts
    assert short_answer(COMPARE, "I cannot tell.") is None
    with pytest.raises(ValueError, match="unknown phrasing"):
        compare(SCENES[0], SCENES[1], scene_rng(0, 0), "other")
