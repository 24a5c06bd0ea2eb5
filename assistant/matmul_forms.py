"""The fastest way to multiply a few rows by a large weight on this CPU: decoding's hot product.

    form = fastest_form([layer.mlp.down_proj.weight for layer in layers])   # "linear", "few rows" or "onednn"
    y = product(form, x, weight, bias)                  # = F.linear(x, weight, bias), in that form

Why: a decoding step multiplies one or two rows by every weight of the model, so it should read the weights
at the memory's speed. F.linear's matrix-vector path does not everywhere: on AMD EPYC CPUs it runs on one
core, at about 14 GB/s of fp32 weights where two cores read 32 GB/s. Two other forms give the same result:

- "few rows": weight @ xᵀ with at least two rows, a matrix product that some BLAS builds run faster;
- "onednn": oneDNN's inner product, the primitive torch.compile's CPU backend calls for linear layers
  (`mkldnn._linear_pointwise`), which splits the weight's rows over the cores: about 1.5-2× F.linear on those
  CPUs. It has no backward, so it is used only where no gradient is recorded (generation runs in
  inference mode), and only on rows of the weight's dtype; elsewhere the product falls back to F.linear.

Which is fastest depends on the CPU, the BLAS build, the dtype (oneDNN has no bf16 kernel on an AVX2-only
CPU) and the weight's shape (oneDNN's fixed cost of ~25 µs a call loses on small weights), so it is measured
once per machine, shape and dtype, on the model's own weights.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from assistant.machine import machine_key, remembered

FORMS = ("linear", "few rows", "onednn")
# Bytes of weights each form is timed over: more than a server CPU's caches hold, as a model's layers are.
SAMPLE_BYTES = 2 ** 26
MAX_CALLS = 100  # ... or at most this many products, for small weights
# A form must beat F.linear by this factor to be chosen: a near tie is timing noise, and F.linear is the plain path.
MARGIN = 0.8


def product(form: str, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., in) @ weight (out, in)ᵀ (+ bias) in the given form; the same values as F.linear."""
    # oneDNN's op takes one dtype and autocast does not cast for it (float rows, bf16 weights: training's samples)
    if form == "onednn" and x.dtype == weight.dtype and \
            not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    if form == "few rows":
        return few_rows(x, weight, bias)
    return F.linear(x, weight, bias)


def few_rows(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x @ weight.T (+ bias) as weight @ xᵀ over at least two rows: the "few rows" form."""
    *lead, width = x.shape
    flat = x.reshape(-1, width)  # (n, in)
    rows = flat.shape[0]
    if rows == 1:
        flat = flat.expand(2, width).contiguous()  # a real second row: a stride-0 view takes a slow path
    out = torch.mm(weight, flat.T).T  # (n', out)
    if rows == 1:
        out = out[:1]
    if bias is not None:
        out = out + bias
    return out.reshape(*lead, weight.shape[0])


_FASTEST: dict[tuple[tuple[int, ...], torch.dtype], str] = {}  # (shape, dtype) → form, for this process


def fastest_form(weights: Sequence[Tensor]) -> str:
    """The fastest of FORMS for one row times each of `weights` (CPU tensors of one shape and dtype), timed on
    them the first time this machine meets that shape and dtype with this many threads (assistant/machine.py
    keeps the answer, so a later process starts without timing: a third of a second for SmolLM2's shapes).

    Pass every weight of that shape that a decoding step reads (all the layers' gate/up weights, say): the
    timing then reads memory as decoding does, not from the CPU's caches (with 16 MB of weights an AMD EPYC
    timed from its cache and picked the slow form one start in three). It reads SAMPLE_BYTES of them."""
    key = (tuple(weights[0].shape), weights[0].dtype)
    if key not in _FASTEST:
        machine = machine_key("matmul form", *key, torch.get_num_threads())
        _FASTEST[key] = remembered("matmul_forms", machine, lambda: _time_forms(weights))
    return _FASTEST[key]


def _time_forms(weights: Sequence[Tensor]) -> str:
    x = torch.randn(1, weights[0].shape[1]).to(weights[0].dtype)
    forms = {name: functools.partial(product, name, x) for name in FORMS if _works(name, x, weights[0])}
    seconds = _best_seconds(forms, weights)
    fastest = min(seconds, key=seconds.get)
    return fastest if seconds[fastest] < MARGIN * seconds["linear"] else "linear"


def _works(form: str, x: Tensor, weight: Tensor) -> bool:
    """Does this form run here and give F.linear's values? (oneDNN may lack the op or a kernel for the dtype.)"""
    try:
        with torch.inference_mode():
            got = product(form, x, weight)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    expected = F.linear(x, weight).float()
    return got.shape == expected.shape and torch.allclose(got.float(), expected, rtol=1e-2, atol=1e-2)


def _about(weights: Sequence[Tensor], size: int) -> list[Tensor]:
    """About `size` bytes of the weights: the first ones when they hold more (timing them all would only slow the
    start), the list repeated when they hold less, up to 100 calls (enough for a timing above noise)."""
    sizes = [weight.numel() * weight.element_size() for weight in weights]
    if sum(sizes) < size:
        return list(weights) * max(1, min(-(-size // sum(sizes)), MAX_CALLS // len(weights)))
    total, count = 0, 0
    while total < size:
        total, count = total + sizes[count], count + 1
    return list(weights[:count])


def _best_seconds(forms: dict[str, Callable[[Tensor], Tensor]], weights: Sequence[Tensor]) -> dict[str, float]:
    best = dict.fromkeys(forms, float("inf"))
    weights = _about(weights, SAMPLE_BYTES)
    with torch.inference_mode():
        for _ in range(3):  # interleaved, best of three: a busy moment slows one pass, not one form
            for name, form in forms.items():
                started = time.perf_counter()
                for weight in weights:
                    form(weight)
                best[name] = min(best[name], time.perf_counter() - started)
    return best
