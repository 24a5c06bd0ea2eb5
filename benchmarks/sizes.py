"""Parameter counts of a benchmark config's parts from its shapes alone, as build_parts and assistant() make them.

    counts = parameter_counts(CONFIGS["llava-real"])     # {"vision tower": 303_...}, nothing built

A real-size config takes minutes and gigabytes to build, so its counts (and the floors benchmarks/floors.py
sets from them) are worked out here from the shapes. The tests check every formula against the parts built at
the tiny config's sizes, and the real-size LLM and vision tower built on the meta device (no memory).
"""
from __future__ import annotations

from assistant.image_vocab import SPECIALS  # <image>, <boi>, <eoi>
from benchmarks.parts import CLIP_EMBED_DIM, BenchConfig


def _linears(config: BenchConfig) -> list[tuple[int, int]]:
    """(in, out) of each linear of one Llama layer: q, k, v, o, gate, up, down."""
    hidden, inner = config.hidden_size, config.intermediate_size
    kv = config.kv_heads * (hidden // config.heads)
    return [(hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden),
            (hidden, inner), (hidden, inner), (inner, hidden)]


def layer_weights(config: BenchConfig, lora: bool = False) -> int:
    """The LLM's transformer layers (two RMSNorms and seven linears each, no biases), with LoRA's when apart."""
    per_layer = sum(i * o for i, o in _linears(config)) + 2 * config.hidden_size
    return config.layers * per_layer + (lora_weights(config) if lora else 0)


def lora_weights(config: BenchConfig) -> int:
    """LoRA on every linear of the layers (peft's "all-linear": not the head): r × (in + out) each."""
    return config.layers * sum(config.lora_r * (i + o) for i, o in _linears(config))


def vision_weights(config: BenchConfig) -> int:
    """open_clip's VisionTransformer: patch embedding (no bias), class and position embeddings, two LayerNorms
    around the blocks, the blocks (attention 4w² + 4w, MLP 8w² + 5w, two LayerNorms 4w), the projection."""
    width, grid = config.vision_width, config.image_size // config.patch_size
    blocks = config.vision_layers * (12 * width ** 2 + 13 * width)
    embeddings = 3 * config.patch_size ** 2 * width + width + (grid ** 2 + 1) * width
    return embeddings + 2 * width + blocks + 2 * width + width * CLIP_EMBED_DIM


def parameter_counts(config: BenchConfig) -> dict[str, int]:
    """Each part's parameters. LoRA is apart (training's view); inference merges it into the layers."""
    hidden, vision = config.hidden_size, config.vision_width
    embedding = config.vocab_size * hidden
    counts = {"vision tower": vision_weights(config),
              "projector": vision * hidden + hidden + hidden * hidden + hidden,  # mlp2x_gelu: Linear, GELU, Linear
              "LLM layers": layer_weights(config),
              "LLM embedding": embedding,
              "LLM head": 0 if config.tied else embedding,
              "LLM final norm": hidden,
              # <image>/<boi>/<eoi> input rows, the code map (code_dim → H → H), the new output rows
              "new vocabulary rows": SPECIALS * hidden + config.code_dim * hidden + hidden + hidden * hidden + hidden
              + (SPECIALS + config.codebook_size) * hidden,
              "LoRA": lora_weights(config)}
    counts["LLM in all"] = sum(counts[k] for k in ("LLM layers", "LLM embedding", "LLM head", "LLM final norm"))
    return counts
