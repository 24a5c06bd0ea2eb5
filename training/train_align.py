"""Stage 1 (alignment): train the projector and image-vocabulary rows on image–caption pairs; vision tower and LLM frozen.

    glyph train align --data runs/scenes-tiny/chats/align.jsonl --vision local-dir:runs/scenes-tiny/clip \
        --llm runs/scenes-tiny/lm --vq runs/scenes-tiny/vq --out runs/align
    accelerate launch -m training.train_align --config training/recipes/llava-1.5-style-align.yaml \
        --llm Qwen/Qwen2.5-0.5B-Instruct --vq runs/vq --data blip_laion_cc_sbu_558k.json --image-folder images \
        --out runs/align

Options, outputs and resume are shared with the other stage: see training/assistant_stage.py.
"""
from __future__ import annotations

import sys

from training.assistant_stage import main as train_stage


def main(argv: list[str] | None = None) -> int:
    return train_stage(argv, stage=1)


if __name__ == "__main__":
    sys.exit(main())
