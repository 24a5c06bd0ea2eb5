"""The `glyph` command: one entry point that dispatches to each script's `main(argv)`.

    glyph data scenes --out data/scenes --n 10000
    glyph train vqvae --config training/recipes/vq-scenes.yaml --data data/scenes --out runs/vq
    glyph train clip --config training/recipes/clip-scenes.yaml --data data/scenes --out runs/clip
    glyph demo

Each command names the module whose `main(argv)` runs it; the module is
imported only when its command runs, so `glyph --help` stays fast and a
command's heavy imports never slow down another.
"""
from __future__ import annotations

import importlib
import sys

# (words, module with main(argv), one line of help). Later parts of Glyph add theirs here.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("data", "scenes"), "data_gen.scene_dataset", "render a scene-world dataset (PNG + JSONL + contact sheet)"),
    (("data", "chats"), "data_gen.scene_chats", "write scene chats for training (text, align or instruct)"),
    (("data", "replies"), "data_gen.text_replies",
     "the frozen LLM's own replies to everyday requests, as text-only training chats"),
    (("data", "hand-over"), "data_gen.hand_over",
     "chats that teach the LoRA to leave everyday text-only requests to the LLM alone"),
    (("data", "slot-words"), "data_gen.slot_words",
     "the words for each image slot of training scenes, from their boxes: the projector's warm-up (stage 1)"),
    (("data", "instruct"), "data_gen.instruct",
     "GPT-assisted instruction data (LLaVA-Instruct style) from an OpenAI-compatible, local or oracle teacher"),
    (("eval", "parser"), "data_gen.parser_report", "measure the scene parser on clean, blurred and JPEG scenes"),
    (("train", "vqvae"), "training.train_vqvae", "train the VQ-VAE image tokenizer (resumes a killed run)"),
    (("train", "clip"), "training.train_clip", "train a small CLIP on scene captions (resumes a killed run)"),
    (("train", "lm"), "training.train_lm",
     "stage 0: train a BPE tokenizer and a small Llama-style chat LM from scratch (resumes)"),
    (("train", "align"), "training.train_align", "stage 1: align the projector and image vocabulary (resumes)"),
    (("train", "instruct"), "training.train_instruct", "stage 2: LoRA instruction tuning (resumes)"),
    (("eval", "vq"), "training.eval_vq", "measure a VQ-VAE: PSNR, codebook usage, parser agreement"),
    (("eval", "clip"), "training.eval_clip", "what a CLIP's patch features hold: colour, shape and place probes"),
    (("eval", "binding"), "training.eval_binding",
     "eyes or reading: VQA with the own image features and with clean ones"),
    (("eval", "lm"), "training.eval_lm", "stage 0's LM: scene questions answered from a caption in its prompt"),
    (("eval", "assistant"), "training.eval_assistant", "score an assistant on held-out scenes: VQA, captions, GenEval"),
    (("eval", "draw"), "training.eval_draw",
     "drawings in GenEval's layout (DIR/00000/samples/0000.png) for any GenEval prompt file; score scene ones"),
    (("eval", "lmms"), "training.eval_lmms",
     "score a running OpenAI-compatible server (glyph serve) with lmms-eval on the scene tasks"),
    (("eval", "lmms-task"), "training.lmms_task",
     "write scene VQA as an lmms-eval task, to score any OpenAI-compatible server (glyph serve) with lmms-eval"),
    (("build",), "training.build", "build a whole assistant from a recipe: glyph build scenes-tiny --out DIR"),
    (("ship",), "training.ship", "pack a finished build's trained parts into a small directory to ship (models/)"),
    (("export",), "training.export",
     "write an assistant as plain Hugging Face models (LoRA merged) that load without Glyph or peft"),
    (("ui",), "ui.app", "start the Gradio UI on 127.0.0.1"),
    (("serve",), "ui.server", "serve an assistant with OpenAI's HTTP API on 127.0.0.1 (chat, images, models)"),
    (("chat",), "ui.terminal", "chat with an assistant in the terminal: streaming, images in and out"),
    (("bench",), "benchmarks.bench",
     "speed and memory against LLaVA + peft + generate() on the same weights; writes benchmarks/RESULTS.md"),
    (("demo",), "glyph.demo", "build what the embedded assistant needs, if not cached, and start the UI"),
]


def usage() -> str:
    width = max(len(" ".join(words)) for words, _, _ in COMMANDS)
    lines = ["usage: glyph <command> [options]", "", "commands:"]
    lines += [f"  {' '.join(words):<{width}}  {summary}" for words, _, summary in COMMANDS]
    lines += ["", "Run `glyph <command> --help` for a command's options."]
    return "\n".join(lines)


def find_command(argv: list[str]) -> tuple[str, list[str]] | None:
    """The module for the longest command that `argv` starts with, and the remaining arguments."""
    for words, module, _ in sorted(COMMANDS, key=lambda c: -len(c[0])):
        if tuple(argv[:len(words)]) == words:
            return module, argv[len(words):]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    found = find_command(argv)
    if found is None:
        print(f"glyph: unknown command {' '.join(argv[:2])!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, rest = found
    return importlib.import_module(module).main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
