"""Where a text decoding step's wall time goes, Glyph on the bench's smollm2 config: the step timed whole, then
with its parts left out one after another, the variants alternated in one process, medians.

    .venv/bin/python -m benchmarks.decode_step [--fp32] [--context 600]   # about a minute; on quiet cores

A part's share is the difference between two rows: "products" (every matrix product of the layers: int8 with
--int8 decoding, the default here, else the float forms) are swapped for zeros of the right shape, then the
attention, then the RMS norms; what remains is everything else of the 30 layers (rotary embedding, the cache
writes, residual adds, the gate, Python). The output head is timed apart. Leaving a part out changes the values
that flow on, not the work the other parts do, so the rows still add up. These rows time the PyTorch layers; with
int8 decoding a step normally runs them in one call to a C kernel (assistant/int8_step.py), timed on its own row.

Why not torch.profiler (benchmarks/profile_step.py): it adds a few microseconds to every operator, and a
decoding step of this model runs hundreds of small ones, so it inflates the small ones several times over.
"""
from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch

import assistant.decoder as decoder
from assistant.generation import Prompt, _Rows
from benchmarks.measure import median, timed
from benchmarks.parts import CONFIGS, build_parts
from benchmarks.workloads import Pair

# The rows: each leaves out what the row before it did, and one part more (stand_ins).
LEFT_OUT = ("whole step", "without the products", "and without attention", "and without the norms")


def _zeros_like_product() -> callable:
    """A stand-in for a layer's matrix product: zeros of the product's shape, made once per shape."""
    made: dict[tuple, torch.Tensor] = {}

    def product(x: torch.Tensor, out: int) -> torch.Tensor:
        key = (tuple(x.shape), out)
        if key not in made:
            made[key] = x.new_zeros(*x.shape[:-1], out)
        return made[key]
    return product


def stand_ins(level: int) -> ExitStack:
    """Patches of the decoder for row `level` of LEFT_OUT (0: none)."""
    zeros = _zeros_like_product()
    stack = ExitStack()
    # the PyTorch layers, never the one-call int8 kernel (which does all of this in C)
    stack.enter_context(mock.patch.object(decoder.Decoder, "_int8_step", lambda self, embeds: None))
    if level >= 1:
        stack.enter_context(mock.patch.object(
            decoder.Decoder, "_linear", lambda self, module, x: zeros(x, module.out_features)))
        stack.enter_context(mock.patch.object(
            decoder.Decoder, "_fused", lambda self, owner, name, x, weight, bias: zeros(x, weight.shape[0])))
    if level >= 2:
        stack.enter_context(mock.patch.object(decoder.F, "scaled_dot_product_attention",
                                              lambda q, k, v, **kwargs: q))
    if level >= 3:
        stack.enter_context(mock.patch.object(decoder, "_rms_norm", lambda norm, x: x))
    return stack


def median_seconds(call, times: int) -> float:
    """Median seconds of `call()` over `times` calls, after two untimed ones."""
    for _ in range(2):
        call()
    return median([timed(call) for _ in range(times)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="smollm2", choices=sorted(CONFIGS), help="the bench's model shapes")
    p.add_argument("--fp32", action="store_true", help="float products (default: int8 decoding, glyph chat --int8)")
    p.add_argument("--context", type=int, default=600, help="positions in the cache when timing starts")
    p.add_argument("--repeats", type=int, default=7, help="rounds over the variants (each times 15 steps)")
    args = p.parse_args(argv)
    config = CONFIGS[args.config]
    with tempfile.TemporaryDirectory() as root:
        pair = Pair.build(build_parts(config, Path(root), (64,)), config, 64, merged=True)
    model = pair.glyph
    model.int8_decoding = not args.fp32
    ids, pixels = pair._question()
    token = ids[0, -1:]  # a text token (the prompt's last); a step's work does not depend on which
    seconds = {name: [] for name in LEFT_OUT}
    head, kernel = [], []
    with torch.inference_mode():
        rows = _Rows(model, [Prompt(ids, model.image_features(pixels))], room=args.context + 2000)
        while rows.mask.shape[1] < args.context:
            rows.feed(token)
        first = rows.mask.shape[1]
        # the steps that filled the cache ran in the one-call kernel where it runs this model (int8 decoding)
        one_call = bool(getattr(rows.decoder, "_one_call_step", None))
        for _ in range(args.repeats):
            for level, name in enumerate(LEFT_OUT):
                with stand_ins(level):
                    seconds[name].append(median_seconds(lambda: rows.feed(token), 15))
            head.append(median_seconds(rows.text_logits, 15))
            if one_call:
                kernel.append(median_seconds(lambda: rows.feed(token), 15))
    whole = [median(seconds[name]) * 1e3 for name in LEFT_OUT]
    print(f"{args.config}, {'fp32' if args.fp32 else 'int8'} decoding, {first}-{rows.mask.shape[1]} positions in the "
          f"cache, median of {args.repeats} rounds of 15 steps (ms per step):")
    for name, ms in zip(LEFT_OUT, whole):
        print(f"  {name:26s} {ms:7.2f}")
    print("shares:")
    for part, ms in zip(("matrix products", "attention", "RMS norms", "everything else"),
                        [whole[0] - whole[1], whole[1] - whole[2], whole[2] - whole[3], whole[3]]):
        print(f"  {part:26s} {ms:7.2f}  ({100 * ms / whole[0]:.0f} % of the layers)")
    print(f"  {'output head (text)':26s} {median(head) * 1e3:7.2f}  (apart from the layers)")
    if kernel:
        print(f"the whole step as int8 decoding runs it, the layers in one C call (assistant/int8_step.py): "
              f"{median(kernel) * 1e3:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
