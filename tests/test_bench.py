"""The benchmark's fairness: the reference (LLaVA + peft + generate()) holds Glyph's weights and says the same."""
from __future__ import annotations

import pytest
import torch

from benchmarks import bench
from benchmarks.parts import CONFIGS, build_parts
from benchmarks.workloads import SIDES, Pair, Trainer, training_batches


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


def test_both_sides_train_alike_from_the_same_weights(parts):
    pair = Pair.build(parts, CONFIGS["tiny"], 64)
    batches = training_batches(pair.glyph, 2, 3)
    trainers = {side: Trainer(pair, 2, side, 2e-4, batches, torch.float32) for side in SIDES}
    losses = {side: [trainers[side].step(b) for b in batches] for side in SIDES}
    assert losses["glyph"][0] == pytest.approx(losses["reference"][0], rel=1e-5)  # the same model and batch
    assert all(a == pytest.approx(b, rel=1e-2) for a, b in zip(losses["glyph"], losses["reference"]))
    assert losses["glyph"][-1] < losses["glyph"][0]


def test_bench_writes_its_report_and_chart(tmp_path, capsys):
    out = tmp_path / "RESULTS.md"
    assert bench.main(["--configs", "tiny", "--repeats", "1", "--out", str(out)]) == 0
    report = out.read_text()
    assert "## tiny" in report and "text decode" in report and "stage 2 training" in report
    assert "NO" not in report.split("Same greedy tokens")[1].split("\n")[0]
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert bench.main(["--configs", "tiny", "--repeats", "0"]) == 2
    assert "--repeats 0 must be ≥ 1" in capsys.readouterr().err


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
