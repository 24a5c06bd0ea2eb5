"""Train the scene world's language model from scratch: a byte-level BPE tokenizer and a small Llama-style chat LM.

    accelerate launch -m training.train_lm --config training/recipes/lm-scenes.yaml --data data/text.jsonl --out runs/lm
    glyph train lm --config training/recipes/lm-scenes.yaml --data data/text.jsonl --out runs/lm

--data is JSONL (repeat --data for several files), one text-only chat a line, such as
`glyph data chats --kind text` writes about scenes, read by training.chat_data as stages 1 and 2 read theirs:

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
import os
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from assistant.config import ConfigError, write_json_atomic
from assistant.templates import render_chat
from training.batches import batch_indices
from training.chat_data import (
    Chat,
    ChatDataError,
    Example,
    collate,
    held_out_loss,
    predicted_tokens,
    read_chats,
    text_layout,
    tokenize_text_chats,
)
from training.checkpoint import staged_directory
from training.harness import add_run_options, add_schedule_options, start_accelerator, trainer_parser
from training.pictures import loss_curves
from training.recipe import parse_with_recipe
from training.run import Run, already_trained, per_process, previous_state, refuse_another, trainer_main
from training.schedule import adamw, matrices_only

PAD, START, END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
TOKENIZER_DIR = "checkpoint-tokenizer"  # the tokenizer the checkpoint was trained with; a resume reuses it
FINAL_PARTIAL = ".final-partial"
FIXED_PROMPTS = ["Hello!", "What can you do?"]
HELD_OUT_PROMPTS = 3
MAX_NEW_TOKENS = 40
CURVES = ["loss", "lr", "tokens_per_s"]


def build_parser() -> argparse.ArgumentParser:
    p = trainer_parser("lm", __doc__.split("\n\n")[0],
                       "JSONL of text-only chats ({'id', 'messages'}); repeat for several files",
                       "run directory: model, tokenizer, checkpoint, report",
                       "skip malformed or too long chats (they are listed)", action="append", type=Path)
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
    add_schedule_options(train, lr=3e-3, warmup=30, weight_decay=0.1, decay_help="on matrices only")
    train.add_argument("--supervise", choices=("all", "assistant"), default="all",
                       help="all: every token (plain pretraining); assistant: only the replies, so every gradient "
                            "comes from answering what the prompt says")
    train.add_argument("--held-out", type=float, default=0.02, help="share of chats held out (by a hash of the id)")
    train.add_argument("--stop-after", type=int, default=0,
                       help="save and stop after this many steps of this run (0: run to --steps); rerun to resume")
    every = p.add_argument_group("outputs")
    add_run_options(train, every, log_every=10, save_every=100)
    every.add_argument("--eval-every", type=int, default=100, help="held-out loss every this many steps; 0: at the end")
    return p


# ---- data: held out by id ----

def split_held_out(examples: list[Example], ids: list[str], share: float) -> tuple[list[Example], list[Example]]:
    """(train, held out): the share of examples whose chat id (`ids`, aligned) hashes lowest, at least one;
    fixed by the ids alone."""
    def key(i: int) -> tuple[str, int]:
        return hashlib.sha256(ids[i].encode()).hexdigest(), i

    count = max(1, round(share * len(examples)))
    held = set(sorted(range(len(examples)), key=key)[:count])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


def texts_of(chat: Chat) -> list[str]:
    return [part["text"] for message in chat.messages for part in message["content"]]


# ---- tokenizer ----

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


# ---- main ----

def main(argv: list[str] | None = None) -> int:
    return trainer_main("lm", lambda: prepare(argv), train_loop)


def _check_options(args: argparse.Namespace) -> None:
    if args.vocab_size < 256 + 3:
        raise ConfigError(f"--vocab-size {args.vocab_size} is below the 256 bytes and 3 special tokens")
    if args.batch_size < 1 or args.grad_accum < 1 or args.batch_size % args.grad_accum:
        raise ConfigError(f"--batch-size {args.batch_size} must be a positive multiple of --grad-accum "
                          f"{args.grad_accum}")
    if args.steps < 1 or args.save_every < 1 or args.log_every < 1 or not 0 < args.held_out < 1:
        raise ConfigError("--steps, --save-every and --log-every must be positive and --held-out in (0, 1)")


def prepare(argv: list[str] | None) -> tuple | None:
    """(args, tokenizer (trained, or the checkpoint's), model config, train and held-out examples, sample prompts);
    None when --out is already trained."""
    args = parse_with_recipe(build_parser(), argv)
    _check_options(args)
    state = previous_state(args)
    if already_trained(state, args.out):
        return None
    chats = read_chats(args.data, text_only=True)
    if not chats.chats:
        bad = f" ({len(chats.bad)} bad rows, the first {chats.bad[0]})" if chats.bad else ""
        raise ChatDataError(f"--data {', '.join(map(str, args.data))} holds no chats{bad}")
    if state is None:
        tokenizer = train_tokenizer([t for chat in chats.chats for t in texts_of(chat)], args.vocab_size,
                                    args.max_length)
    else:
        tokenizer = saved_tokenizer(args.out)
    config = lm_config(args, tokenizer)
    refuse_another(state, args.out, lambda saved: saved["config"] == config and
                   saved["bpe_vocab_size"] == args.vocab_size, "tokenizer or model config")
    data = tokenize_text_chats(chats, tokenizer, args.max_length, args.supervise)
    data.raise_or_report(args.skip_bad)
    train, held_out = split_held_out(data.examples, [chats.chats[e.chat].id for e in data.examples], args.held_out)
    if len(train) < args.batch_size:
        raise ChatDataError(f"{len(train)} training chats, fewer than --batch-size {args.batch_size}")
    if state is None:
        with staged_directory(args.out / TOKENIZER_DIR) as staged:
            tokenizer.save_pretrained(staged)
    return args, tokenizer, config, train, held_out, sample_prompts([chats.chats[e.chat] for e in held_out])


def saved_tokenizer(out: Path):
    """The tokenizer the checkpoint was trained with: a resumed run never trains a new one."""
    if not (out / TOKENIZER_DIR / "tokenizer.json").is_file():
        raise ConfigError(f"{out / 'checkpoint'} has no saved tokenizer in {out / TOKENIZER_DIR}; "
                          "pass --overwrite to start over")
    return AutoTokenizer.from_pretrained(out / TOKENIZER_DIR)


def train_loop(args: argparse.Namespace, tokenizer, config: dict, train: list[Example], held_out: list[Example],
               prompts: list[str]) -> int:
    accelerator, precision = start_accelerator(args.precision, args.out)
    rank, world = accelerator.process_index, accelerator.num_processes
    per_process(args.batch_size, world, args.grad_accum)
    torch.manual_seed(args.seed)
    model = build_lm(config)
    optimizer = adamw(model, args.lr, args.weight_decay, betas=(0.9, 0.95), decayed=matrices_only)
    run = Run.resume(args, "lm", accelerator, model, optimizer, args.warmup, args.steps, stop_after=args.stop_after,
                     checkpoint_view=Untied, fresh={"tokens": 0, "config": config, "bpe_vocab_size": args.vocab_size})
    model, optimizer = run.prepare(model, optimizer)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"training a Llama-style LM ({parameters / 1e6:.2f} M parameters, vocabulary {len(tokenizer)}) on "
          f"{len(train)} chats ({len(held_out)} held out), precision {'bf16' if precision == 'bf16' else 'fp32'}, "
          f"{args.steps} steps of {args.batch_size}")
    pad_id, run_tokens = tokenizer.pad_token_id, 0

    with run.interruptible():
        for step in run.steps():
            model.train()
            chosen = batch_indices(step, args.batch_size, len(train), args.seed)[rank::world]
            loss, tokens = train_step(accelerator, model, [train[int(i)] for i in chosen], args.grad_accum, pad_id)
            run.optimizer_step()
            run_tokens += tokens
            run.state["tokens"] += tokens
            if run.log_due():
                rate = run_tokens / run.seconds_this_run()
                run.log({"step": run.step, "loss": loss, "lr": run.lr(), "tokens_per_s": rate},
                        loss=f"{loss:.3f}", tok_s=f"{rate:.0f}")
            if run.due(args.eval_every):
                evaluate(run, held_out, args.batch_size, pad_id)
            run.end_step()
    return run.finish(lambda: finish(args, run.inner_model, tokenizer, run.state, len(held_out), prompts, precision),
                      evaluate=lambda: evaluate(run, held_out, args.batch_size, pad_id))


def train_step(accelerator, model, batch: list[Example], grad_accum: int, pad_id: int) -> tuple[float, int]:
    """Forward and backward over the batch in `grad_accum` micro-batches; the loss is the mean over all of the
    batch's predicted tokens whatever the split. Returns (loss, real tokens)."""
    micro = len(batch) // grad_accum
    predicted = predicted_tokens(batch)
    total = 0.0
    for k in range(grad_accum):
        part = collate(batch[k * micro:(k + 1) * micro], pad_id, None)  # (b, T) each
        syncing = nullcontext() if k == grad_accum - 1 else accelerator.no_sync(model)
        with syncing:
            with accelerator.autocast():
                # Right padding: causal attention never lets a real token see the padding after it, so no mask.
                loss = model(input_ids=part["input_ids"].to(accelerator.device),
                             labels=part["labels"].to(accelerator.device), num_items_in_batch=predicted).loss
            accelerator.backward(loss)
        total += float(loss.detach())
    return total, sum(len(e.input_ids) for e in batch)


def evaluate(run: Run, held_out: list[Example], batch_size: int, pad_id: int) -> None:
    """The held-out loss: logged, and kept in the run's evals."""
    model = run.inner_model
    device = next(model.parameters()).device
    model.eval()

    def loss_of(batch: dict, predicted: int) -> torch.Tensor:
        return model(input_ids=batch["input_ids"].to(device), labels=batch["labels"].to(device),
                     num_items_in_batch=predicted).loss

    with run.accelerator.autocast():
        loss = held_out_loss(held_out, batch_size, pad_id, None, loss_of)
    run.log_eval({"step": run.step, "held_out_loss": loss}, {"held_out/loss": loss})
    run.say(f"step {run.step}: held-out loss {loss:.4f}")


# ---- the finished model ----

def finish(args: argparse.Namespace, model, tokenizer, state: dict, held_out_chats: int, prompts: list[str],
           precision: str) -> None:
    """The model and tokenizer at --out (as save_pretrained writes them), its report, curves and samples."""
    save_pretrained_atomic(model, tokenizer, args.out)
    samples = generate_samples(model, tokenizer, prompts)
    text = "\n\n".join(f"USER: {prompt}\nASSISTANT: {reply}" for prompt, reply in samples) + "\n"
    (args.out / "samples.txt").write_text(text)
    print(f"greedy replies:\n{text}")
    final = state["history"][-1] if state["history"] else {}
    report = {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer),
              "steps": state["step"], "batch_size": args.batch_size, "train_seconds": round(state["seconds"], 1),
              "steps_per_second": round(state["step"] / max(state["seconds"], 1e-9), 3),
              "tokens_per_second": round(state["tokens"] / max(state["seconds"], 1e-9), 1),
              "final_train_loss": final.get("loss"), "held_out_loss": state["evals"][-1]["held_out_loss"],
              "held_out_chats": held_out_chats, "precision": "bf16" if precision == "bf16" else "fp32",
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
