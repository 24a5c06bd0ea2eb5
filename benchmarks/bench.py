"""Glyph against the plain Hugging Face way, speed and memory side by side in one run.

    make bench                                          # every config; writes benchmarks/RESULTS.md and .png
    glyph bench --configs small --repeats 5             # one config, more repetitions
    glyph bench --configs tiny --out /tmp/bench.md      # seconds: what the tests run
    glyph bench --configs llava-real --device cuda      # real sizes (ViT-L-14-336, a 1.1 B Llama) on a GPU

For each config (benchmarks/parts.py) it builds random-weight parts, Glyph's
assistant on them and the reference (benchmarks/reference.py:
LlavaForConditionalGeneration + peft LoRA + generate()) on the same weights. It
first checks that both give the same greedy tokens in fp32, then times every
inference workload on both sides alternately (Glyph first in even repetitions,
the reference first in odd ones) after a warm-up, in fp32 and in bf16, and
takes medians. Training steps alternate the same way, from the same weights, on
the same batches, in the precision `glyph train` picks. See benchmarks/README.md
for what each number means.

With --device cuda both sides, their inputs and the machine measurements run on the GPU; Glyph's int8
decoding (a CPU path) and the cold start (`glyph chat` loads onto the CPU) are measured on the CPU only.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from assistant.chat import one_turn_prompts
from assistant.templates import IGNORE_INDEX
from benchmarks import floors
from benchmarks.cold_start import cold_start, save_both
from benchmarks.measure import bandwidth_bytes_per_s, matmul_flops_per_s, median, now, peak_memory, timed
from benchmarks.parts import CONFIGS, BenchConfig, build_parts
from benchmarks.report import write_chart, write_markdown
from benchmarks.workloads import BATCH, DECODE_TOKENS, QUESTION, SIDES, Pair, Trainer, training_batches
from training.precision import choose_precision

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FAIRNESS_TOKENS = 32
IMAGE_TOKENS = (64, 256)
TRAINING_STEPS = 6  # timed steps per side, after one warm-up step
LEARNING_RATES = {1: 1e-3, 2: 2e-4}
DEFAULT_CONFIGS = ["smollm2", "small", "scenes-tiny"]  # llava-real is for a GPU: minutes and GBs to build
# The machine probes' sizes: a read far beyond the caches, and the largest matmul a config's layers do. A GPU
# needs bigger ones: a 1024² product is over in microseconds there, far from its peak.
PROBES = {"cpu": {"megabytes": 512, "matmul_size": 1024}, "cuda": {"megabytes": 4096, "matmul_size": 8192}}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=sorted(CONFIGS))
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions after one warm-up (median)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md",
                   help="the markdown report; the chart goes next to it as .png")
    p.add_argument("--device", default="cpu", choices=sorted(PROBES),
                   help="where both sides run: cpu, or cuda (the current GPU)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        print(f"glyph bench: --repeats {args.repeats} must be ≥ 1", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("glyph bench: --device cuda, but no CUDA GPU is available here (torch.cuda.is_available() is "
              "False); run it on a machine with a GPU, or use --device cpu", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    started = time.perf_counter()
    machine = measure_machine(device)
    print(f"machine: {machine['bandwidth'] / 1e9:.1f} GB/s read, matmul {machine['flops']['fp32'] / 1e9:.0f} "
          f"GFLOP/s fp32, {machine['flops']['bf16'] / 1e9:.0f} bf16")
    results = []
    with tempfile.TemporaryDirectory(prefix="glyph-bench-") as root:
        for name in args.configs:
            results.append(run_config(CONFIGS[name], args.repeats, machine, Path(root) / name, device))
    machine["seconds"] = time.perf_counter() - started
    markdown = write_markdown(results, machine, args, args.out)
    chart = write_chart(results, args.out.with_suffix(".png"))
    print(markdown.read_text().split("\n## ", 2)[1] if len(results) else "")
    print(f"wrote {markdown} and {chart} in {machine['seconds']:.0f} s")
    return 0


def measure_machine(device: torch.device) -> dict:
    probe = PROBES[device.type]
    machine = {"bandwidth": bandwidth_bytes_per_s(probe["megabytes"], device=device),
               "flops": {name: matmul_flops_per_s(dtype, probe["matmul_size"], device=device)
                         for name, dtype in DTYPES.items()},
               "threads": torch.get_num_threads(), "device": device.type,
               "bf16_native": training_dtype(device) == "bf16", **probe}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    return machine


def training_dtype(device: torch.device) -> str:
    """The precision glyph train picks on `device`: bf16 where the CPU has bf16 matmuls (timed once per machine
    by training.precision) or where the GPU supports bf16 (asked of CUDA: nothing is timed); else fp32."""
    return "bf16" if choose_precision("auto", device) == "bf16" else "fp32"


def inference_dtypes(device: torch.device) -> dict[str, torch.dtype]:
    """fp32, and bf16 where it is native (as training_dtype decides): on an AVX2-only CPU PyTorch emulates bf16 about
    100× slower than fp32, and a bf16 pass over the smollm2 config would take hours to say only that."""
    return DTYPES if training_dtype(device) == "bf16" else {"fp32": DTYPES["fp32"]}


def run_config(config: BenchConfig, repeats: int, machine: dict, root: Path, device: torch.device) -> dict:
    print(f"\n== {config.name}: building parts")
    parts = build_parts(config, root, IMAGE_TOKENS)
    result = {"config": config, "machine": machine, **inference_side_by_side(parts, config, repeats, machine, device)}
    prompt_ids = result.pop("prompt_ids")
    # Training runs in the precision glyph train picks here (bf16 where the CPU or GPU has it): both sides' best,
    # and equal; fp32 training would only double the run's time.
    dtype_name = training_dtype(device)
    result["training"] = {(stage, dtype_name): train_side_by_side(parts, config, stage, DTYPES[dtype_name],
                                                                  TRAINING_STEPS, device) for stage in (1, 2)}
    if device.type == "cpu":  # glyph chat, serve and ui load onto the CPU: that is the start users wait for
        print(f"{config.name}: cold starts")
        result["cold_start"] = cold_start(save_both(parts, config, root / "cold-start", prompt_ids), repeats)
    return result


def inference_side_by_side(parts, config: BenchConfig, repeats: int, machine: dict, device: torch.device) -> dict:
    """Fairness, then speed and memory in fp32 and bf16 (bf16 where it is native; and Glyph's int8 on the CPU), and
    the decode floors. Its pairs are gone once it returns, so that a GPU holds the training pair alone."""
    pairs = {tokens: Pair.build(parts, config, tokens, merged=True, device=device) for tokens in IMAGE_TOKENS}
    result = {"fairness": fairness(pairs[64]), "inference": {}, "memory": {}}
    print(f"{config.name}: same greedy tokens in fp32: {result['fairness']}")
    for dtype_name, dtype in inference_dtypes(device).items():
        for pair in pairs.values():
            pair.to(dtype)
        calls = inference_calls(pairs)
        result["inference"][dtype_name] = alternate(calls, repeats, f"{config.name} inference {dtype_name}", device)
        biggest = f"image {IMAGE_TOKENS[-1]} cfg"
        result["memory"][dtype_name] = {side: peak_memory(calls[biggest][side], device) for side in SIDES}
    if device.type == "cpu":  # int8 decoding is Glyph's CPU path (assistant/int8.py)
        result["inference"]["int8"] = int8_inference(pairs, repeats, config.name)
    result["floors"] = floor_seconds(pairs[64].glyph, pairs[256].glyph, machine)
    result["prompt_ids"] = one_turn_prompts(pairs[64].glyph, QUESTION)[0].input_ids[0].tolist()  # for cold starts
    return result


def int8_inference(pairs: dict[int, Pair], repeats: int, name: str) -> dict[str, dict[str, float]]:
    """Glyph decoding with int8 weights (glyph chat --int8) over fp32 activations' model, on the CPU. The reference
    has no int8 of its own (plain transformers), so only Glyph runs; its rows compare with the reference's best."""
    for pair in pairs.values():
        pair.to(torch.float32)
        pair.glyph.int8_decoding = True
    try:
        calls = {work: {"glyph": sides["glyph"]} for work, sides in inference_calls(pairs).items()}
        return alternate(calls, repeats, f"{name} inference int8 (Glyph)", torch.device("cpu"))
    finally:
        for pair in pairs.values():
            pair.glyph.int8_decoding = False


def fairness(pair: Pair) -> dict[str, bool]:
    """Do both sides produce the same tokens under greedy decoding (fp32)?"""
    text = {side: pair.reply(side, FAIRNESS_TOKENS)() for side in SIDES}
    checks = {f"text {FAIRNESS_TOKENS} tokens": text["glyph"] == text["reference"]}
    for scale in (1.0, 4.0):
        codes = {side: pair.draw(side, scale, seed=None)() for side in SIDES}
        checks[f"image {pair.glyph.layout.tokens_per_image} tokens, cfg {scale:g}"] = torch.equal(*codes.values())
    return checks


def inference_calls(pairs: dict[int, Pair]) -> dict[str, dict[str, callable]]:
    small = pairs[IMAGE_TOKENS[0]]
    calls = {"first token": {s: small.reply(s, 1) for s in SIDES},
             "follow-up first token": {s: small.follow_up(s) for s in SIDES},
             f"reply {DECODE_TOKENS + 1} tokens": {s: small.reply(s, DECODE_TOKENS + 1) for s in SIDES}}
    for tokens, pair in pairs.items():
        calls[f"image {tokens}"] = {s: pair.draw(s, 1.0) for s in SIDES}
        calls[f"image {tokens} cfg"] = {s: pair.draw(s, 4.0) for s in SIDES}
    return calls


def alternate(calls: dict[str, dict[str, callable]], repeats: int, title: str,
              device: torch.device) -> dict[str, dict[str, float]]:
    """Median seconds of each call on each side, the sides in alternating order, after a warm-up round of
    the calls that are not just longer versions of another (a 256-token drawing runs the 64-token one's code)."""
    sides = [side for side in SIDES if side in next(iter(calls.values()))]
    seconds = {name: {side: [] for side in sides} for name in calls}
    warm_up = [name for name in calls if not name.startswith(f"image {IMAGE_TOKENS[-1]}")]
    with tqdm(total=(len(warm_up) + repeats * len(calls)) * len(sides), desc=title, unit="run") as progress:
        for name in warm_up:
            for side in sides:
                _prepare(calls[name][side])
                calls[name][side]()
                progress.update(1)
        for repeat in range(repeats):
            order = sides if repeat % 2 == 0 else sides[::-1]
            for name, per_side in calls.items():
                for side in order:
                    _prepare(per_side[side])
                    seconds[name][side].append(timed(per_side[side], device))
                    progress.update(1)
    return {name: {side: median(values) for side, values in per_side.items()} for name, per_side in seconds.items()}


def _prepare(call: Callable) -> None:
    """What a call needs done first and not timed (a follow-up's earlier exchange: Pair.follow_up)."""
    prepare = getattr(call, "prepare", None)
    if prepare is not None:
        prepare()


def train_side_by_side(parts, config: BenchConfig, stage: int, dtype: torch.dtype, steps: int,
                       device: torch.device) -> dict:
    """Both sides from the same weights on the same batches: step seconds, losses, peak memory."""
    pair = Pair.build(parts, config, IMAGE_TOKENS[0], lora=stage == 2, device=device)
    length = config.train_length
    batches = training_batches(pair.glyph, stage, steps + 2, length=length, device=device)
    trainers = {side: Trainer(pair, stage, side, LEARNING_RATES[stage], batches, dtype) for side in SIDES}
    seconds = {side: [] for side in SIDES}
    losses = {side: [] for side in SIDES}
    name = "fp32" if dtype == torch.float32 else "bf16"
    for step, batch in enumerate(tqdm(batches[:-1], desc=f"{config.name} stage {stage} {name}", unit="step")):
        for side in SIDES if step % 2 == 0 else SIDES[::-1]:
            started = now(device)
            losses[side].append(trainers[side].step(batch))
            if step:
                seconds[side].append(now(device) - started)
    memory = {side: peak_memory(lambda s=side: trainers[s].step(batches[-1]), device) for side in SIDES}
    return {"step_seconds": {side: median(v) for side, v in seconds.items()}, "losses": losses,
            "peak_bytes": memory, "state_bytes": {side: trainers[side].trainable_bytes() for side in SIDES},
            "length": length,
            "flops": floors.training_step_flops(floors.of_model(pair.glyph), BATCH, length,
                                                int((batches[0]["labels"][:, 1:] != IGNORE_INDEX).sum()))}


def floor_seconds(glyph64, glyph256, machine: dict) -> dict:
    bandwidth = machine["bandwidth"]

    def drawing(glyph, size: int) -> float:
        return floors.image_seconds(floors.of_model(glyph), glyph.layout.tokens_per_image, size, bandwidth)

    return {dtype: {"token": floors.text_token_seconds(floors.of_model(glyph64), size, bandwidth),
                    "image 64": drawing(glyph64, size), "image 256": drawing(glyph256, size)}
            for dtype, size in (("fp32", 4), ("bf16", 2), ("int8", 1))}


if __name__ == "__main__":
    sys.exit(main())
