"""Describe, then draw (DrawingConfig.describe): the assistant says what it will draw before the image tokens."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from PIL import Image
from tiny_parts import assistant_config, build_parts

from assistant.chat import one_turn_prompts
from assistant.config import AssistantConfig, DrawingConfig
from assistant.generation import ImageDone, Sampling, _Rows, draw_all, generate, would_draw
from assistant.model import GlyphModel
from data_gen.scene_chats import write_chats
from data_gen.scene_dataset import write_scene_dataset
from scenes.parser import read_scene
from scenes.questions import drawing_plan
from scenes.world import Scene, SceneObject

BOX = (0.0, 0.0, 0.1, 0.1)


def test_the_plan_names_every_object_in_reading_order():
    scene = Scene(72, (SceneObject("square", "blue", "small", 1, 1, BOX), SceneObject("circle", "red", "large", 0, 0, BOX),
                       SceneObject("ring", "orange", "small", 2, 1, BOX)))
    assert drawing_plan(scene) == ("Here is a large red circle in the top left corner, a small blue square in the "
                                   "center and a small orange ring at the bottom.")
    assert drawing_plan(Scene(72, scene.objects[1:2])) == "Here is a large red circle in the top left corner."


@pytest.fixture(scope="module")
def described_chats(tmp_path_factory):
    root = tmp_path_factory.mktemp("described")
    scenes = write_scene_dataset(root / "scenes", n=60, seed=3)
    path = write_chats(scenes, root / "chats" / "instruct.jsonl", "instruct", n=80, seed=5, drawing_size=72,
                       mix={"draw": 1.0, "mixed": 0.3}, describe_drawings=True)
    return path.parent, [json.loads(line) for line in path.read_text().splitlines()]


def test_each_requested_drawing_follows_a_plan_of_exactly_what_it_shows(described_chats):
    folder, chats = described_chats
    checked = bare = 0
    for chat in chats:
        for request, reply in zip(chat["messages"][::2], chat["messages"][1::2]):
            image = next((p["path"] for p in reply["content"] if p["type"] == "image"), None)
            if image is None:
                continue
            texts = [p["text"] for p in reply["content"] if p["type"] == "text"]
            if not any(p["type"] == "text" for p in request["content"]):  # unconditional: drawn without words
                assert texts == []
                bare += 1
                continue
            assert reply["content"][-1]["type"] == "image"  # the words come first
            reading = read_scene(Image.open(folder / image))
            shown = Scene(72, tuple(SceneObject(o.shape, o.color, o.size, o.row, o.col, BOX) for o in reading.objects))
            assert texts == [drawing_plan(shown)]
            checked += 1
    assert checked > 40 and bare > 0


def test_without_the_option_drawings_come_bare(described_chats, tmp_path):
    folder, _ = described_chats
    path = write_chats(folder.parent / "scenes", tmp_path / "instruct.jsonl", "instruct", n=40, seed=5,
                       mix={"draw": 1.0})
    chats = [json.loads(line) for line in path.read_text().splitlines()]
    replies = [m for chat in chats if chat["kind"] == "draw" for m in chat["messages"] if m["role"] == "assistant"]
    assert replies and all([p["type"] for p in m["content"]] == ["image"] for m in replies)


# ---- generation -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("llama"), "llama")


def said_before_the_image(model, events) -> str:
    finished = events[-1]
    ids = finished.token_ids[:finished.token_ids.index(model.vocab.boi_id)]
    return model.tokenizer.decode(ids, skip_special_tokens=True).strip()


def test_a_drawing_asked_for_outright_starts_with_its_description(parts, monkeypatch):
    monkeypatch.setattr("assistant.generation.DESCRIPTION_TOKENS", 12)  # random weights ramble: cut them short
    model = GlyphModel.build(dataclasses.replace(assistant_config(parts), drawing=DrawingConfig(describe=True)))
    prompt, _ = one_turn_prompts(model, "draw")
    settings = Sampling(temperature=1.0, cfg_scale=1, seed=4)
    events = list(generate(model, prompt, settings, draw=True))
    kinds = [type(e).__name__ for e in events]
    assert "ImageDone" in kinds
    assert kinds.index("TextDelta") < kinds.index("ImageDone")  # words first, then the picture
    [together] = draw_all(model, [prompt], None, settings, seeds=[4])
    image = next(e for e in events if isinstance(e, ImageDone))
    assert together.said == said_before_the_image(model, events) and torch.equal(together.codes, image.codes)


def test_a_batch_describes_and_draws_what_one_prompt_at_a_time_does(parts, monkeypatch):
    monkeypatch.setattr("assistant.generation.DESCRIPTION_TOKENS", 12)
    model = GlyphModel.build(dataclasses.replace(assistant_config(parts), drawing=DrawingConfig(describe=True)))
    prompts, unconditionals = zip(*[one_turn_prompts(model, text, cfg_scale=3.0) for text in ("draw", "a circle")])
    settings = Sampling(temperature=1.0, cfg_scale=3.0)
    batch = draw_all(model, list(prompts), list(unconditionals), settings, seeds=[1, 2])
    for prompt, unconditional, seed, together in zip(prompts, unconditionals, (1, 2), batch):
        events = list(generate(model, prompt, dataclasses.replace(settings, seed=seed), draw=True,
                               unconditional=unconditional))
        alone = next(e for e in events if isinstance(e, ImageDone))
        assert torch.equal(alone.codes, together.codes) and together.said == said_before_the_image(model, events)


def test_would_draw_reads_whether_the_description_opens_an_image(parts):
    model = GlyphModel.build(dataclasses.replace(assistant_config(parts), drawing=DrawingConfig(describe=True)))
    prompt, _ = one_turn_prompts(model, "draw")
    last = _Rows(model, [prompt], room=1).last[0]  # (H,): the hidden state that picks the first reply token
    eos = model.tokenizer.eos_token_id
    with torch.no_grad():
        model.vocab.output[1] = last * 10  # <boi> beats every text token at once
    assert would_draw(model, [prompt]) == [True]
    with torch.no_grad():
        model.vocab.output[1] = -last * 10
        model.causal_lm.get_output_embeddings().weight[eos] = last * 10  # now it ends its turn at once
    assert would_draw(model, [prompt]) == [False]


def test_a_drawing_asked_for_outright_can_be_declined_in_words(parts):
    """A describing assistant that ends its turn without opening an image has declined ("Sorry, I can't draw
    a horse."): the Draw box and /draw get its words and no picture forced after them."""
    model = GlyphModel.build(dataclasses.replace(assistant_config(parts), drawing=DrawingConfig(describe=True)))
    prompt, _ = one_turn_prompts(model, "draw a horse")
    last = _Rows(model, [prompt], room=1).last[0]
    with torch.no_grad():
        model.vocab.output[1] = -last * 10
        model.causal_lm.get_output_embeddings().weight[model.tokenizer.eos_token_id] = last * 10
    events = list(generate(model, prompt, Sampling(temperature=0, cfg_scale=1), draw=True))
    assert not any(isinstance(e, ImageDone) for e in events)
    assert events[-1].reason == "stop" and model.vocab.boi_id not in events[-1].token_ids


def test_the_setting_is_saved_and_old_configs_load_without_it(parts, tmp_path):
    model = GlyphModel.build(assistant_config(parts))
    assert model.config.drawing.describe is False
    model.describe_drawings(True)
    model.save_pretrained(tmp_path / "assistant")
    assert json.loads((tmp_path / "assistant" / "config.json").read_text())["drawing"]["describe"] is True
    assert GlyphModel.from_pretrained(tmp_path / "assistant").config.drawing.describe is True
    data = assistant_config(parts).to_dict()
    data["drawing"] = {"labels": []}
    assert AssistantConfig.from_dict(data).drawing.describe is False


def test_the_images_api_gives_the_description_as_revised_prompt(parts, monkeypatch):
    from ui.server import Assistant, Limits

    monkeypatch.setattr("assistant.generation.DESCRIPTION_TOKENS", 12)
    monkeypatch.setattr("ui.server.would_draw", lambda model, prompts: [True] * len(prompts))
    model = GlyphModel.build(dataclasses.replace(assistant_config(parts), drawing=DrawingConfig(describe=True)))
    data = Assistant(model, "glyph-tiny", Limits(max_images=2)).images({"prompt": "a blue circle", "n": 2, "seed": 3})
    prompt, unconditional = one_turn_prompts(model, "a blue circle", cfg_scale=3.0)
    expected = draw_all(model, [prompt] * 2, [unconditional] * 2, Sampling(temperature=1.0, cfg_scale=3.0), [3, 4])
    assert [d["revised_prompt"] for d in data] == [d.said for d in expected] and all(d.said for d in expected)
