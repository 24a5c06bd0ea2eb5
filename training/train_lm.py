"""Train the scene world's language model from scratch: a byte-level BPE tokenizer and a small Llama-style chat LM.

    accelerate launch -m training.train_lm --config training/recipes/lm-scenes.yaml --data data/text.jsonl --out runs/lm
    glyph train lm --config training/recipes/lm-scenes.yaml --data data/text.jsonl --out runs/lm

--data is JSONL (repeat --data for several files), one text-only chat a line, such as
`glyph data chats --kind text` writes about scenes:

    {"id": "c1", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}

`content` is a string or a list of {"type": "text", "text": ...} parts; a row
with an image part, or malformed, is refused with its file and row number
(--skip-bad skips and lists them). Every chat is rendered with the
assistant's own `render_chat` and the ChatML template the tokenizer is saved
with, so the LM learns exactly the token boundaries it will see later; it
trains on every token (plain next-token pretraining on chat-formatted text), or
with --supervise assistant only on the replies.
2 % of the chats, chosen by a hash of their id, are held out for the loss.

Writes into --out a Hugging Face model directory, so that from then on nothing
can tell it from a downloaded model (`load_language_model("runs/lm")`,
`AutoTokenizer.from_pretrained("runs/lm")` with its chat template):

    config.json generation_config.json model.safetensors   the LlamaForCausalLM, at the end
    tokenizer.json tokenizer_config.json chat_template.jinja
    checkpoint/ checkpoint-tokenizer/   the latest training state and its tokenizer; the same command resumes
    logs/                               TensorBoard
    report.json curves.png              parameters, speed, final train and held-out loss; training curves
    samples.txt                         greedy replies to held-out prompts, "Hello!" and "What can you do?"

Kill it at any time: the next run with the same --out continues from the last
checkpoint with the saved tokenizer (Ctrl+C saves one before stopping;
--stop-after N saves and stops after N steps of this run). A finished run is
not trained again; pass --overwrite to start over.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from assistant.config import ConfigError, write_json_atomic
from assistant.templates import IGNORE_INDEX, ROLES, ImageLayout, TemplateError, render_chat
from training.checkpoint import CheckpointError, load_checkpoint, read_state, save_checkpoint
from training.harness import SaveSchedule, add_save_options, already_trained, start_accelerator
from training.pictures import loss_curves
from training.precision import PRECISIONS
from training.recipe import RecipeError, parse_with_recipe
from training.schedule import cosine_with_warmup

PAD, START, END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
TOKENIZER_DIR = "checkpoint-tokenizer"  # the tokenizer the checkpoint was trained with; a resume reuses it
FINAL_PARTIAL = ".final-partial"
FIXED_PROMPTS = ["Hello!", "What can you do?"]
HELD_OUT_PROMPTS = 3
MAX_NEW_TOKENS = 40
MAX_LISTED = 10  # bad rows named in an error
CURVES = ["loss", "lr", "tokens_per_s"]


class ChatDataError(ValueError):
    """Chat data that cannot be trained on; the message names the file and rows."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph train lm", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, action="append", type=Path,
                   help="JSONL of text-only chats ({'id', 'messages'}); repeat for several files")
    p.add_argument("--out", required=True, type=Path, help="run directory: model, tokenizer, checkpoint, report")
    p.add_argument("--overwrite", action="store_true", help="delete --out and train from scratch")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed or too long chats (they are listed)")
    model = p.add_argument_group("tokenizer and model (LlamaConfig)")
    model.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary, 3 special tokens included")
    model.add_argument("--hidden-size", type=int, default=256)
    model.add_argument("--layers", type=int, default=4)
    model.add_argument("--heads", type=int, default=4)
    model.add_argument("--kv-heads", type=int, default=4, help="fewer than --heads: grouped-query attention")
    model.add_argument("--intermediate-size", type=int, default=768, help="width of the SwiGLU MLP")
    model.add_argument("--max-length", type=int, default=512,
                       help="context (max_position_embeddings); longer chats are bad rows")
    train = p.add_argument_group("training")
    train.add_argument("--steps", type=int, default=600)
    train.add_argument("--batch-size", type=int, default=32, help="chats per optimizer step")
    train.add_argument("--grad-accum", type=int, default=1, help="split each batch into this many micro-batches")
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--supervise", choices=("all", "assistant"), default="all",
                       help="all: every token (plain pretraining); assistant: only the replies, so every gradient "
                            "comes from answering what the prompt says")
    train.add_argument("--warmup", type=int, default=30, help="linear warm-up steps before the cosine decay")
    train.add_argument("--weight-decay", type=float, default=0.1, help="on matrices only")
    train.add_argument("--held-out", type=float, default=0.02, help="share of chats held out (by a hash of the id)")
    train.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 autocast only where this machine runs it faster")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--stop-after", type=int, default=0,
                       help="save and stop after this many steps of this run (0: run to --steps); rerun to resume")
    every = p.add_argument_group("outputs")
    every.add_argument("--log-every", type=int, default=10)
    every.add_argument("--eval-every", type=int, default=100, help="held-out loss every this many steps; 0: at the end")
    add_save_options(every, 100)
    return p


# ---- data: JSONL rows → checked chats ----

@dataclass
class Chat:
    id: str
    messages: list[dict]  # [{"role", "content": [{"type": "text", "text"}]}]
    where: str  # "FILE row N", for messages about it
    ids: torch.Tensor | None = None  # (T,) int64, set by tokenize_chats
    labels: torch.Tensor | None = None  # (T,) the ids, or IGNORE_INDEX where --supervise leaves a token out


def load_chats(files: list[Path]) -> tuple[list[Chat], list[tuple[str, str]]]:
    """The good chats of every file, and (where, why) for each bad row."""
    chats, bad = [], []
    for file in files:
        for number, row in read_rows(file):
            where = f"{file} row {number}"
            try:
                chats.append(check_row(row, where))
            except ChatDataError as why:
                bad.append((where, str(why)))
    return chats, bad


def read_rows(file: Path) -> list[tuple[int, object]]:
    """(line number, parsed row or a ChatDataError) for every non-blank line, read with 🤗 datasets."""
    if not file.is_file():
        raise ChatDataError(f"--data {file} does not exist; pass a JSONL file of chats")
    numbers = [n for n, line in enumerate(_lines(file), 1) if line.strip()]
    try:
        with tempfile.TemporaryDirectory(prefix="glyph-lm-data-") as cache:
            rows = datasets.load_dataset("json", data_files=str(file), split="train", cache_dir=cache).to_list()
    except Exception:  # noqa: BLE001 - not JSON, or rows arrow cannot put in one schema: read the lines ourselves
        return _read_lines(file)
    if len(rows) != len(numbers):  # datasets' and our idea of a row differ: trust the lines
        return _read_lines(file)
    return list(zip(numbers, rows))


def _lines(file: Path) -> list[str]:
    return file.read_text(errors="replace").split("\n")  # not splitlines: JSON strings may hold U+2028 and co.


def _read_lines(file: Path) -> list[tuple[int, object]]:
    rows = []
    for number, line in enumerate(_lines(file), 1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                rows.append((number, ChatDataError(f"not JSON ({error.msg} at column {error.colno})")))
    return rows


def check_row(row: object, where: str) -> Chat:
    """The row as a Chat whose contents are lists of text parts; ChatDataError says what is wrong with it."""
    if isinstance(row, ChatDataError):  # a line that is not JSON
        raise row
    if not isinstance(row, dict):
        raise ChatDataError(f"a row must be a JSON object, got {type(row).__name__}")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatDataError("no 'messages' list (a chat is {'id': ..., 'messages': [{'role', 'content'}, ...]})")
    chat_id = str(row["id"]) if row.get("id") is not None else where
    return Chat(chat_id, [_check_message(i, m) for i, m in enumerate(messages)], where)


def _check_message(index: int, message: object) -> dict:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise ChatDataError(f"message {index} needs a 'role' of {', '.join(ROLES)}")
    content = message.get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise ChatDataError(f"message {index}: 'content' must be a string or a list of text parts")
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image":
            raise ChatDataError(f"message {index} has an image part; the language model trains on text only")
        if kind != "text" or not isinstance(part.get("text"), str):
            raise ChatDataError(f"message {index}: every content part must be {{'type': 'text', 'text': str}}")
    return {"role": message["role"], "content": [{"type": "text", "text": p["text"]} for p in parts]}


def texts_of(chat: Chat) -> list[str]:
    return [part["text"] for message in chat.messages for part in message["content"]]


def report_bad(bad: list[tuple[str, str]], skip_bad: bool) -> None:
    if not bad:
        return
    listing = "\n".join(f"  {where}: {why}" for where, why in bad[:MAX_LISTED])
    more = f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    if not skip_bad:
        raise ChatDataError(f"{len(bad)} bad chat row(s):\n{listing}{more}\n"
                            "fix or remove them, or pass --skip-bad to train without them")
    print(f"skipping {len(bad)} bad chat row(s):\n{listing}{more}", file=sys.stderr)


def split_held_out(chats: list[Chat], share: float) -> tuple[list[Chat], list[Chat]]:
    """(train, held out): the share of chats whose id hashes lowest, at least one; fixed by the ids alone."""
    def key(i: int) -> tuple[str, int]:
        return hashlib.sha256(chats[i].id.encode()).hexdigest(), i

    count = max(1, round(share * len(chats)))
    held = set(sorted(range(len(chats)), key=key)[:count])
    return [c for i, c in enumerate(chats) if i not in held], [c for i, c in enumerate(chats) if i in held]


# ---- tokenizer and tokens ----

def train_tokenizer(texts: list[str], vocab_size: int, max_length: int):
    """A byte-level BPE tokenizer (GPT-2 style, no prefix space) with ChatML specials and chat template."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, START, END], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=END, pad_token=PAD, bos_token=None,
                                   chat_template=CHATML, model_max_length=max_length)


def text_layout(tokenizer) -> ImageLayout:
    """Image ids past the vocabulary: text-only chats never use them, and any use would fail loudly."""
    n = len(tokenizer)
    return ImageLayout(image_id=n, slots_per_image=1, boi_id=n + 1, eoi_id=n + 2, code_start=n + 3,
                       codebook_size=1, tokens_per_image=1)


def tokenize_chats(chats: list[Chat], tokenizer, max_length: int, supervise: str = "all") -> list[tuple[str, str]]:
    """Set each chat's ids and labels with render_chat; (where, why) for chats that cannot be rendered or are too
    long. supervise="all" trains on every token; "assistant" only on the replies (render_chat's labels)."""
    layout, bad = text_layout(tokenizer), []
    for chat in tqdm(chats, desc="tokenizing", unit="chat", leave=False, mininterval=1.0):
        try:
            rendered = render_chat(chat.messages, tokenizer, layout)
            chat.ids = rendered.input_ids  # (T,)
            chat.labels = rendered.labels if supervise == "assistant" else rendered.input_ids
        except TemplateError as why:
            bad.append((chat.where, str(why)))
            continue
        if len(chat.ids) > max_length:
            bad.append((chat.where, f"{len(chat.ids)} tokens, more than --max-length {max_length}"))
    return bad


def collate(sequences: list[torch.Tensor], pad_id: int,
            targets: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) input_ids and labels: `targets` (default: every real token supervised), padding
    IGNORE_INDEX."""
    longest = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), longest), IGNORE_INDEX, dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, :len(ids)] = ids
        labels[row, :len(ids)] = ids if targets is None else targets[row]
    return input_ids, labels


def predicted_tokens(targets: list[torch.Tensor]) -> int:
    """How many next-token targets a batch has (a sequence's first token is never one)."""
    return sum(int((t[1:] != IGNORE_INDEX).sum()) for t in targets)


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """The chat indices of `step`'s batch: each epoch a fresh permutation fixed by (seed, epoch), so a resumed
    run sees exactly the batches the unbroken run would have seen; the last n mod batch_size wait an epoch."""
    epoch, offset = divmod(step, n // batch_size)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[offset * batch_size:(offset + 1) * batch_size]


# ---- model ----

def lm_config(args: argparse.Namespace, tokenizer) -> dict:
    """The LlamaConfig keywords: what the checkpoint was trained with (a resume must match it)."""
    sizes = {"--hidden-size": args.hidden_size, "--layers": args.layers, "--heads": args.heads,
             "--kv-heads": args.kv_heads, "--intermediate-size": args.intermediate_size,
             "--max-length": args.max_length}
    bad = [f"{k} {v}" for k, v in sizes.items() if v <= 0]
    if bad:
        raise ConfigError(f"model sizes must be positive, got {', '.join(bad)}")
    if args.hidden_size % args.heads or (args.hidden_size // args.heads) % 2 or args.heads % args.kv_heads:
        raise ConfigError(f"--hidden-size {args.hidden_size} must split into --heads {args.heads} of an even width, "
                          f"and --heads into groups of --kv-heads {args.kv_heads}")
    return {"vocab_size": len(tokenizer), "hidden_size": args.hidden_size, "num_hidden_layers": args.layers,
            "num_attention_heads": args.heads, "num_key_value_heads": args.kv_heads,
            "intermediate_size": args.intermediate_size, "max_position_embeddings": args.max_length,
            "rope_theta": 10000.0, "tie_word_embeddings": True, "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


def build_lm(config: dict):
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=config["eos_token_id"],
                                               pad_token_id=config["pad_token_id"], do_sample=False)
    return model


class Untied:
    """The model as checkpoints see it: each tied tensor once (safetensors refuses two names for one tensor)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def state_dict(self) -> dict[str, torch.Tensor]:
        kept, seen = {}, set()
        for name, value in self.model.state_dict().items():
            if value.data_ptr() not in seen:  # lm_head.weight is embed_tokens.weight
                seen.add(value.data_ptr())
                kept[name] = value
        return kept

    def load_state_dict(self, weights: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected or set(missing) - (set(self.model.state_dict()) - set(self.state_dict())):
            raise ConfigError(f"checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")


def optimizer_for(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (embeddings, projections) only, not on norms' gains."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


# ---- main ----

def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_with_recipe(build_parser(), argv)
        _check_options(args)
        if args.overwrite and args.out.exists():
            shutil.rmtree(args.out)
        state = read_state(args.out / "checkpoint")
        if already_trained(state, args.out):
            return 0
        tokenizer, config, train, held_out = prepare(args, state)
    except (ChatDataError, ConfigError, RecipeError, ValueError) as error:
        print(f"glyph train lm: {error}", file=sys.stderr)
        return 2
    try:
        train_loop(args, tokenizer, config, train, held_out)
    except CheckpointError as error:
        print(f"glyph train lm: {error}", file=sys.stderr)
        return 2
    return 0


def _check_options(args: argparse.Namespace) -> None:
    if args.vocab_size < 256 + 3:
        raise ConfigError(f"--vocab-size {args.vocab_size} is below the 256 bytes and 3 special tokens")
    if args.batch_size < 1 or args.grad_accum < 1 or args.batch_size % args.grad_accum:
        raise ConfigError(f"--batch-size {args.batch_size} must be a positive multiple of --grad-accum "
                          f"{args.grad_accum}")
    if args.steps < 1 or args.save_every < 1 or args.log_every < 1 or not 0 < args.held_out < 1:
        raise ConfigError("--steps, --save-every and --log-every must be positive and --held-out in (0, 1)")


def prepare(args: argparse.Namespace, state: dict | None) -> tuple:
    """The tokenizer (trained, or the checkpoint's), the model config and the tokenized train/held-out chats."""
    chats, bad = load_chats(args.data)
    if not chats:
        report_bad(bad, skip_bad=False)
        raise ChatDataError(f"--data {', '.join(map(str, args.data))} holds no chats")
    if state is None:
        tokenizer = train_tokenizer([t for chat in chats for t in texts_of(chat)], args.vocab_size, args.max_length)
    else:
        tokenizer = saved_tokenizer(args.out)
    config = lm_config(args, tokenizer)
    if state is not None and (state["config"] != config or state["bpe_vocab_size"] != args.vocab_size):
        raise ConfigError(f"{args.out / 'checkpoint'} was trained with another tokenizer or model config; "
                          "use a new --out, or --overwrite to start over")
    bad += tokenize_chats(chats, tokenizer, args.max_length, args.supervise)
    report_bad(bad, args.skip_bad)
    train, held_out = split_held_out([c for c in chats if c.ids is not None and len(c.ids) <= args.max_length],
                                     args.held_out)
    if len(train) < args.batch_size:
        raise ChatDataError(f"{len(train)} training chats, fewer than --batch-size {args.batch_size}")
    if state is None:
        save_tokenizer_atomic(tokenizer, args.out / TOKENIZER_DIR)
    return tokenizer, config, train, held_out


def saved_tokenizer(out: Path):
    """The tokenizer the checkpoint was trained with: a resumed run never trains a new one."""
    if not (out / TOKENIZER_DIR / "tokenizer.json").is_file():
        raise ConfigError(f"{out / 'checkpoint'} has no saved tokenizer in {out / TOKENIZER_DIR}; "
                          "pass --overwrite to start over")
    return AutoTokenizer.from_pretrained(out / TOKENIZER_DIR)


def save_tokenizer_atomic(tokenizer, directory: Path) -> None:
    partial = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)


def train_loop(args: argparse.Namespace, tokenizer, config: dict, train: list[Chat], held_out: list[Chat]) -> None:
    accelerator, precision = start_accelerator(args.precision, args.out)
    saving = SaveSchedule(args.save_every, args.save_minutes, accelerator)
    rank, world = accelerator.process_index, accelerator.num_processes
    if args.batch_size % (world * args.grad_accum):
        raise SystemExit(f"glyph train lm: --batch-size {args.batch_size} does not split into --grad-accum "
                         f"{args.grad_accum} micro-batches on each of {world} processes")
    torch.manual_seed(args.seed)
    model = build_lm(config)
    optimizer = optimizer_for(model, args)
    scheduler = cosine_with_warmup(optimizer, args.warmup, args.steps)
    state = load_checkpoint(args.out / "checkpoint", Untied(model), optimizer, scheduler) or {
        "step": 0, "history": [], "evals": [], "seconds": 0.0, "tokens": 0, "config": config,
        "bpe_vocab_size": args.vocab_size}
    if state["step"]:
        print(f"resuming {args.out} from step {state['step']} of {args.steps}")
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.init_trackers("lm", config={k: str(v) for k, v in vars(args).items()})
    parameters = sum(p.numel() for p in model.parameters())
    print(f"training a Llama-style LM ({parameters / 1e6:.2f} M parameters, vocabulary {len(tokenizer)}) on "
          f"{len(train)} chats ({len(held_out)} held out), precision {'bf16' if precision == 'bf16' else 'fp32'}, "
          f"{args.steps} steps of {args.batch_size}")

    progress = tqdm(total=args.steps, initial=state["step"], desc="lm", unit="step")
    started, started_step, earlier = time.perf_counter(), state["step"], state["seconds"]
    run_tokens = 0
    last_stop = min(args.steps, started_step + args.stop_after) if args.stop_after else args.steps

    def save() -> None:
        state["seconds"] = earlier + time.perf_counter() - started  # wall time over every resumed run
        if accelerator.is_main_process:  # every process holds the same weights; one writes them
            save_checkpoint(args.out / "checkpoint", Untied(accelerator.unwrap_model(model)), optimizer, scheduler,
                            state)

    try:
        for step in range(state["step"], last_stop):
            model.train()
            chosen = batch_indices(step, args.batch_size, len(train), args.seed)[rank::world]
            loss, tokens = train_step(accelerator, model, [train[int(i)] for i in chosen], args.grad_accum,
                                      tokenizer.pad_token_id)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"], run_tokens = step + 1, run_tokens + tokens
            state["tokens"] += tokens
            rate = run_tokens / (time.perf_counter() - started)
            if state["step"] % args.log_every == 0 or state["step"] == args.steps:
                row = {"step": state["step"], "loss": loss, "lr": scheduler.get_last_lr()[0], "tokens_per_s": rate}
                state["history"].append(row)
                accelerator.log(row, step=state["step"])
            progress.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rate:.0f}")
            progress.update(1)
            if args.eval_every and state["step"] % args.eval_every == 0 and state["step"] < args.steps:
                evaluate(accelerator, model, held_out, args, state, tokenizer.pad_token_id, progress)
            if saving.due(state["step"]):
                save()
    except KeyboardInterrupt:
        save()
        progress.close()
        print(f"\nstopped at step {state['step']}; the same command resumes from there", file=sys.stderr)
        raise SystemExit(130)
    progress.close()
    if state["step"] < args.steps:  # --stop-after
        save()
        print(f"stopped after {state['step']} of {args.steps} steps (--stop-after); the same command resumes")
        accelerator.end_training()
        return
    state["seconds"] = earlier + time.perf_counter() - started
    evaluate(accelerator, model, held_out, args, state, tokenizer.pad_token_id, None)
    if accelerator.is_main_process:
        finish(args, accelerator.unwrap_model(model), tokenizer, state, held_out, precision)
    state["finished"] = True  # only once the model and report are written
    save()
    accelerator.end_training()


def train_step(accelerator, model, batch: list[Chat], grad_accum: int, pad_id: int) -> tuple[float, int]:
    """Forward and backward over the batch in `grad_accum` micro-batches; the loss is the mean over all of the
    batch's predicted tokens whatever the split. Returns (loss, real tokens)."""
    micro = len(batch) // grad_accum
    predicted = predicted_tokens([c.labels for c in batch])
    total = 0.0
    for k in range(grad_accum):
        part = batch[k * micro:(k + 1) * micro]
        input_ids, labels = collate([c.ids for c in part], pad_id, [c.labels for c in part])  # (b, T) each
        syncing = nullcontext() if k == grad_accum - 1 else accelerator.no_sync(model)
        with syncing:
            with accelerator.autocast():
                # Right padding: causal attention never lets a real token see the padding after it, so no mask.
                loss = model(input_ids=input_ids.to(accelerator.device), labels=labels.to(accelerator.device),
                             num_items_in_batch=predicted).loss
            accelerator.backward(loss)
        total += float(loss.detach())
    return total, sum(len(c.ids) for c in batch)


@torch.no_grad()
def held_out_loss(model, chats: list[Chat], batch_size: int, pad_id: int) -> float:
    """Mean next-token cross-entropy over the held-out chats' supervised tokens."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(chats), batch_size):
        part = chats[start:start + batch_size]
        input_ids, labels = collate([c.ids for c in part], pad_id, [c.labels for c in part])  # (B, T)
        n = predicted_tokens([c.labels for c in part])
        loss = model(input_ids=input_ids.to(device), labels=labels.to(device), num_items_in_batch=n).loss
        total, count = total + float(loss) * n, count + n
    return total / max(1, count)


def evaluate(accelerator, model, held_out: list[Chat], args: argparse.Namespace, state: dict, pad_id: int,
             progress: tqdm | None) -> None:
    with accelerator.autocast():
        loss = held_out_loss(accelerator.unwrap_model(model), held_out, args.batch_size, pad_id)
    row = {"step": state["step"], "held_out_loss": loss}
    if not state["evals"] or state["evals"][-1]["step"] != state["step"]:
        state["evals"].append(row)
    accelerator.log({"held_out/loss": loss}, step=state["step"])
    (progress.write if progress else print)(f"step {state['step']}: held-out loss {loss:.4f}")


# ---- the finished model ----

def finish(args: argparse.Namespace, model, tokenizer, state: dict, held_out: list[Chat], precision: str) -> None:
    """The model and tokenizer at --out (as save_pretrained writes them), its report, curves and samples."""
    save_pretrained_atomic(model, tokenizer, args.out)
    samples = generate_samples(model, tokenizer, sample_prompts(held_out))
    text = "\n\n".join(f"USER: {prompt}\nASSISTANT: {reply}" for prompt, reply in samples) + "\n"
    (args.out / "samples.txt").write_text(text)
    print(f"greedy replies:\n{text}")
    final = state["history"][-1] if state["history"] else {}
    report = {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer),
              "steps": state["step"], "batch_size": args.batch_size, "train_seconds": round(state["seconds"], 1),
              "steps_per_second": round(state["step"] / max(state["seconds"], 1e-9), 3),
              "tokens_per_second": round(state["tokens"] / max(state["seconds"], 1e-9), 1),
              "final_train_loss": final.get("loss"), "held_out_loss": state["evals"][-1]["held_out_loss"],
              "held_out_chats": len(held_out), "precision": "bf16" if precision == "bf16" else "fp32",
              "during_training": state["evals"], "config": state["config"]}
    write_json_atomic(args.out / "report.json", report)
    loss_curves(state["history"], CURVES, args.out / "curves.png", f"LM training ({args.out.name})")
    print(f"held-out loss {report['held_out_loss']:.4f}; wrote {args.out} (load it with "
          f"load_language_model({str(args.out)!r}); look at {args.out / 'curves.png'})")


def save_pretrained_atomic(model, tokenizer, out: Path) -> None:
    """save_pretrained into out/.final-partial, then each file renamed into out, config.json last: a reader
    that finds config.json finds the whole model."""
    partial = out / FINAL_PARTIAL
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    for path in sorted(partial.iterdir(), key=lambda p: p.name == "config.json"):
        os.replace(path, out / path.name)
    partial.rmdir()


def sample_prompts(held_out: list[Chat]) -> list[str]:
    users = [" ".join(p["text"] for p in m["content"]) for c in held_out for m in c.messages if m["role"] == "user"]
    return users[:HELD_OUT_PROMPTS] + FIXED_PROMPTS


@torch.no_grad()
def generate_samples(model, tokenizer, prompts: list[str]) -> list[tuple[str, str]]:
    """Greedy replies, prompted exactly as the assistant will prompt: render_chat with the generation prompt."""
    model.eval()
    device = next(model.parameters()).device
    replies = []
    for prompt in prompts:
        ids = render_chat([{"role": "user", "content": prompt}], tokenizer, text_layout(tokenizer),
                          add_generation_prompt=True).input_ids[None].to(device)  # (1, T)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
                             do_sample=False)
        reply = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
        replies.append((prompt, reply or "(an empty reply)"))
    return replies


if __name__ == "__main__":
    sys.exit(main())
