"""Cold start: from starting a Python process to the first reply token, with a warm file cache.

    run = cold_start(save_both(parts, config, root, prompt_ids), repeats=3)
    run["seconds"]                      # {"glyph": median s, "reference": median s}; run["same_token"]

Each side saves its model the way its users keep one: Glyph with `GlyphModel.save_pretrained` (the trained
parts and a config naming the frozen ones), the reference with `save_pretrained` of the LLaVA model with its
LoRA merged (what LLaVA's own loader produces). A fresh interpreter then imports what it needs, loads the
model (Glyph merges its LoRA on load, as `glyph chat`, `serve` and `ui` do), and greedily decodes one token
of a reply to the same prompt ids, fed from a file so that neither side renders a template. A reply in words
never starts a drawing: Glyph's text mode leaves out the image vocabulary, and the reference suppresses those
ids (as its in-process text replies do; without it random-weight configs' first tokens differed). The first
run of each side warms the file cache and is not counted; the sides alternate.

The time runs from just before the process is started to the moment the child has its first token (it prints
the system-wide monotonic clock then), not to the process's exit: tearing down an interpreter that has loaded
torch and transformers takes another 0.5-1.2 s, which a user waiting for a reply does not wait for.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.measure import median
from benchmarks.parts import BenchConfig, Parts, assistant
from benchmarks.reference import llava_from

GLYPH_CHILD = """
import json, sys, time, torch
from assistant.generation import Finished, Prompt, Sampling, generate
from assistant.model import GlyphModel
ids = torch.tensor([json.loads(open(sys.argv[2]).read())])
model = GlyphModel.from_pretrained(sys.argv[1], merge_lora=True)
settings = Sampling(temperature=0, max_new_tokens=1, max_images=0)
print(next(e for e in generate(model, Prompt(ids), settings) if isinstance(e, Finished)).token_ids)
print(time.monotonic())
"""

REFERENCE_CHILD = """
import json, sys, time, torch
from transformers import LlavaForConditionalGeneration
ids = torch.tensor([json.loads(open(sys.argv[2]).read())])
model = LlavaForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
image_ids = list(range(int(sys.argv[3]), model.config.text_config.vocab_size))  # a reply in words never draws
with torch.inference_mode():
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False,
                         suppress_tokens=image_ids)
print(out[0, ids.shape[1]:].tolist())
print(time.monotonic())
"""


def save_both(parts: Parts, config: BenchConfig, root: Path, prompt_ids: list[int]) -> dict[str, list[str]]:
    """Each side's saved model and the command that starts it cold."""
    glyph = assistant(parts, config, tokens=64)
    glyph_dir = glyph.save_pretrained(root / "glyph-assistant")
    llava_from(glyph).merge_and_unload().save_pretrained(root / "llava")  # glyph has LoRA: a peft model
    ids = root / "prompt-ids.json"
    ids.write_text(json.dumps(prompt_ids))
    return {"glyph": [sys.executable, "-c", GLYPH_CHILD, str(glyph_dir), str(ids)],
            "reference": [sys.executable, "-c", REFERENCE_CHILD, str(root / "llava"), str(ids),
                          str(glyph.vocab.first_id)]}


def start_seconds(command: list[str]) -> tuple[float, str]:
    """Seconds from starting the child process to its first token, and the token ids it printed."""
    started = time.monotonic()  # CLOCK_MONOTONIC is one clock for every process of the machine
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode:
        raise RuntimeError(f"cold start failed ({done.returncode}): {done.stderr[-2000:]}")
    *_, tokens, first_token_at = done.stdout.strip().splitlines()
    return float(first_token_at) - started, tokens


def cold_start(commands: dict[str, list[str]], repeats: int) -> dict[str, dict]:
    """Median seconds per side after one uncounted warm-up run each, sides alternating; and whether both
    printed the same first token."""
    sides = list(commands)
    tokens = {side: start_seconds(commands[side])[1] for side in sides}  # warms the file cache
    seconds = {side: [] for side in sides}
    for repeat in range(repeats):
        for side in sides if repeat % 2 == 0 else sides[::-1]:
            seconds[side].append(start_seconds(commands[side])[0])
    return {"seconds": {side: median(v) for side, v in seconds.items()}, "repeats": repeats,
            "same_token": len(set(tokens.values())) == 1}
