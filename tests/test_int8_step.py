"""The one-call int8 decoding step (assistant/int8_step.py and its C kernel) against the PyTorch layers."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

import assistant.int8_step as int8_step
from assistant.decoder import Decoder
from assistant.int8 import int8_rows
from assistant.int8_step import Int8Step, kernel


@pytest.fixture
def fresh_kernel():
    """Forget the process's kernel before and after, so a test can build it under other conditions."""
    kernel.cache_clear()
    yield
    kernel.cache_clear()


def llama(seed: int = 0) -> LlamaForCausalLM:
    """Three layers, head width 16 (the kernel's vector width), grouped keys; every plain weight set to what int8
    rows give back, so the float layers compute exactly what the int8 kernel does."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval().requires_grad_(False)  # frozen, as an assistant's LLM is
    with torch.no_grad():
        for module in model.model.layers.modules():
            if type(module) is nn.Linear:
                packed = int8_rows(module.weight)
                module.weight.copy_(packed.values.float() * packed.scales.float()[:, None])
            elif "Norm" in type(module).__name__:
                module.weight.normal_(1.0, 0.2)  # not all ones: a norm weight applied in the wrong place shows
    return model


def run(model, int8: bool, steps: int = 5, keep_one_after: int | None = None,
        capacity: int = 4) -> tuple[list[torch.Tensor], Decoder]:
    """The final hidden states of a two-row prompt (the second row left-padded) and of `steps` decoding steps; the
    cache starts with `capacity` positions (too few, so it grows on the way); after `keep_one_after` steps only the
    first row goes on."""
    generator = torch.Generator().manual_seed(1)
    width = model.config.hidden_size
    states = []
    with torch.inference_mode():
        decoder = Decoder.for_model(model, batch=2, capacity=capacity, int8=int8)
        prompt_mask = torch.tensor([[True] * 6, [False, False] + [True] * 4])
        states.append(decoder(torch.randn(2, 6, width, generator=generator), prompt_mask))
        rows = 2
        for step in range(steps):
            if step == keep_one_after:
                decoder.keep_first(1)
                rows = 1
            states.append(decoder(torch.randn(rows, 1, width, generator=generator),
                                  torch.ones(rows, 1, dtype=torch.bool)))
    return states, decoder


def test_the_kernel_builds_on_this_machine(fresh_kernel):
    assert kernel() is not None, "the int8 decoding kernel did not build: is a C compiler (cc) installed?"


# The kernel widens int8 weights to floats with AVX-512 or AVX2 instructions, or in plain C on other CPUs: built
# here as this CPU allows, and again with those instructions turned off, as an older CPU builds it.
PRODUCTS = {"as built here": (), "AVX2": ("-mno-avx512f",), "plain C": ("-mno-avx512f", "-mno-avx2")}


@pytest.mark.parametrize("turned_off", PRODUCTS.values(), ids=PRODUCTS.keys())
def test_the_kernel_step_is_the_float_layers_arithmetic(fresh_kernel, monkeypatch, tmp_path, turned_off):
    monkeypatch.setattr(int8_step, "FLAGS", int8_step.FLAGS + turned_off)
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    model = llama()
    ours, decoder = run(model, int8=True)
    exact, _ = run(model, int8=False)
    assert isinstance(decoder._one_call_step, Int8Step)  # the steps ran in the kernel
    torch.testing.assert_close(ours[0], exact[0], rtol=0, atol=0)  # the prompt: PyTorch's float layers
    for step, (got, expected) in enumerate(zip(ours[1:], exact[1:])):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=f"step {step}")


@pytest.mark.parametrize("turned_off", PRODUCTS.values(), ids=PRODUCTS.keys())
def test_the_kernel_follows_a_cache_cut_to_its_first_row(fresh_kernel, monkeypatch, tmp_path, turned_off):
    """keep_first leaves the cache a view with the old rows' strides (a drawing's unconditional row dropped); the
    steps after it multiply one row, where the ones before multiplied two."""
    monkeypatch.setattr(int8_step, "FLAGS", int8_step.FLAGS + turned_off)
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    model = llama(seed=3)
    ours, decoder = run(model, int8=True, steps=6, keep_one_after=2, capacity=16)  # room for all: the view stays
    exact, _ = run(model, int8=False, steps=6, keep_one_after=2, capacity=16)
    assert isinstance(decoder._one_call_step, Int8Step) and not decoder.keys.is_contiguous()
    for got, expected in zip(ours, exact):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_layers_the_kernel_does_not_do_stay_in_pytorch():
    model = llama()
    with torch.inference_mode():
        biased = Decoder.for_model(model, batch=1, capacity=4, int8=True)
        model.model.layers[1].self_attn.o_proj.bias = nn.Parameter(torch.zeros(64))
        assert Int8Step.for_decoder(biased) is None
    model = llama().to(torch.bfloat16)
    with torch.inference_mode():
        assert Int8Step.for_decoder(Decoder.for_model(model, batch=1, capacity=4, int8=True)) is None
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32)  # heads fill 128, not 64
    wide_heads = LlamaForCausalLM(config).eval().requires_grad_(False)
    with torch.inference_mode():
        assert Int8Step.for_decoder(Decoder.for_model(wide_heads, batch=1, capacity=4, int8=True)) is None


def test_without_a_compiler_decoding_keeps_the_pytorch_step(fresh_kernel, monkeypatch, caplog):
    monkeypatch.setenv("CC", "no-such-compiler")
    model = llama()
    with caplog.at_level(logging.WARNING):
        ours, decoder = run(model, int8=True)
    assert decoder._one_call_step is None
    assert "no C compiler" in caplog.text and "install gcc" in caplog.text
    exact, _ = run(model, int8=False)
    for got, expected in zip(ours[1:], exact[1:]):  # the PyTorch int8 step: bf16 rows, so near, not equal
        assert torch.nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0) > 0.999


def test_a_source_that_does_not_compile_is_one_warning(fresh_kernel, monkeypatch, tmp_path, caplog):
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(int8_step, "SOURCE", broken)
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING):
        assert kernel() is None
    assert "could not build the int8 decoding kernel" in caplog.text
    assert not list((tmp_path / "cache" / "kernels").glob("*.so"))  # nothing half-written is left to load


def test_the_built_kernel_is_kept_for_later_processes(fresh_kernel, monkeypatch, tmp_path):
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    assert kernel() is not None
    built = list((tmp_path / "kernels").glob("int8_decode_step-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    kernel.cache_clear()
    assert kernel() is not None and built[0].stat().st_mtime_ns == stamp  # loaded, not compiled again
