"""Stage 2 (instruction tuning): LoRA on the LLM plus the projector and image-vocabulary rows, on instruction chats.

    glyph train instruct --data runs/scenes-tiny/chats/instruct.jsonl --init runs/scenes-tiny/align --out runs/instruct
    accelerate launch -m training.train_instruct --config training/recipes/llava-1.5-style-instruct.yaml \
        --init runs/llava-align --data llava_v1_5_mix665k.json --image-folder data --out runs/llava-instruct

Options, outputs and resume are shared with the other stage: see training/assistant_stage.py.
"""
from __future__ import annotations

import sys

from training.assistant_stage import main as train_stage


def main(argv: list[str] | None = None) -> int:
    return train_stage(argv, stage=2)


if __name__ == "__main__":
    sys.exit(main())
