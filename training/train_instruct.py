"""Stage 2 (instruction tuning): LoRA on the LLM plus the projector and image-vocabulary rows, on instruction chats.

    accelerate launch -m training.train_instruct --config training/recipes/scenes-tiny-instruct.yaml --out runs/instruct
    glyph train instruct --config training/recipes/scenes-tiny-instruct.yaml --out runs/instruct

Options, outputs and resume are shared with the other stage: see training/assistant_stage.py.
"""
from __future__ import annotations

import sys

from training.assistant_stage import run


def main(argv: list[str] | None = None) -> int:
    return run(argv, stage=2)


if __name__ == "__main__":
    sys.exit(main())
