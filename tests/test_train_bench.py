"""benchmarks.train_smollm2 --lora-from: stage 2 adapting only the upper layers, so backward stops below them."""
from __future__ import annotations

import pytest
import torch

from benchmarks.train_smollm2 import glyph_model, main

pytestmark = pytest.mark.slow  # builds the real SmolLM2 with the shipped scene CLIP and VQ (~10 s)


def test_lora_from_adapts_only_the_upper_layers_and_backward_never_reaches_the_lower(tmp_path):
    model = glyph_model(2, lora_from=20)
    layers = model.causal_lm.model.layers
    adapted = {int(name.split("layers.")[1].split(".")[0]) for name, p in model.language_model.named_parameters()
               if "lora_" in name and p.requires_grad}
    assert adapted == set(range(20, len(layers)))
    assert not any(p.requires_grad for p in model.projector.parameters())
    assert model.vocab.output.requires_grad  # the head's image rows still train
    reached = []
    layers[19].register_full_backward_hook(lambda *args: reached.append(19))
    layers[20].register_full_backward_hook(lambda *args: reached.append(20))
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    logits = model.causal_lm(input_ids=ids).logits
    logits[0, -1].logsumexp(-1).backward()
    assert reached == [20]


def test_lora_from_beyond_the_layers_is_one_clear_error(capsys):
    assert main(["--lora-from", "30"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lora-from 30" in err and "0-29" in err
