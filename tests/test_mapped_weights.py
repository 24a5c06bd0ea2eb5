"""assistant.mapped_weights and the loaders built on it: a cached LLM copy read without from_pretrained, and
projections that lie back to back in it fused without a copy."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from assistant.decoder import fuse_projections
from assistant.llm import ModelLoadError, load_saved_copy, save_copy
from assistant.mapped_weights import UnreadableWeights, mapped_tensors
from tests.test_llm import tiny_tokenizer


def test_mapped_tensors_equal_safetensors_own_reading_and_share_one_storage(tmp_path):
    tensors = {"a.weight": torch.randn(3, 4), "b.half": torch.randn(5).bfloat16(),
               "c.ids": torch.arange(7), "d.mask": torch.tensor([True, False, True]), "e.empty": torch.zeros(0, 2)}
    path = tmp_path / "w.safetensors"
    save_file(tensors, path)
    mapped = mapped_tensors(path)
    assert mapped.keys() == tensors.keys()
    for name, tensor in load_file(path).items():
        assert mapped[name].dtype == tensor.dtype and torch.equal(mapped[name], tensor)
    assert len({t.untyped_storage().data_ptr() for t in mapped.values()}) == 1


def test_writing_to_a_mapped_tensor_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(4, 4)}, path)
    mapped_tensors(path)["w"].zero_()
    assert torch.equal(load_file(path)["w"], torch.ones(4, 4))


@pytest.mark.parametrize("damage", ["short", "header", "data"])
def test_a_damaged_file_is_one_error_naming_it(tmp_path, damage):
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(64, 64)}, path)
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    path.write_bytes({"short": data[:5], "header": data[:header_end - 10], "data": data[:header_end + 100]}[damage])
    with pytest.raises(UnreadableWeights, match=str(path)):
        mapped_tensors(path)


def tied_llama(tmp_path):
    """A random tiny Llama with tied embeddings and its tokenizer, written by save_copy as the caches are."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=None)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.max_new_tokens = 7  # something of its own, to see it come back
    copy = tmp_path / "copy"
    assert save_copy(model, tokenizer, copy, "the test model", "write it again")
    return model, copy


def test_a_saved_copy_loads_as_from_pretrained_loads_it(tmp_path):
    model, copy = tied_llama(tmp_path)
    loaded, tokenizer = load_saved_copy(copy)
    reference = AutoModelForCausalLM.from_pretrained(copy)
    ids = torch.tensor([[1, 5, 2, 7, 3]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, reference(ids).logits, rtol=0, atol=0)
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()  # still tied
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.generation_config.max_new_tokens == 7
    assert tokenizer.pad_token == tokenizer.eos_token  # load_language_model's padding rule
    assert tokenizer("a red circle")["input_ids"] == AutoTokenizer.from_pretrained(copy)("a red circle")["input_ids"]


@pytest.mark.parametrize("change", ["shape", "extra", "missing"])
def test_a_copy_that_does_not_fit_its_config_is_refused(tmp_path, change):
    _, copy = tied_llama(tmp_path)
    weights = copy / "model.safetensors"
    state = load_file(weights)
    if change == "shape":
        state["model.norm.weight"] = torch.ones(16)
    elif change == "extra":
        state["model.layers.9.mlp.up_proj.weight"] = torch.ones(2, 2)
    else:
        del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, weights)
    with pytest.raises(ModelLoadError, match="delete"):
        load_saved_copy(copy)


def test_gate_and_up_side_by_side_in_a_mapped_copy_are_fused_without_a_copy(tmp_path):
    _, copy = tied_llama(tmp_path)
    layer = load_saved_copy(copy)[0].model.layers[0]
    names = sorted(json.loads((copy / "model.safetensors").read_bytes()[8:8 + int.from_bytes(
        (copy / "model.safetensors").read_bytes()[:8], "little")]))
    assert names.index("model.layers.0.mlp.up_proj.weight") == names.index("model.layers.0.mlp.gate_proj.weight") + 1
    gate, up = layer.mlp.gate_proj.weight.clone(), layer.mlp.up_proj.weight.clone()
    fused = fuse_projections(layer)
    assert fused.gate_up.data_ptr() == layer.mlp.gate_proj.weight.data_ptr()  # a view of the mapped file
    assert torch.equal(fused.gate_up, torch.cat([gate, up]))
    q, k, v = (getattr(layer.self_attn, name).weight for name in ("q_proj", "k_proj", "v_proj"))
    assert torch.equal(fused.qkv, torch.cat([q, k, v]))  # not side by side in the file: stacked by a copy
    assert q.data_ptr() == fused.qkv.data_ptr() and fuse_projections(layer) is fused


def test_a_copy_loaded_during_a_reply_has_ordinary_weights(tmp_path):
    """GlyphModel.llm_alone loads SmolLM2 alone in the middle of a reply, under torch.inference_mode: inference
    tensors as weights would break what reads their version (assistant/prompt_reuse.py) or trains them."""
    _, copy = tied_llama(tmp_path)
    with torch.inference_mode():
        model, _ = load_saved_copy(copy)
    assert not any(p.is_inference() for p in model.parameters())
    assert all(p._version >= 0 for p in model.parameters())  # raises for an inference tensor
