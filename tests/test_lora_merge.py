"""Folding a saved LoRA adapter into the LLM without peft's wrapper: the same weights as peft's own merge."""
from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

from assistant.lora_merge import WEIGHTS_NAME, merge_saved_lora, plain_lora


def tiny_llm(seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(config).eval()


def saved_adapter(directory, **options):
    """A LoRA adapter with random B (a fresh one is all zeros, which any merge gets right), saved by peft."""
    model = get_peft_model(tiny_llm(), LoraConfig(target_modules="all-linear", lora_dropout=0.0, **options))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.2, generator=torch.Generator().manual_seed(3))
    model.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("options", [{"r": 4, "lora_alpha": 8}, {"r": 8, "lora_alpha": 16, "use_rslora": True}],
                         ids=["lora", "rslora"])
def test_the_merge_gives_peft_s_merged_weights(tmp_path, options):
    adapter = saved_adapter(tmp_path / "adapter", **options)
    assert plain_lora(adapter)
    ours = tiny_llm()
    assert merge_saved_lora(ours, adapter) == 2 * 7  # q, k, v, o, gate, up, down in each of two layers
    peft_s = PeftModel.from_pretrained(tiny_llm(), adapter).merge_and_unload()
    theirs = dict(peft_s.named_parameters())
    for name, weight in ours.named_parameters():
        torch.testing.assert_close(weight, theirs[name], atol=1e-6, rtol=1e-5)
    assert not torch.equal(ours.model.layers[0].mlp.up_proj.weight, tiny_llm().model.layers[0].mlp.up_proj.weight)


def test_adapters_with_more_than_a_plain_product_are_left_to_peft(tmp_path):
    assert not plain_lora(saved_adapter(tmp_path / "dora", r=4, lora_alpha=8, use_dora=True))
    assert not plain_lora(saved_adapter(tmp_path / "ranks", r=4, lora_alpha=8, rank_pattern={"q_proj": 2}))
    assert not plain_lora(tmp_path / "missing")


def test_an_adapter_for_another_model_is_refused_by_name(tmp_path):
    adapter = saved_adapter(tmp_path / "adapter", r=4, lora_alpha=8)
    with pytest.raises(ValueError, match=r"adapter_model\.safetensors adapts model\.layers\.1\..*another model"):
        merge_saved_lora(tiny_llm(layers=1), adapter)
    tensors = load_file(adapter / WEIGHTS_NAME)
    save_file({k: v for k, v in tensors.items() if "lora_B" not in k or "layers.0.self_attn.q_proj" not in k},
              adapter / WEIGHTS_NAME)
    with pytest.raises(ValueError, match="other than LoRA A/B pairs"):
        merge_saved_lora(tiny_llm(), adapter)
