"""Physical floors: the least time the work can take on a machine, whatever the code.

    python -m benchmarks.floors --config llava-real      # the floors on paper at an H100's and an H200's speeds

- Decoding one token reads every weight of the LLM's layers once, plus the head rows the step may sample
  (all text rows, or the K code rows while drawing): floor = bytes / memory bandwidth. Guidance's second row
  reads the same weights, so a guided image has the same floor as an unguided one.
- A training step does the forward matmuls (2 FLOPs per weight per token), the backward ones for the
  activations' gradients (2 more: the gradient reaches the projector through every frozen layer), LoRA's
  weight gradients, attention's two T×T products, and the head only where a label is:
  floor = FLOPs / matmul peak.

The formulas read a Shapes: taken from a built model (`of_model`, what bench measures against) or from a
config's shapes alone (`of_config`, for sizes too big to build here). The tests check that both agree.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from benchmarks import sizes
from benchmarks.parts import CONFIGS, BenchConfig


@dataclass(frozen=True)
class Shapes:
    """What the floors depend on."""
    hidden: int
    layers: int
    layer_weights: int  # the LLM's transformer layers, with LoRA's when it is apart: what every token reads
    lora_weights: int  # 0 when there is no LoRA apart (none, or merged)
    text_rows: int  # the LLM's own tokens: the head rows a text step may sample (the image vocabulary's first id)
    codebook: int  # the K code rows a drawing step may sample
    vocab: int  # the whole vocabulary: text, <image>, <boi>, <eoi>, codes


def of_model(glyph) -> Shapes:
    """The shapes of a built GlyphModel."""
    llm = glyph.causal_lm
    return Shapes(hidden=llm.config.hidden_size, layers=llm.config.num_hidden_layers,
                  layer_weights=sum(p.numel() for p in llm.model.layers.parameters()),
                  lora_weights=sum(p.numel() for n, p in llm.named_parameters() if "lora_" in n),
                  text_rows=glyph.vocab.first_id, codebook=glyph.vocab.codebook_size, vocab=glyph.vocab.size)


def of_config(config: BenchConfig, lora: bool) -> Shapes:
    """The shapes assistant() builds at `config`, with LoRA apart (training) or not (merged, or none)."""
    return Shapes(hidden=config.hidden_size, layers=config.layers, layer_weights=sizes.layer_weights(config, lora),
                  lora_weights=sizes.lora_weights(config) if lora else 0, text_rows=config.vocab_size,
                  codebook=config.codebook_size, vocab=config.vocab_size + sizes.SPECIALS + config.codebook_size)


def decode_bytes(shapes: Shapes, head_rows: int, bytes_per_weight: float) -> float:
    """Bytes one decoding step reads: the layers, and `head_rows` rows of the head."""
    return (shapes.layer_weights + head_rows * shapes.hidden) * bytes_per_weight


def decode_seconds(shapes: Shapes, head_rows: int, bytes_per_weight: float, bandwidth: float) -> float:
    return decode_bytes(shapes, head_rows, bytes_per_weight) / bandwidth


def text_token_seconds(shapes: Shapes, bytes_per_weight: float, bandwidth: float) -> float:
    return decode_seconds(shapes, shapes.text_rows, bytes_per_weight, bandwidth)


def image_seconds(shapes: Shapes, tokens: int, bytes_per_weight: float, bandwidth: float) -> float:
    """A drawing of `tokens` codes (guided or not: the second row reads the same weights)."""
    return tokens * decode_seconds(shapes, shapes.codebook, bytes_per_weight, bandwidth)


def training_step_flops(shapes: Shapes, batch: int, length: int, supervised: int) -> float:
    """FLOPs of one step over batch × length tokens, `supervised` of them with labels (all rows together)."""
    tokens = batch * length
    frozen = shapes.layer_weights - shapes.lora_weights
    dense = 4 * frozen * tokens + 6 * shapes.lora_weights * tokens
    attention = 3 * 4 * shapes.layers * batch * length ** 2 * shapes.hidden
    head = 6 * supervised * shapes.vocab * shapes.hidden
    return dense + attention + head


# ---- on paper: the floors of a config at a GPU's published speeds -------------------------------------------

# Published peaks: HBM bandwidth and dense bf16 tensor-core FLOP/s (no sparsity), SXM parts.
MACHINES = {"H100": (3.35e12, 990e12), "H200": (4.8e12, 990e12)}
DRAWINGS = (256, 576)  # bench's larger drawing; LlamaGen's and Janus' 384 px at 16× downsampling (24 × 24 codes)


def paper_table(config: BenchConfig, batch: int, supervised: dict[int, int]) -> list[str]:
    """Markdown: the config's parameters, then its floors with bf16 weights (2 bytes each) on each of MACHINES.
    `supervised`: labelled tokens per training step, by stage."""
    lines = ["| part | parameters | bf16 bytes |", "|---|---|---|"]
    lines += [f"| {part} | {count:,} | {2 * count / 1e9:.3f} GB |"
              for part, count in sizes.parameter_counts(config).items()]
    merged, names = of_config(config, lora=False), list(MACHINES)
    lines += ["", "| floor, bf16 weights | " + " | ".join(f"{n} ({b / 1e12:g} TB/s, {f / 1e12:g} TFLOP/s)"
                                                        for n, (b, f) in MACHINES.items()) + " |",
              "|---|" + "---|" * len(names)]

    def row(label: str, value) -> str:
        return f"| {label} | " + " | ".join(value(*MACHINES[n]) for n in names) + " |"

    for what, rows in (("text token", merged.text_rows), ("drawn code", merged.codebook)):
        read = decode_bytes(merged, rows, 2)
        lines.append(row(f"read per {what}: the layers and {rows:,} head rows",
                         lambda b, f, x=read: f"{x / 1e9:.3f} GB"))
    lines.append(row("text decode", lambda b, f: f"{text_token_seconds(merged, 2, b) * 1e3:.3f} ms/token "
                                                  f"({1 / text_token_seconds(merged, 2, b):,.0f} tokens/s)"))
    for tokens in DRAWINGS:
        lines.append(row(f"a drawing of {tokens} codes (with or without CFG)",
                         lambda b, f, t=tokens: f"{image_seconds(merged, t, 2, b):.3f} s"))
    for stage, labelled in supervised.items():
        flops = training_step_flops(of_config(config, lora=stage == 2), batch, config.train_length, labelled)
        lines.append(row(f"stage {stage} step, {batch} × {config.train_length} tokens ({flops / 1e12:.1f} TFLOP)",
                         lambda b, f, x=flops: f"{x / f * 1e3:.1f} ms ({batch * f / x:,.0f} samples/s)"))
    return lines


def main(argv: list[str] | None = None) -> int:
    from benchmarks.workloads import BATCH, supervised_tokens

    p = argparse.ArgumentParser(prog="python -m benchmarks.floors", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="llava-real", choices=sorted(CONFIGS))
    args = p.parse_args(argv)
    config = CONFIGS[args.config].validate()
    supervised = {stage: supervised_tokens(config.slots, stage, config.train_length) for stage in (1, 2)}
    print("\n".join(paper_table(config, BATCH, supervised)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
