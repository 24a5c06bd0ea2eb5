"""The lean decoder (assistant/decoder.py) against transformers' own forward, and LoRA merging for inference."""
from __future__ import annotations

import pytest
import torch
from peft import LoraConfig
from tiny_parts import assistant_config, build_parts

from assistant.decoder import Decoder
from assistant.generation import ImageDone, Prompt, Sampling, _Rows, draw_all, generate, reply_all
from assistant.model import GlyphModel


def build(root, arch: str, lora: bool) -> GlyphModel:
    torch.manual_seed(0)
    model = GlyphModel.build(assistant_config(build_parts(root, arch)))
    with torch.no_grad():  # spread the new output rows, as training would: fresh ones are all alike
        model.vocab.output.normal_(std=0.5, generator=torch.Generator().manual_seed(1))
    if lora:
        model.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
        with torch.no_grad():
            for name, parameter in model.language_model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.1, generator=torch.Generator().manual_seed(2))
    return model.eval()


@pytest.fixture(scope="module", params=[("llama", False), ("llama", True), ("qwen2", True)],
                ids=["llama", "llama-lora", "qwen2-lora"])
def model(request, tmp_path_factory) -> GlyphModel:
    arch, lora = request.param
    return build(tmp_path_factory.mktemp(arch), arch, lora)


def prompts(model: GlyphModel) -> list[Prompt]:
    ids = [model.tokenizer(text, add_special_tokens=False)["input_ids"] for text in
           ("a red circle above a blue square", "hello", "draw a green triangle")]
    return [Prompt(torch.tensor([i])) for i in ids]  # three lengths: the batch is left-padded


def rows_states(model: GlyphModel, use_decoder: bool, steps: int) -> list[torch.Tensor]:
    """The last hidden state of every row after the prompt and after each of `steps` fed tokens."""
    model.use_decoder = use_decoder
    try:
        with torch.inference_mode():
            rows = _Rows(model, prompts(model), room=8)
            assert (rows.decoder is not None) == use_decoder
            states = [rows.last]
            for step in range(steps):
                live = torch.tensor([True, step < 2, True])  # the second row stops early, as in reply_all
                rows.feed(torch.tensor([5 + step, 6, model.vocab.code_start + step]), live)
                states.append(rows.last)
            return states
    finally:
        model.use_decoder = True


def test_decoder_gives_transformers_hidden_states(model):
    lean, reference = rows_states(model, True, 6), rows_states(model, False, 6)
    for step, (ours, theirs) in enumerate(zip(lean, reference)):
        live = [0, 2] if step > 2 else [0, 1, 2]  # a finished row's states are never read (what they are differs)
        torch.testing.assert_close(ours[live], theirs[live], atol=1e-5, rtol=1e-4)


def test_decoder_cache_grows_past_its_first_capacity(model):
    with torch.inference_mode():
        decoder = Decoder.for_model(model.causal_lm, batch=1, capacity=2)
        ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
        whole = decoder(model.embed(ids), torch.ones(1, 7, dtype=torch.bool))  # grows 2 → 7
        step = Decoder.for_model(model.causal_lm, batch=1, capacity=2)
        pieces = [step(model.embed(ids[:, i:i + 1]), torch.ones(1, 1, dtype=torch.bool)) for i in range(7)]
    assert decoder.keys.shape[3] == 7 and step.keys.shape[3] == 9  # grown by half: 2 → 3 → 4 → 6 → 9
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-4)


def test_generation_is_the_same_with_and_without_the_decoder(model):
    settings = Sampling(temperature=0, max_new_tokens=8, max_images=0)
    guided = Sampling(temperature=1.0, cfg_scale=3.0)
    drawing = [Prompt(torch.tensor([model.tokenizer("draw a red circle")["input_ids"]]))]
    unconditional = [Prompt(torch.tensor([model.tokenizer("x")["input_ids"]]))]

    def outputs():
        texts = [r.token_ids for r in reply_all(model, prompts(model), settings)]
        alone = list(generate(model, prompts(model)[0], settings))[-1].token_ids
        drawn = draw_all(model, drawing, unconditional, guided, seeds=[3])[0].codes
        streamed = next(e.codes for e in generate(model, drawing[0], Sampling(temperature=1.0, cfg_scale=3.0, seed=3),
                                                  draw=True, unconditional=unconditional[0])
                        if isinstance(e, ImageDone))
        return texts, alone, drawn, streamed

    lean = outputs()
    model.use_decoder = False
    try:
        reference = outputs()
    finally:
        model.use_decoder = True
    assert lean[:2] == reference[:2]
    assert torch.equal(lean[2], reference[2]) and torch.equal(lean[3], reference[3])
    assert torch.equal(lean[2], lean[3])  # batched and streamed drawings agree with the decoder too


@pytest.mark.parametrize("arch", ["llama", "qwen2"])  # qwen2: q/k/v biases
def test_fused_projections_are_the_layers_own_weights(tmp_path, arch):
    """With LoRA merged, decoding runs q/k/v as one matrix and gate/up as another whose rows are the layers' own
    weights (views, no second copy), gives transformers' hidden states, and fuses again after a cast."""
    model = build(tmp_path, arch, lora=True)
    model.merge_lora()
    reference = rows_states(model, False, 4)
    lean = rows_states(model, True, 4)
    for ours, theirs in zip(lean, reference):
        torch.testing.assert_close(ours[[0, 2]], theirs[[0, 2]], atol=1e-5, rtol=1e-4)
    for dtype in (torch.float32, torch.bfloat16):
        model.to(dtype)
        Decoder.for_model(model.causal_lm, batch=1, capacity=4)
        for layer in model.causal_lm.model.layers:
            attention, mlp, fused = layer.self_attn, layer.mlp, layer._glyph_fused
            assert fused.qkv.dtype == dtype and (fused.qkv_bias is not None) == (arch == "qwen2")
            assert torch.equal(fused.qkv, torch.cat([attention.q_proj.weight, attention.k_proj.weight,
                                                     attention.v_proj.weight]))
            assert attention.v_proj.weight.data_ptr() == fused.qkv[-attention.v_proj.out_features:].data_ptr()
            assert mlp.up_proj.weight.data_ptr() == fused.gate_up[mlp.gate_proj.out_features:].data_ptr()


def test_a_model_fused_while_generating_still_trains(tmp_path):
    """Generation runs in inference mode; the fused weights it leaves must not be inference tensors, or the next
    training step (stage 1 after write_samples, a test after a chat) fails in backward."""
    model = build(tmp_path, "llama", lora=False)
    with torch.inference_mode():
        assert Decoder.for_model(model.causal_lm, batch=1, capacity=4).fused[0] is not None
    embeds = torch.randn(1, 3, model.causal_lm.config.hidden_size, requires_grad=True)
    model.causal_lm.model(inputs_embeds=embeds).last_hidden_state.sum().backward()
    assert embeds.grad is not None and not model.causal_lm.model.layers[0].self_attn.q_proj.weight.is_inference()


def test_weights_that_train_are_never_fused(tmp_path):
    """An optimizer holds trained weights, so they stay the tensors they are: unmerged LoRA layers, and a plain
    LLM whose weights train (a stage-0 LM sampled during training)."""
    trained = build(tmp_path / "plain", "llama", lora=False)
    trained.causal_lm.requires_grad_(True)
    with_lora = build(tmp_path / "lora", "llama", lora=True)
    for model in (trained, with_lora):
        weight = model.causal_lm.model.layers[0].self_attn.q_proj.weight
        decoder = Decoder.for_model(model.causal_lm, batch=1, capacity=4)
        assert decoder.fused == [None] * len(model.causal_lm.model.layers)
        assert model.causal_lm.model.layers[0].self_attn.q_proj.weight is weight


def test_unsupported_architectures_use_transformers_forward(tmp_path):
    model = build(tmp_path, "gpt2", lora=False)
    assert model.decoder(1, 8) is None
    with torch.inference_mode():
        assert _Rows(model, prompts(model), room=4).decoder is None


def test_rows_of_are_the_input_rows(model):
    ids = torch.tensor([model.vocab.image_id, model.vocab.eoi_id, model.vocab.code_start + 3, model.vocab.boi_id,
                        model.vocab.size - 1])
    torch.testing.assert_close(model.vocab.rows_of(ids), model.vocab.input_rows()[ids - model.vocab.first_id])


def test_merged_lora_gives_the_same_logits_and_cannot_be_saved(tmp_path):
    model = build(tmp_path / "parts", "llama", lora=True)
    ids = torch.tensor([[5, 6, 7, model.vocab.code_start + 1]])
    with torch.no_grad():
        before = model(ids).logits
        model.merge_lora()
        after = model(ids).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    assert not any("lora_" in name for name, _ in model.named_parameters())
    with pytest.raises(RuntimeError, match="merged"):
        model.save_pretrained(tmp_path / "saved")


def test_loading_for_inference_merges_the_adapter(tmp_path):
    model = build(tmp_path / "parts", "llama", lora=True)
    model.save_pretrained(tmp_path / "assistant")
    ids = torch.tensor([[5, 6, 7]])
    loaded = GlyphModel.from_pretrained(tmp_path / "assistant", merge_lora=True)
    assert loaded.lora_merged
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-4)
