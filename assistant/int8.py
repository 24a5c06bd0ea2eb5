"""Int8 weight-only matrices for decoding: a quarter of fp32's bytes to read per token, the same activations.

    packed = int8_rows(weight)              # (out, in) float → int8 values and one scale per output row
    y = int8_linear(x, packed, bias)        # ≈ F.linear(x, weight, bias), x in any float dtype
    logits = int8_head(x, packed, weight)   # an output head: int8, its highest entries exact

Why: a decoding step multiplies one or two rows by every weight of the model, so its time is the time to
read those weights from memory. Int8 values read four times faster than fp32 (twice bf16), and per-row
symmetric scales keep each row's largest weight exact (the scheme of LLM.int8's vector-wise quantisation
and torchao's int8 weight-only). The product runs in PyTorch's own int8 weight kernel
(`aten._weight_int8pack_mm`), with the activations in bf16, its fast path even on an AVX2-only CPU: there, with
fp32 activations, the same kernel ran 5-50x slower (python -m benchmarks.int8_crossover, 2026-12-06, AMD
EPYC, 2 AVX2-only cores).

A product of many rows (a prompt's) is arithmetic, not reading weights, and there the float GEMM outruns the
int8 kernel, so products of more than INT8_MAX_ROWS rows stay in float (assistant/decoder.py). On SmolLM2's
shapes, 2 AVX2 cores, median of 20, fp32 GEMM against the int8 kernel, in ms:

    rows           1             8             16            64
    1536 × 576     0.109 / 0.084 0.460 / 0.359 0.645 / 0.366 1.01 / 3.15
    576 × 1536     0.102 / 0.049 0.272 / 0.183 0.362 / 0.374 1.16 / 2.15
    49152 × 576    10.1 / 3.37   22.7 / 8.60   24.6 / 17.2   48.8 / 71.7

An output head is where int8's rounding shows: the next token is chosen among logits that often differ by
less than that rounding (on the shipped assistant's captions, an int8 text head alone flipped 44 of 3,513
greedy tokens; every layer's weights in int8 with the head in float, 18). `int8_head` reads the head as int8
to find the top `EXACT_ROWS` candidates, then recomputes those from the float rows: the choice among them, and so
greedy decoding, is the float model's whenever its best token is among them.

`cached_int8_rows(owner, name, weight)` keeps one packed copy per weight on the module that owns it, made on
first use and made again when the weight's storage or contents change (a cast, a LoRA merge, a training step).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Int8Rows:
    values: Tensor  # (out, in) int8
    scales: Tensor  # (out,) bf16: row r of the weight ≈ values[r] * scales[r]
    source: tuple  # what it was made from: (data_ptr, shape, version) of the float weight


def int8_rows(weight: Tensor) -> Int8Rows:
    """Round each row to int8 with its own scale, max |w| / 127 (so the row's largest weight is exact)."""
    with torch.no_grad():
        rows = weight.detach().float()
        scales = rows.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
        values = torch.round(rows / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
    return Int8Rows(values, scales.to(torch.bfloat16), _source(weight))


def int8_linear(x: Tensor, packed: Int8Rows, bias: Tensor | None = None) -> Tensor:
    """x (..., in) @ weightᵀ (+ bias) → (..., out) in x's dtype; the product in bf16 with int8 weights."""
    *lead, width = x.shape
    out = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, width).to(torch.bfloat16), packed.values,
                                             packed.scales)
    out = out.to(x.dtype).reshape(*lead, packed.values.shape[0])
    return out if bias is None else out + bias


INT8_MAX_ROWS = 8  # products of more rows stay in float (see above): at 16 rows, 576 × 1536 is already even
EXACT_ROWS = 16  # candidates an int8 head recomputes in float: their float values are what sampling sees


def int8_head(x: Tensor, packed: Int8Rows, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., in) @ weightᵀ (+ bias) for an output head: int8 rows for every logit, then the EXACT_ROWS highest
    of each row of x recomputed from the float `weight` (which `packed` was made from)."""
    logits = int8_linear(x, packed, bias)
    top = logits.topk(min(EXACT_ROWS, logits.shape[-1]), dim=-1).indices  # (..., k)
    exact = (weight[top] @ x.to(weight.dtype).unsqueeze(-1)).squeeze(-1)  # (..., k, in) @ (..., in, 1)
    if bias is not None:
        exact = exact + bias[top]
    return logits.scatter(-1, top, exact.to(logits.dtype))


def cached_int8_rows(owner: nn.Module, name: str, weight: Tensor) -> Int8Rows:
    """`weight` packed as int8, kept on `owner` under `name` until the weight changes."""
    cache = owner.__dict__.setdefault("_glyph_int8", {})  # not a buffer: never saved, never moved by .to()
    packed = cache.get(name)
    if packed is None or packed.source != _source(weight):
        packed = cache[name] = int8_rows(weight)
    return packed


def _source(weight: Tensor) -> tuple:
    return weight.data_ptr(), tuple(weight.shape), weight.dtype, weight._version
