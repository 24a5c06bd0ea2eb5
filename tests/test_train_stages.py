"""Stages 1 and 2 on tiny random parts: the data they read, what trains, resume, and 2-step runs end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assistant.model import GlyphModel
from assistant.templates import IGNORE_INDEX
from data_gen.scene_chats import write_chats
from data_gen.scene_dataset import write_scene_dataset
from tests.tiny_parts import assistant_config, build_parts, stage1_args
from training import train_align, train_instruct
from training.assistant_stage import set_trainable
from training.chat_data import ChatDataError, collate, read_chats, tokenize_chats


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    parts = build_parts(root)
    scenes = write_scene_dataset(root / "scenes", n=60, seed=3)
    align = write_chats(scenes, root / "chats" / "align.jsonl", "align", n=40, seed=1)
    instruct = write_chats(scenes, root / "chats" / "instruct.jsonl", "instruct", n=40, seed=2)
    return {"root": root, "parts": parts, "align": align, "instruct": instruct}


@pytest.fixture(scope="module")
def model(world):
    return GlyphModel.build(assistant_config(world["parts"]))


def test_collator_pads_and_supervises_only_the_assistant(world, model, tmp_path):
    chat = {"messages": [
        {"role": "user", "content": [{"type": "image", "path": "a.png"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": "A red circle."},
        {"role": "user", "content": "Draw it."},
        {"role": "assistant", "content": [{"type": "image", "path": "a.png"}]}]}
    short = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    source = next((world["root"] / "scenes" / "images").glob("*.png"))
    (tmp_path / "a.png").write_bytes(source.read_bytes())
    file = tmp_path / "chats.jsonl"
    file.write_text(json.dumps(chat) + "\n" + json.dumps(short) + "\n")
    data = tokenize_chats(read_chats([file]), model, max_length=256)
    assert not data.bad and len(data.examples) == 2
    batch = collate(data.examples, model.tokenizer.pad_token_id, data.features)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    layout, tokenizer = model.layout, model.tokenizer
    supervised = ids[0][labels[0] != IGNORE_INDEX]
    codes = supervised[(supervised >= layout.code_start)]
    assert len(codes) == layout.tokens_per_image  # the drawn image's codes are learned ...
    assert int((ids[0] == layout.image_id).sum()) == layout.slots_per_image  # ... the input image's slots are not
    assert not (labels[0][ids[0] == layout.image_id] != IGNORE_INDEX).any()
    text = tokenizer.decode(supervised[supervised < layout.image_id])
    assert text == "A red circle.<|im_end|><|im_end|>"  # both assistant turns end with their eos
    assert batch["vision_features"].shape == (1, layout.slots_per_image, model.vision_tower.hidden_size)
    n = len(data.examples[1].input_ids)  # the short chat is right-padded, masked and unsupervised there
    assert mask[1, :n].all() and not mask[1, n:].any() and (labels[1, n:] == IGNORE_INDEX).all()
    assert tokenizer.decode(ids[1][labels[1] != IGNORE_INDEX]) == "Hello!<|im_end|>"


def test_llava_json_reads_like_messages(world, tmp_path):
    source = next((world["root"] / "scenes" / "images").glob("*.png"))
    (tmp_path / "x.png").write_bytes(source.read_bytes())
    llava = [{"id": "1", "image": "x.png", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                                             {"from": "gpt", "value": "A shape."}]},
             {"id": "2", "image": "x.png", "conversations": [{"from": "human", "value": "Describe it."},
                                                             {"from": "gpt", "value": "Shapes."}]}]
    file = tmp_path / "llava.json"
    file.write_text(json.dumps(llava))
    chats = read_chats([file])
    assert not chats.bad
    first = chats.chats[0].messages
    assert first == [{"role": "user", "content": [{"type": "image", "path": tmp_path / "x.png"},
                                                  {"type": "text", "text": "What is it?"}]},
                     {"role": "assistant", "content": [{"type": "text", "text": "A shape."}]}]
    assert chats.chats[1].messages[0]["content"][0]["type"] == "image"  # no <image> mark: LLaVA puts it first


def test_bad_rows_are_named_then_fail_or_are_skipped(world, model, tmp_path):
    good = world["instruct"].read_text().splitlines()[:6]
    lines = good[:2] + ["{not json"] + good[2:4] + [json.dumps({"messages": [
        {"role": "user", "content": [{"type": "image", "path": "missing.png"}]},
        {"role": "assistant", "content": "x"}]})] + [json.dumps({"conversations": "nope"})]
    file = world["instruct"].parent / "bad.jsonl"
    file.write_text("\n".join(lines) + "\n")
    data = tokenize_chats(read_chats([file]), model, max_length=512)
    assert [b.row for b in data.bad] == [3, 6, 7]
    with pytest.raises(ChatDataError, match=r"3 of 7 chat rows are bad:\n.*row 3: not valid JSON"):
        data.raise_or_report(skip_bad=False)
    data.raise_or_report(skip_bad=True)  # prints them and goes on with the good ones
    assert len(data.examples) == 4
    out = tmp_path / "run"
    args = stage1_args(world, out, "--steps", "1", "--batch-size", "2", "--holdout", "1")
    args[1] = str(file)
    assert train_align.main(args) == 2 and not (out / "model.safetensors").exists()
    assert train_align.main(args + ["--skip-bad"]) == 0 and (out / "model.safetensors").is_file()


def test_stage1_then_stage2_train_what_they_should(world, tmp_path):
    stage1, stage2 = tmp_path / "align", tmp_path / "instruct"
    assert train_align.main(stage1_args(world, stage1, "--steps", "2")) == 0
    assert (stage1 / "samples" / "step_000002.png").is_file() and (stage1 / "report.json").is_file()
    saved = load_file(stage1 / "model.safetensors")
    assert saved and all(k.startswith(("projector.", "vocab.")) for k in saved)  # never a frozen LLM copy
    model = GlyphModel.from_pretrained(stage1)
    set_trainable(model, stage=1)
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"projector", "vocab"}
    assert train_instruct.main(["--data", str(world["instruct"]), "--init", str(stage1), "--out", str(stage2),
                                "--steps", "2", "--batch-size", "4", "--holdout", "4", "--samples", "2",
                                "--lora-r", "4", "--lora-alpha", "8", "--precision", "fp32",
                                "--cache-dir", str(world["root"] / "cache")]) == 0
    tuned = GlyphModel.from_pretrained(stage2, trainable=True)
    set_trainable(tuned, stage=2)
    trained = {n for n, p in tuned.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trained)
    assert all("lora_" in n or n.startswith(("projector.", "vocab.")) for n in trained)
    assert not any(p.requires_grad for p in tuned.vision_tower.parameters())
    assert (stage2 / "adapter" / "adapter_model.safetensors").is_file()


def test_stage2_can_adapt_the_upper_layers_only_with_its_inputs_frozen(world, tmp_path):
    """--lora-layers K --freeze-inputs: no gradient is needed below layer K (benchmarks/TRAINING.md: 1.5x the
    tokens/s on SmolLM2 at K = 15). The adapter covers layers K+ only, the projector and the image tokens' input
    rows stay as stage 1 left them, their output rows train, and the assistant still loads merged."""
    stage1, stage2 = tmp_path / "align", tmp_path / "instruct"
    assert train_align.main(stage1_args(world, stage1, "--steps", "2")) == 0
    assert train_instruct.main(["--data", str(world["instruct"]), "--init", str(stage1), "--out", str(stage2),
                                "--steps", "2", "--batch-size", "4", "--holdout", "4", "--samples", "1",
                                "--lora-r", "4", "--lora-alpha", "8", "--lr", "1e-2", "--precision", "fp32",
                                "--lora-layers", "1", "--freeze-inputs",
                                "--cache-dir", str(world["root"] / "cache")]) == 0
    adapter = load_file(stage2 / "adapter" / "adapter_model.safetensors")
    assert adapter and all(".layers.0." not in k for k in adapter) and any(".layers.1." in k for k in adapter)
    assert {k.split(".layers.")[1].split(".")[2] for k in adapter} >= {"q_proj", "down_proj"}  # every linear
    before, after = load_file(stage1 / "model.safetensors"), load_file(stage2 / "model.safetensors")
    kept = [k for k in before if not k.startswith("vocab.output")]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)
    assert not torch.equal(before["vocab.output"], after["vocab.output"])
    merged = GlyphModel.from_pretrained(stage2, merge_lora=True)
    peft = GlyphModel.from_pretrained(stage2)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(merged.causal_lm(input_ids=ids).logits, peft.causal_lm(input_ids=ids).logits,
                                   atol=1e-5, rtol=1e-4)


def test_lora_layers_beyond_the_llm_is_one_clear_error(world, tmp_path, capsys):
    stage1 = tmp_path / "align"
    assert train_align.main(stage1_args(world, stage1, "--steps", "1")) == 0
    code = train_instruct.main(["--data", str(world["instruct"]), "--init", str(stage1), "--out",
                                str(tmp_path / "instruct"), "--steps", "1", "--lora-layers", "99",
                                "--precision", "fp32", "--cache-dir", str(world["root"] / "cache")])
    err = capsys.readouterr().err
    assert code != 0 and "--lora-layers 99" in err and "layers 0 to" in err


def test_a_second_stage2_phase_goes_on_training_the_first_ones_adapter(world, tmp_path):
    stage1, first, second = tmp_path / "align", tmp_path / "instruct", tmp_path / "refine"
    stage2 = ["--data", str(world["instruct"]), "--steps", "2", "--batch-size", "4", "--holdout", "4", "--samples",
              "1", "--precision", "fp32", "--cache-dir", str(world["root"] / "cache")]
    assert train_align.main(stage1_args(world, stage1, "--steps", "2")) == 0
    assert train_instruct.main(stage2 + ["--init", str(stage1), "--out", str(first), "--lora-r", "4",
                                         "--lora-alpha", "8", "--lr", "1e-2"]) == 0
    # lr 0: the second phase's weights must be exactly the first's (a fresh adapter would have lora_B = 0)
    assert train_instruct.main(stage2 + ["--init", str(first), "--out", str(second), "--lr", "0",
                                         "--lora-r", "8"]) == 0
    before = load_file(first / "adapter" / "adapter_model.safetensors")
    after = load_file(second / "adapter" / "adapter_model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(k for k in before if "lora_B" in k and before[k].abs().sum() > 0)  # the first phase did train it
    assert json.loads((second / "adapter" / "adapter_config.json").read_text())["r"] == 4  # its rank, not --lora-r


def test_a_stage2_run_can_write_the_average_of_its_weights_and_an_earlier_rounds(world, tmp_path, capsys):
    """--average-with (a model soup): with lr 0 the run keeps --init's weights, so what it writes is exactly the
    mean of --init's and the other round's. Another assistant's weights are refused before any training."""
    stage1, first, other, soup = (tmp_path / name for name in ("align", "first", "other", "soup"))
    stage2 = ["--data", str(world["instruct"]), "--steps", "2", "--batch-size", "4", "--holdout", "4", "--samples",
              "1", "--precision", "fp32", "--cache-dir", str(world["root"] / "cache"), "--lora-r", "4",
              "--lora-alpha", "8"]
    assert train_align.main(stage1_args(world, stage1, "--steps", "2")) == 0
    assert train_instruct.main(stage2 + ["--init", str(stage1), "--out", str(first), "--lr", "1e-2"]) == 0
    assert train_instruct.main(stage2 + ["--init", str(stage1), "--out", str(other), "--lr", "3e-2", "--seed",
                                         "5"]) == 0
    assert train_instruct.main(stage2 + ["--init", str(first), "--out", str(soup), "--lr", "0", "--average-with",
                                         str(other)]) == 0
    for name in ("adapter/adapter_model.safetensors", "model.safetensors"):
        a, b, mean = (load_file(folder / name) for folder in (first, other, soup))
        assert a.keys() == b.keys() == mean.keys()
        assert any(not torch.equal(a[k], b[k]) for k in a)  # two different rounds
        for k in a:
            torch.testing.assert_close(mean[k], (a[k].float() + b[k].float()).div(2).to(a[k].dtype))
    assert json.loads((soup / "report.json").read_text())["averaged_with"] == str(other)
    narrower, refused = tmp_path / "narrower", tmp_path / "refused"
    assert train_instruct.main(stage2[:-4] + ["--lora-r", "2", "--lora-alpha", "4", "--init", str(stage1),
                                              "--out", str(narrower)]) == 0
    capsys.readouterr()
    assert train_instruct.main(stage2 + ["--init", str(first), "--out", str(refused), "--average-with",
                                         str(narrower)]) == 2
    assert f"--average-with {narrower} trains other weights" in capsys.readouterr().err
    assert not (refused / "model.safetensors").exists()


def test_resume_gives_the_weights_of_an_uninterrupted_run(world, tmp_path):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    assert train_align.main(stage1_args(world, whole, "--steps", "4", "--save-every", "100")) == 0
    assert train_align.main(stage1_args(world, halves, "--steps", "4", "--stop-after", "2")) == 0
    assert not (halves / "model.safetensors").exists()
    assert train_align.main(stage1_args(world, halves, "--steps", "4")) == 0
    a, b = load_file(whole / "model.safetensors"), load_file(halves / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_train_like_one(world, tmp_path):
    """`accelerate launch --num_processes 2` on CPU splits each batch and averages gradients: same result."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = stage1_args(world, one, "--steps", "3", "--batch-size", "8")
    assert train_align.main(args) == 0
    args[args.index(str(one))] = str(two)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "training.train_align", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    differ = sum(float((a[k] - b[k]).abs().sum()) for k in a) / sum(float(v.abs().sum()) for v in a.values())
    assert differ < 1e-3, differ


def test_llava_style_recipes_dry_run_on_tiny_models(world, tmp_path):
    """The real-model recipes' own settings (MLP projector, penultimate layer, LoRA r128/α256) on tiny parts."""
    recipes = Path(__file__).parents[1] / "training" / "recipes"
    parts, small = world["parts"], ["--steps", "2", "--batch-size", "4", "--holdout", "4", "--samples", "1",
                                    "--cache-dir", str(world["root"] / "cache")]
    stage1, stage2 = tmp_path / "align", tmp_path / "instruct"
    assert train_align.main(["--config", str(recipes / "llava-1.5-style-align.yaml"), "--data", str(world["align"]),
                             "--vision", f"local-dir:{parts.clip}", "--llm", str(parts.llm), "--vq", str(parts.vq),
                             "--out", str(stage1), *small]) == 0
    config = json.loads((stage1 / "config.json").read_text())
    assert config["projector"]["kind"] == "mlp2x_gelu" and config["vision"]["feature_layer"] == -2
    assert train_instruct.main(["--config", str(recipes / "llava-1.5-style-instruct.yaml"), "--init", str(stage1),
                                "--data", str(world["instruct"]), "--out", str(stage2), *small]) == 0
    adapter = json.loads((stage2 / "adapter" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (128, 256)
