"""The scene oracle's training chats: what each kind holds."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from data_gen import scene_chats
from data_gen.scene_chats import CONVERSATION_TURNS, INSTRUCT_MIX, write_chats
from data_gen.scene_dataset import write_scene_dataset
from scenes.no_picture import NO_PICTURE_REPLY, asks_for_picture
from scenes.questions import FRAMES, casually
from scenes.questions import KINDS as QUESTION_KINDS
from scenes.reading import short_answer
from scenes.world import plural


@pytest.fixture(scope="module")
def instruct(tmp_path_factory):
    root = tmp_path_factory.mktemp("chats")
    scenes = write_scene_dataset(root / "scenes", n=60, seed=3)
    path = write_chats(scenes, root / "chats" / "instruct.jsonl", "instruct", n=300, seed=5)
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_conversations_ask_several_questions_about_one_image(instruct):
    conversations = [c for c in instruct if c["kind"] == "conversation"]
    assert conversations
    low, high = CONVERSATION_TURNS
    for chat in conversations:
        users = [m for m in chat["messages"] if m["role"] == "user"]
        assert low <= len(users) <= high
        images = [[p for p in m["content"] if p["type"] == "image"] for m in users]
        assert len(images[0]) == 1 and not any(images[1:])  # the picture comes once, with the first question
        assert [m["role"] for m in chat["messages"]] == ["user", "assistant"] * len(users)


def test_conversation_turns_set_how_many_questions_each_picture_gets(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)

    def questions_per_picture(turns):
        path = write_chats(scenes, tmp_path / f"{turns}.jsonl", "instruct", n=200, seed=5,
                           mix={"conversation": 1.0}, conversation_turns=turns)
        chats = [json.loads(line) for line in path.read_text().splitlines()]
        return [sum(m["role"] == "user" for m in c["messages"]) for c in chats if c["kind"] == "conversation"]

    many = questions_per_picture((6, 9))
    assert len(many) > 100 and min(many) == 6 and max(many) == 9
    assert set(questions_per_picture((3, 3))) == {3}
    default = questions_per_picture(CONVERSATION_TURNS)
    assert (min(default), max(default)) == CONVERSATION_TURNS
    for bad in ((0, 2), (5, 2)):
        with pytest.raises(ValueError, match="--conversation-turns"):
            write_chats(scenes, tmp_path / "bad.jsonl", "instruct", n=5, conversation_turns=bad)
    assert not (tmp_path / "bad.jsonl").exists()
    assert scene_chats.main(["--scenes", str(scenes), "--kind", "instruct", "--n", "5", "--out",
                             str(tmp_path / "cli.jsonl"), "--conversation-turns", "4-7"]) == 0
    with pytest.raises(SystemExit):  # argparse's one-line error for a range it cannot read
        scene_chats.main(["--scenes", str(scenes), "--kind", "instruct", "--out", str(tmp_path / "x.jsonl"),
                          "--conversation-turns", "four"])


def test_seeing_chats_outnumber_drawing_requests(instruct):
    drawing = sum(c["kind"] == "draw" for c in instruct)
    seeing = sum(c["kind"] in ("describe", "conversation", "detail", "reasoning") for c in instruct)
    assert INSTRUCT_MIX["draw"] < 0.5 and seeing > 2 * drawing


def test_brief_answers_replace_sentences_by_the_fraction_asked(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=40, seed=3)

    def answers(fraction):
        path = write_chats(scenes, tmp_path / f"chats-{fraction}" / "text.jsonl", "text", n=200, seed=5,
                           brief_answers=fraction)
        chats = [json.loads(line) for line in path.read_text().splitlines()]
        return [c["messages"][-1]["content"][0]["text"] for c in chats if c["kind"] == "qa"]

    full, brief = answers(0.0), answers(1.0)
    assert len(full) == len(brief) > 50  # the same chats, answered two ways
    assert all(len(a.split()) >= 4 for a in full if not a.startswith(("Yes", "No")))
    assert all(len(a.split()) <= 5 for a in brief)
    half = answers(0.5)
    assert 0.3 < sum(a in brief and a not in full for a in half) / len(half) < 0.7
    with pytest.raises(ValueError, match="--brief-answers"):
        write_chats(scenes, tmp_path / "bad.jsonl", "text", n=5, brief_answers=1.5)


def test_mix_changes_how_often_each_kind_comes(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=200, seed=3)
    out = scene_chats.write_chats(scenes, tmp_path / "i.jsonl", "instruct", 300, mix={"draw": 0.0, "describe": 1.0})
    kinds = [json.loads(line)["kind"] for line in out.read_text().splitlines()]
    assert "draw" not in kinds and kinds.count("describe") > 150  # describe now weighs 1 of about 1.63
    with pytest.raises(ValueError, match="KIND=WEIGHT"):
        scene_chats.parse_mix(["drawing=0.1"])
    with pytest.raises(ValueError, match="no align chat kind"):
        scene_chats.write_chats(scenes, tmp_path / "a.jsonl", "align", 10, mix={"describe": 0, "caption_draw": 0})
    assert not (tmp_path / "a.jsonl").exists()


def test_question_weights_change_which_kinds_conversations_ask(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)

    def questions(weights):
        out = write_chats(scenes, tmp_path / f"{len(weights)}.jsonl", "instruct", 120, seed=5,
                          mix={"conversation": 1.0, "draw": 0.0}, questions=weights)
        chats = [json.loads(line) for line in out.read_text().splitlines()]
        return [p["text"] for c in chats if c["kind"] == "conversation"
                for m in c["messages"] if m["role"] == "user" for p in m["content"] if p["type"] == "text"]

    only_counting = questions({"color": 0, "shape": 0, "position": 0, "existence": 0})
    assert len(only_counting) > 100
    assert all(q.startswith(("How many", "Count the", "What is the number", "Tell me how many"))
               for q in only_counting), only_counting[:5]
    alike = questions({})
    assert 0.1 < sum(q.startswith("How many") for q in alike) / len(alike) < 0.3  # one kind in five
    with pytest.raises(ValueError, match="KIND=WEIGHT"):
        scene_chats.parse_questions(["colour=2"])
    with pytest.raises(ValueError, match="--questions leaves no kind"):
        write_chats(scenes, tmp_path / "none.jsonl", "instruct", 5, questions={k: 0 for k in QUESTION_KINDS})
    assert not (tmp_path / "none.jsonl").exists()


def test_more_question_kinds_come_only_when_given_a_weight(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)

    def chats(weights: dict, name: str) -> str:
        return write_chats(scenes, tmp_path / f"{name}.jsonl", "instruct", 80, seed=5,
                           mix={"conversation": 1.0, "draw": 0.0}, questions=weights).read_text()

    before = chats({"count": 2}, "before")
    assert before == chats({"count": 2, "size": 0, "any": 0}, "zero")  # recipes written before them: unchanged
    sizes = [c for line in chats({k: 0 for k in QUESTION_KINDS} | {"size": 1}, "sizes").splitlines()
             if (c := json.loads(line))["kind"] == "conversation"]
    frames = [frame.split("{")[0] for frame in FRAMES["size"]["train"]]
    asked = [p["text"] for c in sizes for m in c["messages"] if m["role"] == "user" for p in m["content"]
             if p["type"] == "text"]
    assert len(asked) > 50 and all(q.startswith(tuple(frames)) for q in asked), asked[:5]
    replies = [p["text"] for c in sizes for m in c["messages"] if m["role"] == "assistant" for p in m["content"]]
    assert all(short_answer("size", reply) in ("small", "large") for reply in replies), replies[:5]


def test_count_present_asks_counts_of_what_the_picture_has(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)
    only_counting = {k: 0 for k in QUESTION_KINDS if k != "count"}

    def answers(name, **options):
        out = write_chats(scenes, tmp_path / f"{name}.jsonl", "instruct", 120, seed=5,
                          mix={"conversation": 1.0, "draw": 0.0}, questions=only_counting, **options)
        chats = [json.loads(line) for line in out.read_text().splitlines()]
        return [p["text"] for c in chats for m in c["messages"] if m["role"] == "assistant"
                for p in m["content"] if p["type"] == "text"]

    default, present = answers("default"), answers("present", count_present=1.0)
    assert answers("zero", count_present=0.0) == default  # earlier recipes' chats are unchanged
    assert sum(a.startswith("There are no") for a in default) > 20
    assert not any(a.startswith("There are no") for a in present)  # a colour or shape the picture has

    def several_of_a_kind(texts):  # "There are two red shapes." or "... two crosses.", not a count of all shapes
        return sum(bool(re.fullmatch(r"There are (two|three|four|five) (?!shapes\.)\w+( shapes)?\.", a)) for a in texts)

    assert several_of_a_kind(present) > 2 * several_of_a_kind(default) > 0
    balanced = answers("balanced", count_balanced=1.0)  # every count a picture has alike
    assert answers("zero balanced", count_balanced=0.0) == default
    assert several_of_a_kind(balanced) > 2 * several_of_a_kind(default)
    assert sum(a.startswith("There are no") for a in balanced) < sum(a.startswith("There are no") for a in default)
    for option, bad in (("count_present", 1.5), ("count_balanced", -0.5)):
        with pytest.raises(ValueError, match=f"--{option.replace('_', '-')} {bad} must be a fraction"):
            write_chats(scenes, tmp_path / "bad.jsonl", "instruct", 5, **{option: bad})
    assert not (tmp_path / "bad.jsonl").exists()


def test_any_present_asks_any_questions_about_what_the_picture_has(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)
    only_any = {k: 0 for k in QUESTION_KINDS} | {"any": 1}

    def answers(name, **options):
        out = write_chats(scenes, tmp_path / f"{name}.jsonl", "instruct", 120, seed=5,
                          mix={"conversation": 1.0, "draw": 0.0}, questions=only_any, **options)
        chats = [c for line in out.read_text().splitlines() if (c := json.loads(line))["kind"] == "conversation"]
        return [p["text"] for c in chats for m in c["messages"] if m["role"] == "assistant"
                for p in m["content"] if p["type"] == "text"]

    default, present = answers("default"), answers("present", any_present=1.0)
    assert answers("zero", any_present=0.0) == default  # earlier recipes' chats are unchanged
    replies = [a for a in default if a.startswith(("Yes", "No"))]  # (a conversation may open with a caption)
    assert len(replies) > 150 and 0.3 < sum(a.startswith("No") for a in replies) / len(replies) < 0.7
    replies = [a for a in present if a.startswith(("Yes", "No"))]
    assert len(replies) > 150 and all(a.startswith("Yes, there is") for a in replies)
    with pytest.raises(ValueError, match="--any-present -0.1 must be a fraction"):
        write_chats(scenes, tmp_path / "bad.jsonl", "instruct", 5, any_present=-0.1)


def test_more_wordings_ask_in_the_further_training_wordings_only_when_given(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)

    def questions(name, **options):
        out = write_chats(scenes, tmp_path / f"{name}.jsonl", "instruct", 120, seed=5,
                          mix={"conversation": 1.0, "compare": 0.3, "draw": 0.0}, **options)
        chats = [json.loads(line) for line in out.read_text().splitlines()]
        return [p["text"] for c in chats for m in c["messages"][::2] for p in m["content"] if p["type"] == "text"]

    def openings(phrasing):  # each wording's words before its first slot, e.g. "Which part of the image is"
        return tuple(f.split("{")[0] for kind in FRAMES.values() for f in kind[phrasing] if f.split("{")[0])

    more, trained = openings("more"), set(openings("train"))
    only_more = tuple(o for o in more if not any(t.startswith(o) or o.startswith(t) for t in trained))
    default, reworded = questions("default"), questions("reworded", more_wordings=1.0)
    assert questions("zero", more_wordings=0.0) == default  # earlier recipes' chats are unchanged
    assert not any(q.startswith(only_more) for q in default)
    assert sum(q.startswith(only_more) for q in reworded) > len(reworded) / 3
    with pytest.raises(ValueError, match="--more-wordings 2.0 must be a fraction"):
        write_chats(scenes, tmp_path / "bad.jsonl", "instruct", 5, more_wordings=2.0)


def test_drawings_weights_ask_for_some_categories_more_often(tmp_path):
    from scenes.prompts import RELATIONS

    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)

    def relational_share(drawings):
        path = write_chats(scenes, tmp_path / "chats" / "i.jsonl", "instruct", 300, seed=2, mix={"draw": 1.0},
                           drawings=drawings)
        requests = [c["messages"][0]["content"] for line in path.read_text().splitlines()
                    if (c := json.loads(line))["kind"] == "draw"]
        texts = [p["text"] for content in requests for p in content if p["type"] == "text"]
        return sum(any(f" {r} " in t for r in RELATIONS) for t in texts) / len(texts)

    only_position = {"single": 0, "two": 0, "counting": 0, "colors": 0}
    assert relational_share(only_position) > 0.5  # the rest are whole scenes and unconditional requests
    assert relational_share({}) < 0.2  # one category in five, of the prompt-made requests
    with pytest.raises(ValueError, match="--drawings 'place=2'"):
        scene_chats.parse_drawings(["place=2"])


def test_a_drawing_size_draws_every_picture_at_that_size_with_objects_centred(tmp_path):
    from PIL import Image

    from scenes.parser import read_scene

    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)
    path = write_chats(scenes, tmp_path / "chats" / "instruct.jsonl", "instruct", n=120, seed=5, drawing_size=72,
                       mix={"draw": 1.0, "mixed": 1.0, "decline": 0.5})
    chats = [json.loads(line) for line in path.read_text().splitlines()]
    drawn = [part["path"] for chat in chats for m in chat["messages"] if m["role"] == "assistant"
             for part in m["content"] if part["type"] == "image"]
    assert len(drawn) > 60
    for relative in drawn[:40]:
        assert relative.startswith("drawings/")  # never the dataset's own 64 px image
        picture = Image.open(path.parent / relative)
        assert picture.size == (72, 72)
        for obj in read_scene(picture).objects:  # each object centred in its 24 px cell, to the pixel
            x1, y1, x2, y2 = (v * 72 for v in obj.box)
            assert abs((x1 + x2) / 2 - (24 * obj.col + 12)) <= 1 and abs((y1 + y2) / 2 - (24 * obj.row + 12)) <= 1
    with pytest.raises(ValueError, match="--drawing-size"):
        write_chats(scenes, tmp_path / "bad.jsonl", "instruct", n=5, drawing_size=8)


def test_declines_answer_requests_outside_the_world_in_words(instruct):
    declines = [c for c in instruct if c["kind"] == "decline"]
    assert declines
    for chat in declines:
        request, reply = chat["messages"]
        assert request["role"] == "user" and reply["role"] == "assistant"
        assert [p["type"] for p in reply["content"]] == ["text"] and "I can draw circles" in reply["content"][0]["text"]


def test_two_image_chats_show_both_pictures_before_the_question(tmp_path):
    import re

    from scenes.questions import COMPARE
    from scenes.reading import short_answer
    from scenes.world import Scene

    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)
    only_compare = {kind: 0.0 for kind in INSTRUCT_MIX} | {"compare": 1.0}
    out = write_chats(scenes, tmp_path / "i.jsonl", "instruct", 40, seed=2, mix=only_compare)
    chats = [json.loads(line) for line in out.read_text().splitlines()]
    assert {c["kind"] for c in chats} == {"compare"}
    rows = {json.loads(line)["image"]: json.loads(line) for line in (scenes / "train.jsonl").read_text().splitlines()}
    for chat in chats:
        question, answer = chat["messages"]
        paths = [p["path"] for p in question["content"] if p["type"] == "image"]
        assert len(paths) == 2 and question["content"][2]["type"] == "text"
        first, second = (Scene.from_dict(rows[str((tmp_path / p).resolve().relative_to(scenes.resolve()))])
                         for p in paths)
        what = re.search(r"more (.+?)\?", question["content"][2]["text"])[1]

        def count(scene, what=what):
            return sum(what in ("shapes", f"{o.color} shapes", plural(o.shape)) for o in scene.objects)

        a, b = count(first), count(second)
        assert short_answer(COMPARE, answer["content"][0]["text"]) == ("first" if a > b else "second" if b > a
                                                                       else "same")
    default = [json.loads(line) for line in write_chats(scenes, tmp_path / "d.jsonl", "instruct", 200,
                                                        seed=2).read_text().splitlines()]
    assert not any(c["kind"] == "compare" for c in default)  # off unless a mix asks for it


def test_ask_then_draw_chats_request_a_new_drawing_after_questions_about_a_picture(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)
    only_these = {kind: 0.0 for kind in INSTRUCT_MIX} | {"ask_then_draw": 1.0}
    out = write_chats(scenes, tmp_path / "i.jsonl", "instruct", 60, seed=2, mix=only_these, drawing_size=32,
                      describe_drawings=True)
    chats = [json.loads(line) for line in out.read_text().splitlines()]
    drawn = declined = 0
    for chat in chats:
        messages = chat["messages"]
        kinds = [[p["type"] for p in m["content"]] for m in messages]
        assert kinds[0] == ["image", "text"] and len(messages) >= 2 * (CONVERSATION_TURNS[0] + 1)
        assert not any("image" in k for k in kinds[1:-1])  # one picture, asked about, and no other until the end
        request, reply = messages[-2]["content"][0]["text"], messages[-1]["content"]
        if [p["type"] for p in reply] == ["text", "image"]:
            drawn += 1
            assert reply[0]["text"].startswith("Here is")
        else:
            declined += 1
            assert "I can draw circles" in reply[0]["text"], (request, reply)
    assert drawn > 35 and declined > 3
    default = [json.loads(line) for line in write_chats(scenes, tmp_path / "d.jsonl", "instruct", 200,
                                                        seed=2).read_text().splitlines()]
    assert not any(c["kind"] == "ask_then_draw" for c in default)  # off unless a mix asks for it


def test_casual_questions_are_lower_case_or_unmarked(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)

    def chats(casual: float, name: str) -> list[dict]:
        text = write_chats(scenes, tmp_path / f"{name}.jsonl", "instruct", 80, seed=5,
                           mix={"conversation": 1.0, "draw": 0.0}, casual=casual).read_text()
        return [json.loads(line) for line in text.splitlines()]

    assert chats(0.0, "plain") == chats(0.0, "again")  # without --casual nothing more is drawn: unchanged
    asked = [p["text"] for c in chats(0.5, "half") for m in c["messages"] if m["role"] == "user"
             for p in m["content"] if p["type"] == "text"]
    unmarked = sum(not q.endswith(("?", ".")) for q in asked) / len(asked)
    lowered = sum(q[0].islower() for q in asked) / len(asked)
    assert 0.15 < unmarked < 0.5 and 0.15 < lowered < 0.5, (unmarked, lowered)
    with pytest.raises(ValueError, match="--casual 2"):
        write_chats(scenes, tmp_path / "bad.jsonl", "instruct", 5, casual=2)


def test_a_casual_question_differs_from_its_frame_only_in_case_and_question_mark():
    rng = np.random.default_rng(0)
    for question in ("What colour is the red circle?", "Any triangles here?", "Count the squares in the image."):
        typed = {casually(question, rng) for _ in range(60)}
        assert question not in typed and len(typed) == 3, typed
        assert all(t.rstrip("?.").lower() == question.rstrip("?.").lower() for t in typed)


def test_no_image_chats_ask_for_a_picture_before_one_is_attached_then_answer_about_it(tmp_path):
    scenes = write_scene_dataset(tmp_path / "scenes", n=60, seed=3)
    only_these = {kind: 0.0 for kind in INSTRUCT_MIX} | {"no_image": 1.0}
    out = write_chats(scenes, tmp_path / "i.jsonl", "instruct", 80, seed=4, mix=only_these)
    chats = [json.loads(line) for line in out.read_text().splitlines()]
    attached_later = 0
    for chat in chats:
        messages = chat["messages"]
        kinds = [[p["type"] for p in m["content"]] for m in messages]
        assert kinds[:2] == [["text"], ["text"]]  # a question with no picture, and a reply in words
        assert messages[1]["content"][0]["text"] == NO_PICTURE_REPLY and asks_for_picture(NO_PICTURE_REPLY)
        if len(messages) == 4:  # the user then attaches it: the question is answered about that picture
            attached_later += 1
            assert kinds[2][0] == "image" and kinds[3] == ["text"]
            assert messages[3]["content"][0]["text"] != NO_PICTURE_REPLY
        else:
            assert len(messages) == 2
    assert 20 < attached_later < 60
    default = [json.loads(line) for line in write_chats(scenes, tmp_path / "d.jsonl", "instruct", 200,
                                                        seed=2).read_text().splitlines()]
    assert not any(c["kind"] == "no_image" for c in default)  # off unless a mix asks for it
