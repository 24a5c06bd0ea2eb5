"""The scene oracle's training chats: what each kind holds."""
from __future__ import annotations

import json

import pytest

from data_gen.scene_chats import CONVERSATION_TURNS, INSTRUCT_MIX, write_chats
from data_gen.scene_dataset import write_scene_dataset


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


def test_seeing_chats_outnumber_drawing_requests(instruct):
    drawing = sum(c["kind"] == "draw" for c in instruct)
    seeing = sum(c["kind"] in ("describe", "conversation", "detail", "reasoning") for c in instruct)
    assert INSTRUCT_MIX["draw"] < 0.5 and seeing > 2 * drawing
