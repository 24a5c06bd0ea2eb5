"""The merged LLM kept in the cache (assistant/merged_llm.py): later loads read it, with the same outputs as a
fresh merge; a new adapter gets its own copy; a broken copy or an unwritable cache costs only the merge."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_decoder import build

import assistant.merged_llm as merged_llm
from assistant.lora_merge import WEIGHTS_NAME
from assistant.model import ADAPTER_DIR, GlyphModel

IDS = torch.tensor([[5, 6, 7, 9]])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "merged"


@pytest.fixture
def saved(tmp_path):
    """(the assistant with a separate LoRA adapter, the directory it is saved in)"""
    model = build(tmp_path / "parts", "llama", lora=True)
    return model, model.save_pretrained(tmp_path / "assistant")


def logits(model: GlyphModel) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def refuse_to_merge(*_args, **_kwargs):
    raise AssertionError("merged the adapter again although a cached copy was there")


def test_a_second_load_reads_the_merged_copy(cache, saved, monkeypatch):
    model, directory = saved
    first = GlyphModel.from_pretrained(directory, merge_lora=True)
    assert first.lora_merged and len(list(cache.iterdir())) == 1
    monkeypatch.setattr(merged_llm, "merge_saved_lora", refuse_to_merge)
    second = GlyphModel.from_pretrained(directory, merge_lora=True)
    assert second.lora_merged
    torch.testing.assert_close(logits(second), logits(model), atol=1e-5, rtol=1e-4)
    assert second.tokenizer.get_vocab() == first.tokenizer.get_vocab()  # the image tokens at the same ids


def test_a_retrained_adapter_gets_a_copy_of_its_own_and_old_copies_go(cache, saved, tmp_path):
    model, directory = saved
    GlyphModel.from_pretrained(directory, merge_lora=True)
    for seed in (5, 6):  # train on: new B matrices, saved over the old adapter
        with torch.no_grad():
            for name, parameter in model.language_model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.1, generator=torch.Generator().manual_seed(seed))
        model.save_pretrained(directory)
        loaded = GlyphModel.from_pretrained(directory, merge_lora=True)
        torch.testing.assert_close(logits(loaded), logits(model), atol=1e-5, rtol=1e-4)
    assert len(list(cache.iterdir())) == merged_llm.KEEP  # three adapters merged, the oldest copy evicted


def test_an_unreadable_copy_is_merged_again(cache, saved, capsys):
    model, directory = saved
    GlyphModel.from_pretrained(directory, merge_lora=True)
    (copy,) = cache.iterdir()
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, say by a full disk or a crash of the copier
    loaded = GlyphModel.from_pretrained(directory, merge_lora=True)
    assert "could not be read" in capsys.readouterr().out
    torch.testing.assert_close(logits(loaded), logits(model), atol=1e-5, rtol=1e-4)
    assert load_file(weights)  # written again, whole


def test_a_cache_that_cannot_be_written_still_merges(tmp_path, saved, monkeypatch, capsys):
    model, directory = saved
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv("GLYPH_CACHE", str(blocker / "cache"))
    loaded = GlyphModel.from_pretrained(directory, merge_lora=True)
    assert "could not cache the merged LLM" in capsys.readouterr().out
    torch.testing.assert_close(logits(loaded), logits(model), atol=1e-5, rtol=1e-4)


def test_an_adapter_for_another_model_is_still_refused(cache, saved):
    _, directory = saved
    adapter = directory / ADAPTER_DIR / WEIGHTS_NAME
    tensors = load_file(adapter)
    save_file({k.replace("layers.0.", "layers.7."): v for k, v in tensors.items()}, adapter)
    with pytest.raises(ValueError, match="another model"):
        GlyphModel.from_pretrained(directory, merge_lora=True)
    assert not cache.exists() or not any(cache.iterdir())
