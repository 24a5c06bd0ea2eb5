"""The frozen LLM's own replies to everyday requests, written as text-only training chats."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_parts import build_llm

from data_gen import text_replies
from data_gen.everyday_requests import TEMPLATES, everyday_requests


def test_everyday_requests_are_distinct_reproducible_varied_and_never_about_a_picture():
    requests = everyday_requests(np.random.default_rng(0), 600)
    assert len(requests) == len(set(requests)) == 600
    assert requests == everyday_requests(np.random.default_rng(0), 600)
    assert requests != everyday_requests(np.random.default_rng(1), 600)
    starts = {template.split("{")[0] for template, _ in TEMPLATES}
    assert sum(any(r.startswith(s) for r in requests) for s in starts) == len(starts)  # every template is used
    words = {w.strip(".,?'").lower() for r in requests for w in r.split()}
    assert not words & {"picture", "image", "photo", "draw", "circle", "square", "triangle", "glyph"}


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return build_llm(tmp_path_factory.mktemp("llm") / "llm", "llama")


def test_batched_replies_are_each_requests_own_greedy_reply(tiny_llm):
    """Left-padded rows in template order give each request the reply it gets alone, back in its own place."""
    model, tokenizer = text_replies.load_llm(str(tiny_llm))
    requests = everyday_requests(np.random.default_rng(3), 40)
    replies = text_replies.llm_replies(model, tokenizer, requests, max_new_tokens=6)
    for request, (reply, ended) in zip(requests[:6], replies[:6]):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": request}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)["input_ids"]
        with torch.no_grad():
            alone = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                   do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
        said = alone[:alone.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in alone else alone
        assert reply == tokenizer.decode(said, skip_special_tokens=True).strip()
        assert ended == (tokenizer.eos_token_id in alone)


def test_only_replies_that_ended_are_written_as_chats(tiny_llm, tmp_path, monkeypatch, capsys):
    said = [("Paris.", True), ("A reply cut off in the mid", False), ("", True), ("Eight.", True)]
    monkeypatch.setattr(text_replies, "llm_replies", lambda model, tokenizer, requests, max_new_tokens: said)
    out = tmp_path / "chats" / "replies.jsonl"
    assert text_replies.main(["--llm", str(tiny_llm), "--out", str(out), "--n", "4"]) == 0
    chats = [json.loads(line) for line in out.read_text().splitlines()]
    requests = everyday_requests(np.random.default_rng(0), 4)
    assert [c["messages"][1]["content"][0]["text"] for c in chats] == ["Paris.", "Eight."]
    assert [c["messages"][0]["content"][0]["text"] for c in chats] == [requests[0], requests[3]]
    assert all(c["kind"] == "llm_reply" and [m["role"] for m in c["messages"]] == ["user", "assistant"]
               for c in chats)
    assert "wrote 2 chats of 4 requests" in capsys.readouterr().out


def test_a_missing_llm_is_one_error_line(tmp_path, capsys):
    assert text_replies.main(["--llm", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.jsonl")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("glyph data replies:") and "nowhere" in error and "Traceback" not in error
    assert not (tmp_path / "r.jsonl").exists()
