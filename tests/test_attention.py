"""training.attention: the grouped-query attention glyph train uses on a CPU gives SDPA's outputs and gradients."""
import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from training.attention import NAME, grouped_attention, use_grouped_attention


def twins() -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    """The same tiny grouped-query Llama twice (6 query heads over 2 key/value heads): SDPA, then grouped."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, attn_implementation="sdpa")
    sdpa = LlamaForCausalLM(config)
    grouped = LlamaForCausalLM(copy.deepcopy(config))
    grouped.load_state_dict(sdpa.state_dict())
    use_grouped_attention(grouped)
    return sdpa, grouped


MASKS = {"none": None, "right padding": torch.tensor([[1] * 10, [1] * 7 + [0] * 3, [1] * 10]),
         "left padding": torch.tensor([[1] * 10, [0] * 3 + [1] * 7, [0] * 1 + [1] * 9])}


@pytest.mark.parametrize("padding", list(MASKS))
def test_same_logits_and_gradients_as_sdpa_where_tokens_are_real(padding):
    sdpa, grouped = twins()
    assert sdpa.config._attn_implementation == "sdpa" and grouped.config._attn_implementation == NAME
    ids = torch.randint(0, 100, (3, 10), generator=torch.Generator().manual_seed(1))
    mask = MASKS[padding]
    real = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
    for model in (sdpa, grouped):
        logits = model(ids, attention_mask=mask).logits
        logits[real].square().mean().backward()
        model.real_logits = logits[real].detach()
    torch.testing.assert_close(grouped.real_logits, sdpa.real_logits, atol=1e-5, rtol=1e-5)
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        expected = getattr(sdpa.model.layers[0].self_attn, name).weight.grad
        got = getattr(grouped.model.layers[0].self_attn, name).weight.grad
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_a_row_with_nothing_to_attend_stays_finite():
    """Left padding's first rows see no key at all: uniform weights, not NaN (which would poison gradients)."""
    query, key, value = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    mask = torch.tensor([False, True, True])[None, None, None, :].expand(1, 1, 3, 3) & torch.ones(3, 3).tril().bool()
    out, _ = grouped_attention(torch.nn.Module(), query, key, value, mask, scaling=8 ** -0.5)
    assert out.shape == (1, 3, 4, 8) and torch.isfinite(out).all()


def test_refuses_dropout_and_additive_masks():
    """What it does not implement is said, not silently ignored."""
    query, key, value = torch.randn(1, 2, 3, 8), torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8)
    with pytest.raises(ValueError, match="dropout"):
        grouped_attention(torch.nn.Module(), query, key, value, None, scaling=1.0, dropout=0.1)
    with pytest.raises(ValueError, match="boolean mask"):
        grouped_attention(torch.nn.Module(), query, key, value, torch.zeros(1, 1, 3, 3), scaling=1.0)
