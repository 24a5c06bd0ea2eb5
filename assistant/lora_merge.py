"""Fold a saved LoRA adapter straight into an LLM's linear weights, without wrapping the LLM in peft first.

    if plain_lora(adapter_dir):
        merge_saved_lora(language_model, adapter_dir)   # W += scaling · B @ A for every adapted linear

peft's own way, `PeftModel.from_pretrained(...).merge_and_unload()`, first builds a LoRA layer around each of
SmolLM2's 210 adapted linears and then merges them one by one, at every start of `glyph chat`, `serve` and
`ui`. The sum itself is a few small matmuls. This reads the adapter's safetensors file and adds each product
in place: loading the shipped assistant took 1.45-1.67 s instead of 1.85-2.28 s (2026-12-05, 2 cores).

Only the plain LoRA that Glyph trains takes this path: any adapter using a feature whose merge is more than
W += scaling · B @ A (DoRA, biases, per-module ranks, modules to save, ...) is left to peft (plain_lora says
no), and tests/test_lora_merge.py checks the result against peft's merge.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"
_PREFIX = "base_model.model."  # peft's saved keys: base_model.model.<module>.lora_A.weight
# Settings that change what a merge is. Any other value than these sends the adapter to peft.
_PLAIN = {"peft_type": "LORA", "use_dora": False, "bias": "none", "lora_bias": False, "fan_in_fan_out": False}
_UNSET = ("modules_to_save", "rank_pattern", "alpha_pattern", "layer_replication", "target_parameters",
          "trainable_token_indices", "alora_invocation_tokens", "use_bdlora", "use_qalora", "arrow_config")


def plain_lora(adapter_dir: str | Path) -> bool:
    """Is the adapter in `adapter_dir` a plain LoRA, one that merge_saved_lora folds exactly as peft would?"""
    config = _config(Path(adapter_dir))
    if config is None or not (Path(adapter_dir) / WEIGHTS_NAME).is_file():
        return False
    return all(config.get(key, value) == value for key, value in _PLAIN.items()) and \
        not any(config.get(key) for key in _UNSET)


def merge_saved_lora(model: nn.Module, adapter_dir: str | Path) -> int:
    """Add every adapted linear's LoRA product to its weight in place; returns how many were merged.

    Raises ValueError when the file names a module the model lacks or holds half a pair: an adapter saved for
    another model, which peft would refuse too."""
    adapter_dir = Path(adapter_dir)
    config = _config(adapter_dir)
    scaling = config["lora_alpha"] / (math.sqrt(config["r"]) if config.get("use_rslora") else config["r"])
    pairs = _pairs(load_file(adapter_dir / WEIGHTS_NAME), adapter_dir)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, (down, up) in pairs.items():
            linear = modules.get(name)
            if not isinstance(linear, nn.Linear):
                raise ValueError(f"{adapter_dir / WEIGHTS_NAME} adapts {name}, which this model has no linear "
                                 "layer for: the adapter was saved for another model")
            delta = (up.float() @ down.float()) * scaling  # in fp32, as peft computes it for fp32 weights
            linear.weight.add_(delta.to(linear.weight.dtype))
    return len(pairs)


def _config(adapter_dir: Path) -> dict | None:
    path = adapter_dir / CONFIG_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _pairs(tensors: dict[str, torch.Tensor], adapter_dir: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module name → (lora_A weight (r, in), lora_B weight (out, r)), checking every A has its B."""
    if not all(key.startswith(_PREFIX) for key in tensors):
        raise ValueError(f"{adapter_dir / WEIGHTS_NAME} does not hold peft's key names ({_PREFIX}...); "
                         "load it with peft (PeftModel.from_pretrained)")
    downs = {k[len(_PREFIX):-len(".lora_A.weight")]: v for k, v in tensors.items() if k.endswith(".lora_A.weight")}
    ups = {k[len(_PREFIX):-len(".lora_B.weight")]: v for k, v in tensors.items() if k.endswith(".lora_B.weight")}
    if downs.keys() != ups.keys() or len(downs) + len(ups) != len(tensors):
        raise ValueError(f"{adapter_dir / WEIGHTS_NAME} holds tensors other than LoRA A/B pairs; "
                         "load it with peft (PeftModel.from_pretrained)")
    return {name: (downs[name], ups[name]) for name in downs}
