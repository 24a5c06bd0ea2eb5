"""Physical floors: the least time the work can take on this machine, whatever the code.

- Decoding one token reads every weight of the LLM's layers once, plus the head rows the step may sample
  (all text rows, or the K code rows while drawing): floor = bytes / memory bandwidth. Guidance's second row
  reads the same weights, so a guided image has the same floor as an unguided one.
- A training step does the forward matmuls (2 FLOPs per weight per token), the backward ones for the
  activations' gradients (2 more: the gradient reaches the projector through every frozen layer), LoRA's
  weight gradients, attention's two T×T products, and the head only where a label is:
  floor = FLOPs / matmul peak.
"""
from __future__ import annotations

from assistant.model import GlyphModel


def layer_weights(glyph: GlyphModel) -> int:
    """Weights of the LLM's transformer layers (with LoRA's): what every token multiplies through."""
    layers = glyph.causal_lm.model.layers
    return sum(p.numel() for p in layers.parameters())


def lora_weights(glyph: GlyphModel) -> int:
    return sum(p.numel() for n, p in glyph.causal_lm.named_parameters() if "lora_" in n)


def decode_seconds(glyph: GlyphModel, head_rows: int, bytes_per_weight: int, bandwidth: float) -> float:
    hidden = glyph.causal_lm.config.hidden_size
    return (layer_weights(glyph) + head_rows * hidden) * bytes_per_weight / bandwidth


def text_token_seconds(glyph: GlyphModel, bytes_per_weight: int, bandwidth: float) -> float:
    return decode_seconds(glyph, glyph.vocab.first_id, bytes_per_weight, bandwidth)


def image_seconds(glyph: GlyphModel, bytes_per_weight: int, bandwidth: float) -> float:
    tokens = glyph.layout.tokens_per_image
    return tokens * decode_seconds(glyph, glyph.vocab.codebook_size, bytes_per_weight, bandwidth)


def training_step_flops(glyph: GlyphModel, batch: int, length: int, supervised: int) -> float:
    """FLOPs of one step over batch × length tokens, `supervised` of them with labels (all rows together)."""
    config = glyph.causal_lm.config
    tokens = batch * length
    frozen = layer_weights(glyph) - lora_weights(glyph)
    dense = 4 * frozen * tokens + 6 * lora_weights(glyph) * tokens
    attention = 3 * 4 * config.num_hidden_layers * batch * length ** 2 * config.hidden_size
    head = 6 * supervised * glyph.vocab.size * config.hidden_size
    return dense + attention + head
