"""Int8 weight-only decoding (assistant/int8.py): the packing, the product, its cache, and the decoder on it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from test_decoder import build, prompts
from torch import nn

from assistant.decoder import Decoder
from assistant.generation import _Rows
from assistant.int8 import EXACT_ROWS, INT8_MAX_ROWS, cached_int8_rows, int8_head, int8_linear, int8_rows


def test_each_row_is_rounded_to_its_own_scale():
    weight = torch.randn(8, 32, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 1, 8)[:, None]
    packed = int8_rows(weight)
    assert packed.values.dtype == torch.int8 and packed.scales.shape == (8,)
    scales = weight.abs().amax(dim=1) / 127
    torch.testing.assert_close(packed.scales.float(), scales, rtol=1e-2, atol=0)  # bf16 scales
    error = (packed.values.float() * scales[:, None] - weight).abs()
    assert bool((error <= scales[:, None] / 2 + 1e-7).all())  # rounding: half a step at most, in every row
    assert bool((packed.values.abs().amax(dim=1) == 127).all())  # each row's largest weight uses the full range


def test_int8_linear_is_the_float_product_within_its_rounding():
    generator = torch.Generator().manual_seed(1)
    weight, bias = torch.randn(96, 64, generator=generator), torch.randn(96, generator=generator)
    for x in (torch.randn(1, 64, generator=generator), torch.randn(2, 5, 64, generator=generator)):
        ours, exact = int8_linear(x, int8_rows(weight), bias), F.linear(x, weight, bias)
        assert ours.dtype == x.dtype and ours.shape == exact.shape
        assert F.cosine_similarity(ours.flatten(), exact.flatten(), dim=0) > 0.999
        assert (ours - exact).abs().max() < 0.05 * exact.abs().max()


def test_an_int8_head_keeps_the_float_models_choice():
    """With rows whose logits lie close together, plain int8 rows pick another top logit than the float weight
    for some inputs; int8_head recomputes its top candidates from the float rows and picks the float one."""
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(1, 64, generator=generator) + 0.1 * torch.randn(500, 64, generator=generator)
    bias = 0.01 * torch.randn(500, generator=generator)
    x = torch.randn(200, 64, generator=generator)
    exact, packed = F.linear(x, weight, bias), int8_rows(weight)
    assert bool((int8_linear(x, packed, bias).argmax(-1) != exact.argmax(-1)).any())  # plain int8 flips some
    ours = int8_head(x, packed, weight, bias)
    assert torch.equal(ours.argmax(-1), exact.argmax(-1))
    top = exact.topk(EXACT_ROWS // 4, dim=-1).indices  # the float model's best candidates carry its values
    torch.testing.assert_close(ours.gather(-1, top), exact.gather(-1, top))
    assert int8_head(x.view(4, 50, 64), packed, weight, bias).shape == (4, 50, 500)


def test_the_packed_copy_is_kept_until_its_weight_changes():
    layer = nn.Linear(16, 8)
    first = cached_int8_rows(layer, "weight", layer.weight)
    assert cached_int8_rows(layer, "weight", layer.weight) is first
    with torch.no_grad():
        layer.weight.mul_(2)  # an optimizer step, a LoRA merge: in place
    second = cached_int8_rows(layer, "weight", layer.weight)
    assert second is not first
    torch.testing.assert_close(second.scales.float(), 2 * first.scales.float())
    layer.to(torch.bfloat16)  # a cast: new storage
    assert cached_int8_rows(layer, "weight", layer.weight) is not second
    assert "_glyph_int8" not in layer.state_dict() and not any("int8" in n for n, _ in layer.named_buffers())


def last_states(model, int8: bool, steps: int = 4) -> list[torch.Tensor]:
    model.int8_decoding = int8
    try:
        with torch.inference_mode():
            rows = _Rows(model, prompts(model), room=steps)
            states = [rows.last]
            for step in range(steps):
                rows.feed(torch.tensor([5 + step, 6, model.vocab.code_start + step]))
                states.append(rows.last)
            return [*states, rows.text_logits()]
    finally:
        model.int8_decoding = False


def test_int8_decoding_follows_the_float_model(tmp_path):
    model = build(tmp_path, "llama", lora=True)
    model.merge_lora()
    for ours, exact in zip(last_states(model, True), last_states(model, False)):
        assert F.cosine_similarity(ours.flatten(), exact.flatten(), dim=0) > 0.995
    for layer in model.causal_lm.model.layers:  # every plain weight was read as int8, the text head too
        assert set(layer.self_attn._glyph_int8) == {"qkv"} and set(layer.mlp._glyph_int8) == {"gate_up"}
        assert "weight" in layer.self_attn.o_proj._glyph_int8 and "weight" in layer.mlp.down_proj._glyph_int8
    assert "text head" in model.causal_lm.model._glyph_int8


def test_a_prompt_runs_in_float_and_decoding_steps_in_int8(tmp_path):
    """A prompt (3 rows × several positions, more than INT8_MAX_ROWS) is arithmetic-bound: it runs on the float
    weights and gives the float model's states exactly; a step of 3 rows reads the weights as int8."""
    model = build(tmp_path, "llama", lora=True)
    model.merge_lora()
    ours, exact = last_states(model, True), last_states(model, False)
    longest = max(prompt.input_ids.shape[1] for prompt in prompts(model))
    assert 3 <= INT8_MAX_ROWS < 3 * longest  # the padded prompt is 3 × longest rows
    torch.testing.assert_close(ours[0], exact[0], rtol=0, atol=0)
    assert not torch.equal(ours[1], exact[1])


def test_unmerged_lora_layers_are_left_to_peft(tmp_path):
    """LoRA layers add their own low-rank term: they run as they are, int8 or not, and give the float states."""
    model = build(tmp_path, "llama", lora=True)
    for ours, exact in zip(last_states(model, True)[:-1], last_states(model, False)[:-1]):
        torch.testing.assert_close(ours, exact, atol=1e-5, rtol=1e-4)
    with torch.inference_mode():
        assert Decoder.for_model(model.causal_lm, batch=1, capacity=4, int8=True).fused[0] is None
