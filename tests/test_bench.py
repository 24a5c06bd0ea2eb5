"""The benchmark's fairness: the reference (LLaVA + peft + generate()) holds Glyph's weights and says the same."""
from __future__ import annotations

import sys

import open_clip
import pytest
import torch
from PIL import Image
from transformers import LlamaForCausalLM

from assistant.templates import IGNORE_INDEX
from benchmarks import bench, cold_start, floors, report, sizes
from benchmarks.parts import CONFIGS, assistant, build_parts, build_tokenizer, clip_config, llama_config, vq_config
from benchmarks.workloads import (BATCH, DECODE_TOKENS, SIDES, Pair, Trainer, supervised_tokens,
                                  training_batches)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(CONFIGS["tiny"], tmp_path_factory.mktemp("bench"), (64,))


def test_reference_holds_glyphs_weights(parts):
    pair = Pair.build(parts, CONFIGS["tiny"], 64)
    ids, pixels = pair._question()
    with torch.no_grad():
        ours = pair.glyph(ids, pixel_values=pixels).logits
        theirs = pair.reference(input_ids=ids, pixel_values=pixels).logits
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("merged", [False, True])
def test_both_sides_give_the_same_greedy_tokens(parts, merged):
    pair = Pair.build(parts, CONFIGS["tiny"], 64, merged=merged)
    assert all(bench.fairness(pair).values())
    text = {side: pair.reply(side, 12)() for side in SIDES}
    assert len(text["glyph"]) == 12 and text["glyph"] == text["reference"]


def test_a_follow_up_gets_the_same_token_and_reuses_the_first_exchange_on_glyphs_side(parts, monkeypatch):
    from assistant import generation, prompt_reuse

    reused = []
    monkeypatch.setattr(generation, "restore", lambda *a: reused.append(prompt_reuse.restore(*a)) or reused[-1])
    pair = Pair.build(parts, CONFIGS["tiny"], 64, merged=True)
    tokens = {}
    for side in SIDES:
        call = pair.follow_up(side)
        call.prepare()
        tokens[side] = call()
    assert tokens["glyph"] == tokens["reference"] and len(tokens["glyph"]) == 1
    first, follow_up = reused  # the first exchange prefilled whole; the follow-up started from it
    assert first == 0 and follow_up > 20
    assert not pair.glyph.reuse_prompt_prefix  # the other rows still time whole prompts
    assert pair.reply("glyph", 1)() and reused[2] == 0


def test_both_sides_train_alike_from_the_same_weights(parts):
    pair = Pair.build(parts, CONFIGS["tiny"], 64)
    batches = training_batches(pair.glyph, 2, 3)
    trainers = {side: Trainer(pair, 2, side, 2e-4, batches, torch.float32) for side in SIDES}
    losses = {side: [trainers[side].step(b) for b in batches] for side in SIDES}
    assert losses["glyph"][0] == pytest.approx(losses["reference"][0], rel=1e-5)  # the same model and batch
    assert all(a == pytest.approx(b, rel=1e-2) for a, b in zip(losses["glyph"], losses["reference"]))
    assert losses["glyph"][-1] < losses["glyph"][0]


def test_bench_report_holds_the_measured_rows(tmp_path, capsys, monkeypatch):
    """What bench measured (caught on its way to the report) stands in the report's rows, recomputed here;
    every timing and memory reading was taken on the device asked for."""
    measured, devices = [], []

    def keep(results, machine, args, path):
        measured.extend(results)
        return report.write_markdown(results, machine, args, path)

    def on_device(measure):  # the device is a required argument here: a reading that leaves it out fails
        def spy(fn, device):
            devices.append(device)
            return measure(fn, device)
        return spy

    monkeypatch.setattr(bench, "write_markdown", keep)
    monkeypatch.setattr(bench, "timed", on_device(bench.timed))
    monkeypatch.setattr(bench, "peak_memory", on_device(bench.peak_memory))
    out = tmp_path / "RESULTS.md"
    # Two repetitions: the second runs the sides in the other order (a first-only run hid a crash there).
    assert bench.main(["--configs", "tiny", "--repeats", "2", "--out", str(out), "--device", "cpu"]) == 0
    text = out.read_text()
    (result,) = measured
    assert set(devices) == {torch.device("cpu")} and len(devices) > 20
    assert result["machine"]["device"] == "cpu" and "GPU:" not in text and "--device" not in text
    assert "## tiny" in text and "NO" not in text.split("Same greedy tokens")[1].split("\n")[0]
    inference = result["inference"]
    assert set(inference) == {*bench.inference_dtypes(torch.device("cpu")), "int8"}  # bf16 where it is native

    def shown(values):  # a dtype not measured here shows a dash
        return [report._number(v) if v is not None else "–" for v in values]
    for name, measure in [("first token", "time to first token (with an image)"),
                          ("follow-up first token", "time to first token, follow-up after a 32-token reply"),
                          ("image 64", "image 64 tokens, no CFG"), ("image 256 cfg", "image 256 tokens, CFG 4")]:
        seconds = [inference[d][name][side] if d in inference else None for d in ("fp32", "bf16") for side in SIDES]
        assert _cells(text, measure)[1:5] == shown(seconds)
    for name, measure in [("first token", "time to first token (with an image)"),
                          ("image 256 cfg", "image 256 tokens, CFG 4")]:  # int8: Glyph's own column
        assert _cells(text, measure)[5] == report._number(inference["int8"][name]["glyph"])
        assert set(inference["int8"][name]) == {"glyph"}
    reply = f"reply {DECODE_TOKENS + 1} tokens"
    decode = [DECODE_TOKENS / (inference[d][reply][side] - inference[d]["first token"][side]) if d in inference
              else None for d in ("fp32", "bf16") for side in SIDES]
    assert _cells(text, "text decode")[1:5] == shown(decode)
    for (stage, dtype), run in result["training"].items():
        row = _cells(text, f"stage {stage} training, batch 8 × 256")
        at = 1 if dtype == "fp32" else 3
        assert row[at:at + 2] == [report._number(BATCH / run["step_seconds"][side]) for side in SIDES]
        g, r = run["losses"]["glyph"], run["losses"]["reference"]
        assert f"| {stage} | {dtype} | {len(g)} | {g[0]:.4f} → {g[-1]:.4f} | {r[0]:.4f} → {r[-1]:.4f} |" in text
    cold = result["cold_start"]
    assert cold["same_token"] and f"Glyph **{cold['seconds']['glyph']:.2f} s**" in text
    chart = out.with_suffix(".png")
    assert chart.stat().st_size > 10_000
    with Image.open(chart) as image:  # one panel of 6.5 × 4.6 inches at 110 dpi
        assert image.format == "PNG" and image.size == (715, 506)
    assert bench.main(["--configs", "tiny", "--repeats", "0"]) == 2
    assert "--repeats 0 must be ≥ 1" in capsys.readouterr().err


def test_cold_start_counts_until_the_first_token_not_the_exit():
    """A child that has its token at once and then takes 2 s to exit started in well under those 2 s."""
    child = "import time; print([7]); print(time.monotonic()); time.sleep(2)"
    seconds, tokens = cold_start.start_seconds([sys.executable, "-c", child])
    assert tokens == "[7]"
    assert 0 < seconds < 1.5


def test_cuda_without_a_gpu_is_one_clear_error(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench, "measure_machine", lambda device: pytest.fail("measured without a GPU"))
    assert bench.main(["--configs", "tiny", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "no CUDA GPU" in err and "Traceback" not in err


@pytest.mark.parametrize("native", [True, False])
def test_bf16_inference_is_measured_only_where_bf16_is_native(monkeypatch, native):
    """On an AVX2-only CPU bf16 is emulated ~100x slower than fp32: measuring it would take hours."""
    monkeypatch.setattr(bench, "training_dtype", lambda device: "bf16" if native else "fp32")
    assert list(bench.inference_dtypes(torch.device("cpu"))) == (["fp32", "bf16"] if native else ["fp32"])
    machine = {"bandwidth": 1e9, "flops": {"fp32": 1e9, "bf16": 1e7}, "threads": 2, "device": "cpu",
               "megabytes": 8, "matmul_size": 64, "bf16_native": native}
    said = "bf16 not measured for inference" in "\n".join(report.machine_lines(machine))
    assert said is not native


def test_training_on_a_gpu_picks_bf16_without_timing_the_cpu(monkeypatch):
    import training.precision as precision

    monkeypatch.setattr(bench, "choose_precision", precision.choose_precision.__wrapped__)  # not the cached one
    monkeypatch.setattr(precision, "cpu_bf16_is_faster", lambda: pytest.fail("timed the CPU for a GPU run"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert bench.training_dtype(torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert bench.training_dtype(torch.device("cuda")) == "fp32"


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_floors_on_paper_are_the_built_models(parts):
    """The shapes-only path (for sizes too big to build) and the built model's give the same shapes, parameter
    counts and floors, so neither can drift from the other."""
    config = CONFIGS["tiny"]
    glyph = assistant(parts, config, 64)  # LoRA apart, as in stage 2 training
    assert floors.of_model(glyph) == floors.of_config(config, lora=True)
    lora = sum(p.numel() for n, p in glyph.causal_lm.named_parameters() if "lora_" in n)
    built = {"vision tower": _count(glyph.vision_tower), "projector": _count(glyph.projector),
             "new vocabulary rows": _count(glyph.vocab), "LoRA": lora, "LLM in all": _count(glyph.causal_lm) - lora}
    assert built == {part: sizes.parameter_counts(config)[part] for part in built}
    for stage in (1, 2):
        labels = training_batches(glyph, stage, 1)[0]["labels"]
        assert int((labels[:, 1:] != IGNORE_INDEX).sum()) == supervised_tokens(config.slots, stage, config.train_length)
    glyph.merge_lora()  # inference: what bench's decode floors read
    paper = floors.of_config(config, lora=False)
    assert floors.of_model(glyph) == paper
    measured = bench.floor_seconds(glyph, glyph, {"bandwidth": 1e9})
    assert measured["bf16"]["token"] == floors.text_token_seconds(paper, 2, 1e9)
    assert measured["int8"]["image 64"] == floors.image_seconds(paper, 64, 1, 1e9)


def test_llava_real_is_a_real_size_that_builds_in_principle(capsys):
    """LLaVA-1.5's CLIP and a 1.1 B Llama: its LLM and vision tower built on the meta device (shapes, no memory)
    have the parameters the paper counts say, and its tokenizer reaches the LLM's 32,000 rows."""
    config = CONFIGS["llava-real"].validate()
    counts = sizes.parameter_counts(config)
    assert 0.5e9 <= counts["LLM in all"] <= 2e9 and config.slots == 576
    with torch.device("meta"):
        llm = LlamaForCausalLM(llama_config(config))
        clip = open_clip.CLIP(**clip_config(config))
    assert _count(llm) == counts["LLM in all"] and _count(llm.model.layers) == counts["LLM layers"]
    assert _count(clip.visual) == counts["vision tower"]
    assert vq_config(config, 256).grid == 16 and len(build_tokenizer(config.vocab_size)) == 32000
    assert "llava-real" not in bench.DEFAULT_CONFIGS  # minutes and GBs: asked for by name, on a GPU
    assert floors.main(["--config", "llava-real"]) == 0
    assert f"| LLM in all | {counts['LLM in all']:,} |" in capsys.readouterr().out


def _cells(markdown: str, measure: str) -> list[str]:
    """The cells of the speed table's row for `measure` (its first cell is "measure (unit)")."""
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {measure} ("))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_frozen_layers_in_bf16_train_as_autocast_does(parts):
    """store_frozen_layers_in (what glyph train does under bf16) gives autocast's numbers without its casts."""
    from training.assistant_stage import store_frozen_layers_in

    pairs = [Pair.build(parts, CONFIGS["tiny"], 64) for _ in range(2)]
    batches = training_batches(pairs[0].glyph, 2, 3)
    plain = Trainer(pairs[0], 2, "glyph", 2e-4, batches, torch.float32)
    plain.dtype = torch.bfloat16  # autocast over fp32 frozen weights
    stored = Trainer(pairs[1], 2, "glyph", 2e-4, batches, torch.bfloat16)
    layers = pairs[1].glyph.causal_lm.model.layers
    assert layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in pairs[1].glyph.parameters() if p.requires_grad)
    assert store_frozen_layers_in(pairs[1].glyph, torch.bfloat16) == 2 * 7  # every frozen linear of 2 layers
    for batch in batches:
        assert stored.step(batch) == pytest.approx(plain.step(batch), rel=1e-4)


def test_decode_step_leaves_out_the_parts_it_names(parts, capsys):
    """benchmarks/decode_step.py: with the products left out every layer adds nothing, so the step's hidden
    state is the fed token's embedding through the final norm; with the norms left out too, the embedding itself."""
    from assistant.generation import Prompt, _Rows
    from benchmarks import decode_step

    pair = Pair.build(parts, CONFIGS["tiny"], 64, merged=True)
    model, (ids, pixels) = pair.glyph, pair._question()
    token = ids[0, -1:]
    with torch.inference_mode():
        rows = _Rows(model, [Prompt(ids, model.image_features(pixels))], room=8)
        embedding = model.causal_lm.get_input_embeddings()(token)
        with decode_step.stand_ins(1):
            rows.feed(token)
        torch.testing.assert_close(rows.last[0], model.causal_lm.model.norm(embedding)[0])
        with decode_step.stand_ins(3):
            rows.feed(token)
        torch.testing.assert_close(rows.last[0], embedding[0])
        rows.feed(token)  # the patches are gone again: the layers add to the embedding
        assert not torch.allclose(rows.last[0], model.causal_lm.model.norm(embedding)[0])
    assert decode_step.main(["--config", "tiny", "--context", "40", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in decode_step.LEFT_OUT + ("matrix products", "output head (text)"))
