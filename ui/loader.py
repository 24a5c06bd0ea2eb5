"""The one way the three surfaces (glyph ui, glyph chat, glyph serve) take --model and load their assistant.

    add_model_option(parser)                        # --model DIR (default: the assistant shipped in models/), --int8
    model = load_for("glyph chat", args.model, args.int8)  # None after one line on stderr saying why: exit 2
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="the assistant directory (a build's instruct/, or the build directory itself); "
                        "default: the one shipped in models/scenes-smollm2")
    parser.add_argument("--int8", action="store_true",
                        help="decode with the LLM's weights read as int8 (weight-only, one scale per row), each step "
                             "in one call to a C kernel built on first use with cc: about 4-5x faster replies; scene "
                             "answers as in full precision, everyday replies no longer SmolLM2's word for word "
                             "(README)")


def load_for(command: str, directory: Path | None, int8: bool = False):
    """The assistant in `directory` (None: the shipped one) with its LoRA merged, ready to chat (decoding with
    int8 weights when `int8`); or None when it cannot be loaded, after one line on stderr that names the command
    and says why and what to do."""
    from assistant.model import load_assistant  # torch and transformers load here: `--help` stays fast

    try:
        model = load_assistant(directory)
    except (ValueError, OSError) as error:
        print(f"{command}: {error}", file=sys.stderr)
        return None
    model.int8_decoding = int8
    return model
