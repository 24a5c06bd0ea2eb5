"""Handing text-only turns to the LLM alone: the chats that teach it (data_gen.hand_over) and generation's
routing (assistant.generation.hands_over, GlyphModel.llm_alone), on tiny random parts."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from peft import LoraConfig
from PIL import Image
from tiny_parts import assistant_config, build_parts, prompt_of
from torch import nn

from assistant.chat import ChatSession
from assistant.generation import Sampling, generate, hands_over, reply_all
from assistant.model import GlyphModel
from assistant.templates import IGNORE_INDEX, render_chat
from data_gen import hand_over
from training.build import done, step_runs

GREEDY = Sampling(temperature=0, max_new_tokens=6)
EVERYDAY = [{"role": "user", "content": "hello! how can I help you today?"}]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("llama"), "llama")


def silenced(parts) -> GlyphModel:
    """An assistant with a LoRA adapter whose reply is always empty: its head favours the end of turn by far."""
    torch.manual_seed(0)
    model = GlyphModel.build(assistant_config(parts))
    model.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    head = model.causal_lm.get_output_embeddings()
    biased = nn.Linear(head.in_features, head.out_features, bias=True)
    biased.weight = head.weight
    with torch.no_grad():
        biased.bias.zero_()
        biased.bias[model.tokenizer.eos_token_id] = 1e4
    model.causal_lm.set_output_embeddings(biased)
    return model.eval()


def plain(parts) -> GlyphModel:
    """The same parts with nothing trained: the LLM's own replies."""
    torch.manual_seed(1)
    return GlyphModel.build(assistant_config(parts)).eval()


def with_picture(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (16, 16), (255, 0, 0))},
                                         {"type": "text", "text": text}]}]


def last(events):
    return list(events)[-1]


# ---- generation -------------------------------------------------------------------------------------------

def test_a_text_only_turn_the_adapter_leaves_empty_is_the_llms_own_token_for_token(parts):
    model, own = silenced(parts), plain(parts)
    assert hands_over(model, prompt_of(model, EVERYDAY))
    reply = last(generate(model, prompt_of(model, EVERYDAY), GREEDY))
    theirs = last(generate(own, prompt_of(own, EVERYDAY), GREEDY))
    assert reply.token_ids and reply.token_ids == theirs.token_ids and reply.text == theirs.text


def test_sampled_replies_are_handed_over_too_and_sample_as_asked(parts):
    model, own = silenced(parts), plain(parts)
    settings = Sampling(temperature=1.0, seed=3, max_new_tokens=6)
    reply = last(generate(model, prompt_of(model, EVERYDAY), settings))
    assert reply.token_ids == last(generate(own, prompt_of(own, EVERYDAY), settings)).token_ids


def test_nothing_is_handed_over_once_a_picture_is_in_the_chat(parts):
    model = silenced(parts)
    prompt = prompt_of(model, with_picture("what is this?"))
    assert not hands_over(model, prompt)
    reply = last(generate(model, prompt, GREEDY))
    assert reply.reason == "stop" and reply.token_ids == []  # the adapter's own (empty) reply


def test_a_requested_drawing_is_never_handed_over(parts):
    model = silenced(parts)
    events = list(generate(model, prompt_of(model, [{"role": "user", "content": "draw a red circle"}]),
                           Sampling(temperature=0, max_new_tokens=2, cfg_scale=1.0), draw=True))
    assert any(type(e).__name__ == "ImageDone" for e in events)


def test_batched_replies_hand_over_the_text_only_rows_alone(parts):
    model, own = silenced(parts), plain(parts)
    chats = [EVERYDAY, with_picture("what is this?"), [{"role": "user", "content": "draw a green triangle"}]]
    replies = reply_all(model, [prompt_of(model, c) for c in chats], GREEDY)
    theirs = reply_all(own, [prompt_of(own, c) for i, c in enumerate(chats) if i != 1], GREEDY)
    assert [r.token_ids for r in replies] == [theirs[0].token_ids, [], theirs[1].token_ids]
    assert replies[0].token_ids


def test_a_text_only_conversation_stays_the_llms_in_every_turn(parts):
    model, own = silenced(parts), plain(parts)
    ours, theirs = ChatSession(model), ChatSession(own)
    for text in ("hello! how can I help you today?", "what is in the picture?"):
        assert last(ours.send(text, settings=GREEDY)).token_ids == last(theirs.send(text, settings=GREEDY)).token_ids
    assert ours.messages == theirs.messages


def test_an_assistant_without_an_adapter_is_its_own_llm_alone(parts):
    model = plain(parts)
    assert model.llm_alone() is model and not hands_over(model, prompt_of(model, EVERYDAY))


def test_the_llm_alone_is_loaded_once_and_follows_the_callers_decoding_choices(parts):
    model = silenced(parts)
    alone = model.llm_alone()
    model.use_decoder = False
    assert model.llm_alone() is alone and not alone.use_decoder and not alone.adapted
    assert not any("llm_alone" in name for name, _ in model.named_modules())  # never saved with the assistant


# ---- the chats that teach it ------------------------------------------------------------------------------

def replies_file(path, n=6):
    lines = [{"id": f"reply-{i}", "kind": "llm_reply",
              "messages": [{"role": "user", "content": [{"type": "text", "text": f"What is {i} plus {i}?"}]},
                           {"role": "assistant", "content": [{"type": "text", "text": f"{i} plus {i} is {2 * i}."}]}]}
             for i in range(n)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def pictures_file(path):
    picture = {"kind": "conversation", "messages": [
        {"role": "user", "content": [{"type": "image", "path": "../scenes/images/000001.png"},
                                     {"type": "text", "text": "What colour is the circle?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "The circle is red."}]}]}
    drawing = {"kind": "draw", "messages": [{"role": "user", "content": [{"type": "text", "text": "Draw it"}]},
                                            {"role": "assistant", "content": [{"type": "image", "path": "d.png"}]}]}
    path.write_text(json.dumps(picture) + "\n" + json.dumps(drawing) + "\n")
    return path


def test_the_chats_hand_over_every_request_and_answer_after_a_picture(tmp_path):
    replies = hand_over.read_chats(replies_file(tmp_path / "replies.jsonl"), "replies")
    pictures = hand_over.read_chats(pictures_file(tmp_path / "pictures.jsonl"), "scene chats")
    chats = hand_over.hand_over_chats(replies, pictures, np.random.default_rng(0), later=0.5, after_picture=0.5)
    kinds = [c["kind"] for c in chats]
    assert (kinds.count("hand_over"), kinds.count("hand_over_later"), kinds.count("llm_reply_after_picture")) \
        == (6, 3, 3)
    for chat in chats:
        messages = chat["messages"]
        if chat["kind"].startswith("hand_over"):
            assert messages[-1] == {"role": "assistant", "content": []}
            assert not any(p["type"] == "image" for m in messages for p in m["content"])
        else:
            assert messages[0]["content"][0]["type"] == "image" and messages[-1]["content"][0]["text"].endswith(".")
    assert len({c["id"] for c in chats}) == len(chats)


def test_a_handed_over_turn_trains_only_its_end_of_turn(parts):
    model = plain(parts)
    chat = render_chat([EVERYDAY[0], {"role": "assistant", "content": []}], model.tokenizer, model.layout)
    assert chat.labels[chat.labels != IGNORE_INDEX].tolist() == [model.tokenizer.eos_token_id]


def test_the_command_writes_beside_the_scene_chats_and_refuses_bad_files(tmp_path, capsys):
    replies, pictures = replies_file(tmp_path / "replies.jsonl"), pictures_file(tmp_path / "pictures.jsonl")
    out = tmp_path / "hand-over.jsonl"
    assert hand_over.main(["--replies", str(replies), "--pictures", str(pictures), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 6 + round(0.4 * 6) * 2
    elsewhere = tmp_path / "sub" / "hand-over.jsonl"
    assert hand_over.main(["--replies", str(replies), "--pictures", str(pictures), "--out", str(elsewhere)]) == 2
    assert "must be in the folder of --pictures" in capsys.readouterr().err and not elsewhere.exists()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": []}\nnot json\n')
    assert hand_over.main(["--replies", str(broken), "--pictures", str(pictures), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{broken} line 2 is not a chat" in err and "Traceback" not in err
    assert hand_over.main(["--replies", str(pictures), "--pictures", str(pictures), "--out", str(out)]) == 2
    assert "no one-exchange text-only chat" in capsys.readouterr().err


def test_the_build_step_names_its_files_in_the_chats_folder(tmp_path):
    step = {"step": "hand_over", "replies": "replies-25", "pictures": "instruct-28", "seed": 3}
    [(module, argv)] = step_runs(step, tmp_path, 1.0)
    chats = tmp_path / "chats"
    assert module == "data_gen.hand_over" and argv == [
        "--replies", str(chats / "replies-25.jsonl"), "--pictures", str(chats / "instruct-28.jsonl"),
        "--out", str(chats / "hand-over.jsonl"), "--seed", "3"]
    assert not done(step, tmp_path)
    chats.mkdir()
    (chats / "hand-over.jsonl").write_text("{}\n")
    assert done(step, tmp_path)
