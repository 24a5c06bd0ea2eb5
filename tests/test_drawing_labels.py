"""Drawing labels (DrawingConfig.labels): a short text before each drawn code, e.g. the grid cell it fills."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from tiny_parts import assistant_config, build_parts

from assistant.chat import one_turn_prompts
from assistant.config import AssistantConfig, ConfigError, DrawingConfig
from assistant.generation import Finished, ImageDone, Sampling, draw_all, generate
from assistant.model import GlyphModel
from assistant.templates import IGNORE_INDEX, TemplateError, render_chat

CELLS = ("top left", "top right", "bottom left", "bottom right")  # the tiny VQ draws 2x2 codes


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("llama"), "llama")


def labelled(parts, labels=CELLS) -> GlyphModel:
    torch.manual_seed(0)
    return GlyphModel.build(dataclasses.replace(assistant_config(parts), drawing=DrawingConfig(labels)))


def ids(model: GlyphModel, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def drawing_chat(codes):
    return [{"role": "user", "content": "draw"}, {"role": "assistant", "content": [{"type": "image", "codes": codes}]}]


def test_each_code_follows_its_label_and_only_the_codes_are_supervised(parts):
    model = labelled(parts)
    chat = render_chat(drawing_chat([3, 1, 4, 1]), model.tokenizer, model.layout)
    vocab = model.vocab
    code = [vocab.code_start + c for c in (3, 1, 4, 1)]
    expected = [vocab.boi_id, *ids(model, "top left:"), code[0], *ids(model, " top right:"), code[1],
                *ids(model, " bottom left:"), code[2], *ids(model, " bottom right:"), code[3], vocab.eoi_id]
    start = chat.input_ids.tolist().index(vocab.boi_id)
    assert chat.input_ids[start:start + len(expected)].tolist() == expected
    supervised = [i for i, label in zip(expected, chat.labels[start:start + len(expected)].tolist())
                  if label != IGNORE_INDEX]
    assert supervised == [vocab.boi_id, *code, vocab.eoi_id]  # the labels are written, never learned


def test_generation_writes_the_labels_that_training_shows(parts):
    """The codes generate() draws greedily are the argmax of a plain forward pass over the rendered drawing:
    generation feeds each label exactly where render_chat puts it."""
    model = labelled(parts)
    with torch.no_grad():
        model.vocab.output.normal_()  # codes that differ from cell to cell, so a misplaced label shows
        model.vocab.code_map[2].weight.normal_()
    prompt, _ = one_turn_prompts(model, "draw")
    events = list(generate(model, prompt, Sampling(temperature=0, cfg_scale=1), draw=True))
    drawn = next(e for e in events if isinstance(e, ImageDone)).codes.flatten().tolist()
    finished = next(e for e in events if isinstance(e, Finished))
    layout_ids, _ = model.layout.drawing_ids([model.vocab.code_start + c for c in drawn])
    assert finished.token_ids[:len(layout_ids)] == layout_ids

    chat = render_chat(drawing_chat(drawn), model.tokenizer, model.layout)
    with torch.no_grad():
        hidden, _ = model.backbone(model.embed(chat.input_ids[None]))
    codes_at = (chat.input_ids >= model.vocab.code_start).nonzero()[:, 0]
    forward = (hidden[0, codes_at - 1] @ model.vocab.code_rows().T).argmax(-1).tolist()
    assert forward == drawn


def test_a_batch_draws_what_one_prompt_at_a_time_draws(parts):
    model = labelled(parts)
    with torch.no_grad():
        model.vocab.output.normal_()
    prompts, unconditionals = zip(*[one_turn_prompts(model, text, cfg_scale=3.0) for text in ("draw", "a circle")])
    settings = Sampling(temperature=1.0, cfg_scale=3.0)
    batch = draw_all(model, list(prompts), list(unconditionals), settings, seeds=[1, 2])
    for prompt, unconditional, seed, together in zip(prompts, unconditionals, (1, 2), batch):
        alone = next(e for e in generate(model, prompt, dataclasses.replace(settings, seed=seed), draw=True,
                                         unconditional=unconditional) if isinstance(e, ImageDone))
        assert torch.equal(alone.codes, together.codes)


def test_labels_are_saved_and_label_drawings_none_removes_them(parts, tmp_path):
    model = labelled(parts)
    model.save_pretrained(tmp_path / "assistant")
    assert json.loads((tmp_path / "assistant" / "config.json").read_text())["drawing"]["labels"] == list(CELLS)
    again = GlyphModel.from_pretrained(tmp_path / "assistant")
    label_ids = sum(map(len, again.layout.code_label_ids))
    assert again.layout == model.layout and again.layout.drawing_length == 6 + label_ids
    again.label_drawings(())
    assert again.layout.code_label_ids == () and again.layout.drawing_length == 6


def test_a_config_written_before_drawing_labels_existed_loads_without_them(parts):
    data = assistant_config(parts).to_dict()
    del data["drawing"]
    assert AssistantConfig.from_dict(data).drawing.labels == ()


def test_wrong_labels_are_refused_by_name(parts):
    with pytest.raises(TemplateError, match="3 drawing labels for 4 codes"):
        labelled(parts, CELLS[:3])
    data = assistant_config(parts).to_dict()
    data["drawing"] = {"labels": ["top", " "]}
    with pytest.raises(ConfigError, match="drawing.labels must be non-empty strings"):
        AssistantConfig.from_dict(data)
