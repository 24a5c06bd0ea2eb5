"""Slot labels (ProjectorConfig.slot_labels): a short text before each image slot, e.g. the grid cell it covers."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from PIL import Image
from tiny_parts import assistant_config, build_parts

from assistant.config import AssistantConfig, ConfigError
from assistant.hf_format import llava_misfit
from assistant.model import GlyphModel
from assistant.templates import IGNORE_INDEX, TemplateError, render_chat

CELLS = ("top left", "top right", "bottom left", "bottom right")  # the tiny tower has 4 patches: 4 slots


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("llama"), "llama")


def labelled(parts, labels=CELLS) -> GlyphModel:
    config = assistant_config(parts)
    torch.manual_seed(0)
    return GlyphModel.build(dataclasses.replace(config, projector=dataclasses.replace(config.projector,
                                                                                       slot_labels=labels)))


def ids(model: GlyphModel, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def image_question():
    return [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (16, 16), (255, 0, 0))},
                                         {"type": "text", "text": "where?"}]}]


def test_each_slot_follows_its_label_and_nothing_of_the_image_is_supervised(parts):
    model = labelled(parts)
    chat = render_chat(image_question(), model.tokenizer, model.layout)
    image = model.vocab.image_id
    expected = [*ids(model, "top left:"), image, *ids(model, " top right:"), image,
                *ids(model, " bottom left:"), image, *ids(model, " bottom right:"), image]
    start = len(ids(model, "<|im_start|>user\n"))
    assert chat.input_ids[start:start + len(expected)].tolist() == expected
    assert int((chat.input_ids == image).sum()) == 4  # still one slot per projected feature
    assert (chat.labels == IGNORE_INDEX).all()


def test_a_labelled_assistant_reads_its_labels_from_its_config_and_answers(parts, tmp_path):
    model = labelled(parts)
    model.save_pretrained(tmp_path / "assistant")
    saved = json.loads((tmp_path / "assistant" / "config.json").read_text())
    assert saved["projector"]["slot_labels"] == list(CELLS)
    again = GlyphModel.from_pretrained(tmp_path / "assistant")
    assert again.layout == model.layout
    chat = render_chat(image_question(), again.tokenizer, again.layout, add_generation_prompt=True)
    features = again.image_features(torch.stack([again.vision_tower.preprocess(chat.images[0])]))
    logits = again(chat.input_ids[None], image_features=features).logits  # slots and labels embed together
    assert logits.shape[:2] == (1, chat.input_ids.shape[0]) and torch.isfinite(logits).all()


def test_label_slots_changes_the_layout_and_none_removes_it(parts):
    model = GlyphModel.build(assistant_config(parts))
    plain = render_chat(image_question(), model.tokenizer, model.layout).input_ids
    model.label_slots(CELLS)
    assert model.config.projector.slot_labels == CELLS
    longer = render_chat(image_question(), model.tokenizer, model.layout).input_ids
    assert len(longer) == len(plain) + sum(len(ids(model, f"{' ' if i else ''}{c}:")) for i, c in enumerate(CELLS))
    model.label_slots(())
    assert torch.equal(render_chat(image_question(), model.tokenizer, model.layout).input_ids, plain)


def test_a_config_written_before_slot_labels_existed_loads_without_them(parts):
    data = assistant_config(parts).to_dict()
    del data["projector"]["slot_labels"]
    assert AssistantConfig.from_dict(data).projector.slot_labels == ()
    del data["vq"]  # a field without a default is still required
    with pytest.raises(ConfigError, match="missing \\['vq'\\]"):
        AssistantConfig.from_dict(data)


def test_wrong_labels_are_refused_by_name(parts):
    with pytest.raises(TemplateError, match="3 slot labels for 4 image slots"):
        labelled(parts, CELLS[:3])
    data = assistant_config(parts).to_dict()
    data["projector"]["slot_labels"] = ["top", ""]
    with pytest.raises(ConfigError, match="slot_labels must be non-empty strings"):
        AssistantConfig.from_dict(data)


def test_llava_export_refuses_labelled_slots_which_it_cannot_write(parts):
    assert "slot_labels" in llava_misfit(labelled(parts).config.projector)
    assert llava_misfit(GlyphModel.build(assistant_config(parts)).config.projector) is None


def test_an_assistant_continued_from_a_relative_folder_saves_parts_it_can_find(parts, tmp_path, monkeypatch):
    first = labelled(parts).save_pretrained(tmp_path / "first")
    shutil.copytree(parts.vq, first / "vq")  # parts named by paths inside the folder, as a shipped assistant's are
    shutil.copytree(parts.clip, first / "clip")
    config = json.loads((first / "config.json").read_text())
    config["vq"], config["vision"]["model_name"] = "vq", "local-dir:clip"
    (first / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)  # --init first, as a user types it from the folder above
    again = GlyphModel.from_pretrained("first")
    again.save_pretrained(tmp_path / "deeper" / "second")
    assert GlyphModel.from_pretrained(tmp_path / "deeper" / "second").layout == again.layout
