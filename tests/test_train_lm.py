"""train_lm end to end on tiny chats: a smoke run that loads like a downloaded model, exact resume, bad rows, labels."""
import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from assistant.llm import load_language_model
from assistant.templates import IGNORE_INDEX, render_chat
from training import train_lm
from training.chat_data import Example, collate, predicted_tokens, read_chats, text_layout, tokenize_text_chats

TINY_FLAGS = ["--vocab-size", "300", "--hidden-size", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2",
              "--intermediate-size", "64", "--max-length", "128", "--batch-size", "4", "--warmup", "1",
              "--log-every", "1", "--eval-every", "0", "--save-every", "100", "--precision", "fp32"]
COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "cross", "star"]


def chat(i: int) -> dict:
    color, shape = COLORS[i % len(COLORS)], SHAPES[i % len(SHAPES)]
    messages = [{"role": "user", "content": f"Here is a scene: a {color} {shape}.\nWhat color is the {shape}?"},
                {"role": "assistant", "content": f"The {shape} is {color}."}]
    if i % 7 == 0:
        messages.insert(0, {"role": "system", "content": "You answer questions about scenes."})
    return {"id": f"chat-{i}", "messages": messages}


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "chats.jsonl"
    path.write_text("".join(json.dumps(chat(i)) + "\n" for i in range(60)))
    return path


def run(data, out, *extra):
    return train_lm.main(["--data", str(data), "--out", str(out), *TINY_FLAGS, *extra])


def test_two_steps_end_to_end_and_the_result_loads_like_a_downloaded_model(chats, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(chats, out, "--steps", "2") == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 2 and report["held_out_chats"] == 1 and report["vocab_size"] == 300
    assert 0 < report["held_out_loss"] < 10 and report["tokens_per_second"] > 0
    samples = (out / "samples.txt").read_text()
    assert "USER: Hello!" in samples and "USER: What can you do?" in samples and "Here is a scene" in samples
    assert "USER: Hello!" in printed
    assert (out / "curves.png").stat().st_size > 1000 and list((out / "logs").rglob("events.out.tfevents.*"))
    assert not (out / train_lm.FINAL_PARTIAL).exists()

    model, tokenizer = load_language_model(str(out))
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.tie_word_embeddings
    assert model.config.vocab_size == len(tokenizer) == 300 and model.config.hidden_size == 32
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == model.config.eos_token_id
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    # What trained is what was saved: the final weights are the checkpoint's.
    checkpoint = load_file(out / "checkpoint" / "model.safetensors")
    for name, value in model.model.state_dict().items():
        assert torch.equal(value, checkpoint["model." + name]), name
    # The rendered chat decodes back to the template's text: content and scaffolding tokenized apart lose nothing.
    rendered = render_chat(chat(0)["messages"], tokenizer, text_layout(tokenizer))
    assert tokenizer.decode(rendered.input_ids) == tokenizer.apply_chat_template(chat(0)["messages"], tokenize=False)

    assert run(chats, out, "--steps", "2") == 0  # a finished run is not trained again
    assert "already trained" in capsys.readouterr().out
    assert run(chats, out, "--steps", "2", "--hidden-size", "64", "--overwrite") == 0  # unless asked to
    assert load_file(out / "model.safetensors")["model.embed_tokens.weight"].shape == (300, 64)


def test_a_stopped_run_resumes_with_its_tokenizer_and_ends_where_an_unbroken_run_ends(chats, tmp_path, capsys,
                                                                                      monkeypatch):
    assert run(chats, tmp_path / "unbroken", "--steps", "4") == 0
    broken = tmp_path / "broken"
    assert run(chats, broken, "--steps", "4", "--stop-after", "2") == 0
    state = json.loads((broken / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2 and not state.get("finished") and not (broken / "config.json").exists()

    assert run(chats, broken, "--steps", "4", "--vocab-size", "400") == 2  # never resumed with another tokenizer
    assert "another tokenizer or model config" in capsys.readouterr().err

    def never(*_):
        raise AssertionError("a resumed run retrained its tokenizer")

    monkeypatch.setattr(train_lm, "train_tokenizer", never)
    capsys.readouterr()
    assert run(chats, broken, "--steps", "4") == 0  # not finished, so the same command continues
    assert "resuming" in capsys.readouterr().out
    resumed, unbroken = load_file(broken / "model.safetensors"), load_file(tmp_path / "unbroken" / "model.safetensors")
    assert resumed.keys() == unbroken.keys()
    for name in unbroken:
        assert torch.equal(resumed[name], unbroken[name]), name
    history = json.loads((broken / "checkpoint" / "state.json").read_text())["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4]
    assert (broken / "tokenizer.json").read_text() == (tmp_path / "unbroken" / "tokenizer.json").read_text()


def test_bad_rows_are_named_by_row_number_and_skipped_only_when_asked(chats, tmp_path, capsys):
    rows = chats.read_text().splitlines()
    image_row = chat(100)
    image_row["messages"][0]["content"] = [{"type": "image", "image": "a.png"}, {"type": "text", "text": "Hi"}]
    long_row = {"id": "long", "messages": [{"role": "user", "content": "red circle " * 200}]}
    bad = ["{not json", json.dumps({"id": "no-messages"}), json.dumps(image_row), "", json.dumps(long_row)]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(rows[:10] + bad + rows[10:]) + "\n")
    assert run(data, tmp_path / "run", "--steps", "1") == 2
    err = capsys.readouterr().err
    assert "4 of 64 chat rows are bad" in err and "--skip-bad" in err and "Traceback" not in err
    assert f"{data} row 11: not valid JSON" in err and f"{data} row 12: has neither 'messages'" in err
    assert f"{data} row 13: message 0 has an image part" in err and f"{data} row 15: " in err
    assert "more than --max-length 128" in err
    assert not (tmp_path / "run" / train_lm.TOKENIZER_DIR).exists()  # nothing written for a refused run

    assert run(data, tmp_path / "run", "--steps", "1", "--skip-bad") == 0
    assert "skipping 4 of 64 chat rows are bad" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "report.json").read_text())["steps"] == 1


def test_rows_that_datasets_reads_are_checked_too(tmp_path, capsys):
    """Every content a list of parts, so 🤗 datasets loads the file in one schema; the image part is still found."""
    rows = []
    for i in range(3):
        row = chat(i)
        for message in row["messages"]:
            message["content"] = [{"type": "text", "text": message["content"]}]
        rows.append(row)
    rows[1]["messages"][1]["content"].append({"type": "image", "image": "drawn.png"})
    data = tmp_path / "parts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    chats = read_chats([data], text_only=True)
    assert [c.id for c in chats.chats] == ["chat-0", "chat-2"] and [c.source.row for c in chats.chats] == [1, 3]
    user = chat(0)["messages"][1]["content"]
    assert chats.chats[0].messages[1] == {"role": "user", "content": [{"type": "text", "text": user}]}
    assert [str(b) for b in chats.bad] == [f"{data} row 2: message 1 has an image part; the language model trains "
                                           "on text only"]
    assert run(tmp_path / "missing.jsonl", tmp_path / "run", "--steps", "1") == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err


def two_chats(tmp_path) -> Path:
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(chat(i)) + "\n" for i in (0, 1)))
    return path


def test_every_real_token_is_supervised_and_padding_is_not(tmp_path):
    batch = collate([Example(torch.tensor([5, 6, 7]), torch.tensor([5, 6, 7]), [], 0),
                     Example(torch.tensor([8]), torch.tensor([8]), [], 1)], pad_id=0, features=None)
    assert torch.equal(batch["input_ids"], torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(batch["labels"], torch.tensor([[5, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]))

    tokenizer = train_lm.train_tokenizer([t for i in range(20) for m in chat(i)["messages"] for t in [m["content"]]],
                                         300, 128)
    rendered = [render_chat(chat(i)["messages"], tokenizer, text_layout(tokenizer)).input_ids for i in (0, 1)]
    data = tokenize_text_chats(read_chats([two_chats(tmp_path)], text_only=True), tokenizer, 128, supervise="all")
    assert not data.bad and [e.input_ids.tolist() for e in data.examples] == [ids.tolist() for ids in rendered]
    labels = collate(data.examples, tokenizer.pad_token_id, None)["labels"]
    for row, ids in enumerate(rendered):  # the system and user turns and the template too: plain LM pretraining
        assert torch.equal(labels[row, :len(ids)], ids) and (labels[row, len(ids):] == IGNORE_INDEX).all()
    text = tokenizer.decode(labels[0][labels[0] != IGNORE_INDEX])
    assert text == tokenizer.apply_chat_template(chat(0)["messages"], tokenize=False)


def test_supervise_assistant_trains_only_on_the_replies(tmp_path):
    tokenizer = train_lm.train_tokenizer([t for i in range(20) for m in chat(i)["messages"] for t in [m["content"]]],
                                         300, 128)
    data = tokenize_text_chats(read_chats([two_chats(tmp_path)], text_only=True), tokenizer, 128,
                               supervise="assistant")
    assert not data.bad and len(data.examples) == 2
    labels = collate(data.examples, tokenizer.pad_token_id, None)["labels"]
    replies = [m["content"] for m in chat(0)["messages"] if m["role"] == "assistant"]
    assert tokenizer.decode(labels[0][labels[0] != IGNORE_INDEX]) == "".join(r + "<|im_end|>" for r in replies)
    assert predicted_tokens(data.examples) == int((labels[:, 1:] != IGNORE_INDEX).sum())


def test_gradient_accumulation_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    config = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
              "num_key_value_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32,
              "rope_theta": 10000.0, "tie_word_embeddings": True, "bos_token_id": None, "eos_token_id": 2,
              "pad_token_id": 0}
    model = train_lm.build_lm(config)
    sequences = [torch.randint(3, 50, (n,)) for n in (5, 9, 3, 7)]
    chats = [Example(ids, ids.clone(), [], i) for i, ids in enumerate(sequences)]
    chats[1].labels[:5] = IGNORE_INDEX  # a prompt left out, as --supervise assistant does: the micro-batches'
    chats[3].labels[:2] = IGNORE_INDEX  # shares of the loss must still weigh every supervised token alike
    accelerator = Accelerator(cpu=True)
    results = []
    for accum in (1, 2):
        model.zero_grad()
        loss, tokens = train_lm.train_step(accelerator, model, chats, accum, pad_id=0)
        results.append((loss, tokens, [p.grad.clone() for p in model.parameters()]))
    (loss1, tokens1, grads1), (loss2, tokens2, grads2) = results
    assert tokens1 == tokens2 == 24 and loss1 == pytest.approx(loss2, rel=1e-5)
    for a, b in zip(grads1, grads2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_held_out_chats_are_fixed_by_their_ids():
    ids = [f"c{i}" for i in range(100)]
    train, held = train_lm.split_held_out(ids, ids, 0.02)  # the examples here are their ids
    assert len(held) == 2 and len(train) == 98
    _, again = train_lm.split_held_out(ids[::-1], ids[::-1], 0.02)
    assert set(held) == set(again)
