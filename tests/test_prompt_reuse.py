"""A generation reuses the keys and values of the positions its prompt shares with the last one
(assistant/prompt_reuse.py): a chat's follow-up, without changing what the assistant says."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_parts import assistant_config, build_parts

from assistant import generation, prompt_reuse
from assistant.chat import ChatSession
from assistant.generation import Finished, Prompt, Sampling, _Rows, generate, reply_all
from assistant.model import GlyphModel

GREEDY = Sampling(temperature=0, max_new_tokens=6, max_images=0)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> GlyphModel:
    torch.manual_seed(0)
    return GlyphModel.build(assistant_config(build_parts(tmp_path_factory.mktemp("llama")))).eval()


@pytest.fixture
def reused(monkeypatch) -> list[int]:
    """The positions each generation's first pass took from the last one, in order."""
    counts = []

    def counting(*args):
        counts.append(prompt_reuse.restore(*args))
        return counts[-1]
    monkeypatch.setattr(generation, "restore", counting)
    return counts


def picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))


def chat(model: GlyphModel, reuse: bool) -> list[list[int]]:
    """A question about a picture, then two follow-ups; the token ids of each reply."""
    model.reuse_prompt_prefix = reuse
    prompt_reuse.forget(model)
    session = ChatSession(model)
    try:
        return [next(e for e in session.send(text, images, GREEDY) if isinstance(e, Finished)).token_ids
                for text, images in (("what is here?", [picture(0)]), ("and the colour?", []), ("where?", []))]
    finally:
        model.reuse_prompt_prefix = True


def test_follow_ups_reuse_the_conversation_so_far_and_say_the_same(model, reused):
    with_reuse = chat(model, reuse=True)
    first, second, third = reused
    assert first == 0  # nothing kept before the first question
    assert second > 10 and third > second  # the earlier turns (picture included) came from the cache
    assert with_reuse == chat(model, reuse=False)
    assert reused[3:] == [0, 0, 0]  # with reuse off, every prompt is prefilled whole


def test_reused_positions_give_the_states_of_a_fresh_prefill(model):
    ids = torch.tensor([model.tokenizer("a red circle above a blue square and more", add_special_tokens=False)
                        ["input_ids"]])
    longer = torch.cat([ids, ids[:, :3]], dim=1)
    with torch.inference_mode():
        prompt_reuse.forget(model)
        _Rows(model, [Prompt(ids)], room=4)
        warm = _Rows(model, [Prompt(longer)], room=4)
        prompt_reuse.forget(model)
        cold = _Rows(model, [Prompt(longer)], room=4)
    assert warm.reused == ids.shape[1] and cold.reused == 0
    torch.testing.assert_close(warm.last, cold.last, atol=1e-5, rtol=1e-4)


def test_a_new_picture_ends_the_shared_start_at_its_first_slot(model, reused):
    session = ChatSession(model)
    session.messages.append({"role": "user", "content": [{"type": "image", "image": picture(1)},
                                                         {"type": "text", "text": "what is here?"}]})
    first, _ = session.next_prompts(1.0)
    session.messages[0]["content"][0]["image"] = picture(2)  # the same ids, another picture
    second, _ = session.next_prompts(1.0)
    assert torch.equal(first.input_ids, second.input_ids)
    slot = int((first.input_ids[0] == model.vocab.image_id).nonzero()[0])
    prompt_reuse.forget(model)
    for prompt in (first, second):
        list(generate(model, prompt, GREEDY))
    assert reused == [0, slot]


def test_changed_weights_are_never_reused(model, reused):
    prompt = Prompt(torch.tensor([model.tokenizer("a red circle above a blue square")["input_ids"]]))
    prompt_reuse.forget(model)
    list(generate(model, prompt, GREEDY))
    with torch.no_grad():
        model.causal_lm.model.layers[0].mlp.down_proj.weight.mul_(1.0)  # unchanged values, a new version
    list(generate(model, prompt, GREEDY))
    list(generate(model, prompt, GREEDY))
    assert reused == [0, 0, prompt.input_ids.shape[1] - 1]  # the last position always runs


def test_batches_neither_keep_nor_reuse(model, reused):
    prompts = [Prompt(torch.tensor([model.tokenizer(text)["input_ids"]])) for text in ("a red circle", "hello")]
    prompt_reuse.forget(model)
    list(generate(model, prompts[0], GREEDY))
    reply_all(model, prompts + prompts, GREEDY)
    assert reused == [0, 0]  # the batch took nothing from the one-row pass before it
    assert "_glyph_kept_pass" in model.__dict__  # ... and left it in place
