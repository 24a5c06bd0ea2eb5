"""Chat data in the formats people have: ShareGPT with several images, and `datasets` folders (save_to_disk)."""
from __future__ import annotations

import json

import datasets
import pytest
from PIL import Image

from training.chat_data import ChatDataError, read_chats


@pytest.fixture()
def pictures(tmp_path):
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (8, 8), colour).save(tmp_path / name)
    return tmp_path


def sharegpt_row(**extra) -> dict:
    return {"conversations": [{"from": "human", "value": "Which has more circles, <image> or <image>?"},
                              {"from": "gpt", "value": "The first."},
                              {"from": "human", "value": "And what colour is the first?"},
                              {"from": "gpt", "value": "Red."}],
            "images": ["a.png", "b.png"], **extra}


def test_sharegpt_puts_each_image_at_its_mark_and_keeps_the_system_text(pictures):
    (pictures / "chats.jsonl").write_text(json.dumps(sharegpt_row(system="Answer briefly.")) + "\n")
    chats = read_chats([pictures / "chats.jsonl"])
    assert not chats.bad
    system, user = chats.chats[0].messages[:2]
    assert system == {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]}
    assert user["content"] == [{"type": "text", "text": "Which has more circles, "},
                               {"type": "image", "path": pictures / "a.png"}, {"type": "text", "text": " or "},
                               {"type": "image", "path": pictures / "b.png"}, {"type": "text", "text": "?"}]
    assert [m["role"] for m in chats.chats[0].messages] == ["system", "user", "assistant", "user", "assistant"]


def test_more_marks_than_images_names_the_row_and_the_file(pictures):
    rows = [sharegpt_row(), sharegpt_row(images=["a.png"])]
    (pictures / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    chats = read_chats([pictures / "chats.jsonl"])
    assert len(chats.chats) == 1 and [b.row for b in chats.bad] == [2]
    assert str(pictures / "chats.jsonl") in str(chats.bad[0]) and "2 <image> mark(s) but 1 image(s)" in str(chats.bad[0])


def test_a_save_to_disk_folder_reads_like_its_jsonl(pictures):
    rows = [sharegpt_row(), {"messages": [{"role": "user", "content": [{"type": "image", "path": "a.png"},
                                                                        {"type": "text", "text": "Colour?"}]},
                                          {"role": "assistant", "content": [{"type": "text", "text": "Red."}]}]}]
    (pictures / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    datasets.Dataset.from_list(rows[:1]).save_to_disk(str(pictures / "sharegpt"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[1:])}).save_to_disk(str(pictures / "messages"))
    from_files = read_chats([pictures / "chats.jsonl"])
    from_folders = read_chats([pictures / "sharegpt", pictures / "messages"])
    assert not from_folders.bad
    assert [c.messages for c in from_folders.chats] == [c.messages for c in from_files.chats]


def test_images_a_dataset_holds_become_files_beside_it(pictures):
    red = Image.open(pictures / "a.png")
    rows = datasets.Dataset.from_dict({"image": [red, red], "conversations": [
        [{"from": "human", "value": "<image>What colour?"}, {"from": "gpt", "value": "Red."}]] * 2},
        features=datasets.Features({"image": datasets.Image(), "conversations": [
            {"from": datasets.Value("string"), "value": datasets.Value("string")}]}))
    rows.save_to_disk(str(pictures / "held"))
    chats = read_chats([pictures / "held"])
    assert not chats.bad and len(chats.chats) == 2
    path = chats.chats[0].messages[0]["content"][0]["path"]
    assert path.parent == pictures / "held.images" and chats.chats[1].messages[0]["content"][0]["path"] == path
    assert Image.open(path).convert("RGB").getpixel((0, 0)) == (255, 0, 0)


def test_a_folder_that_is_no_dataset_is_refused_by_name(pictures):
    (pictures / "plain").mkdir()
    with pytest.raises(ChatDataError, match=r"plain is a folder but not one datasets' save_to_disk wrote"):
        read_chats([pictures / "plain"])
    splits = datasets.DatasetDict({"a": datasets.Dataset.from_list([sharegpt_row()]),
                                   "b": datasets.Dataset.from_list([sharegpt_row()])})
    splits.save_to_disk(str(pictures / "two"))
    with pytest.raises(ChatDataError, match="holds the splits a, b"):
        read_chats([pictures / "two"])
