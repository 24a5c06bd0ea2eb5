"""Glyph alone on the bench's smollm2 config: the first token with an image and a 65-token reply in fp32, in
int8 with prompts in float (INT8_MAX_ROWS, now) and in int8 with prompts in int8 too (as before 2026-12-06),
the three interleaved, medians; and whether each int8 reply is the fp32 one, token for token.

    .venv/bin/python -m benchmarks.int8_prompts       # about 2 minutes on 2 cores; run it on quiet cores
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import assistant.decoder as decoder
from benchmarks import bench
from benchmarks.parts import CONFIGS, build_parts
from benchmarks.workloads import DECODE_TOKENS, Pair

MODES = ("fp32", "int8, prompts in float", "int8 everywhere")


def in_mode(model, mode: str, call):
    def run():
        model.int8_decoding = mode != "fp32"
        decoder.INT8_MAX_ROWS = 8 if mode == "int8, prompts in float" else 10**9
        return call()
    return run


def main() -> None:
    parts = build_parts(CONFIGS["smollm2"], Path(tempfile.mkdtemp()), (64,))
    pair = Pair.build(parts, CONFIGS["smollm2"], 64, merged=True, device=torch.device("cpu"))
    works = {"first token (s)": 1, f"reply of {DECODE_TOKENS + 1} tokens (s)": DECODE_TOKENS + 1}
    calls = {work: {mode: in_mode(pair.glyph, mode, pair.reply("glyph", tokens)) for mode in MODES}
             for work, tokens in works.items()}
    bench.SIDES = MODES  # alternate() runs the "sides" it finds in bench.SIDES
    for work, seconds in bench.alternate(calls, 7, "fp32 / int8", torch.device("cpu")).items():
        print(work, ", ".join(f"{mode} {value:.4f}" for mode, value in seconds.items()))
    replies = {mode: in_mode(pair.glyph, mode, pair.reply("glyph", DECODE_TOKENS + 1))() for mode in MODES}
    for mode in MODES[1:]:
        print(f"{mode}: the fp32 reply token for token: {str(replies[mode]) == str(replies['fp32'])}")


if __name__ == "__main__":
    main()
