"""Stage 1 (alignment): train the projector and image-vocabulary rows on image–caption pairs; vision tower and LLM frozen.

    accelerate launch -m training.train_align --config training/recipes/scenes-tiny-align.yaml --out runs/align
    glyph train align --config training/recipes/scenes-tiny-align.yaml --out runs/align

Options, outputs and resume are shared with the other stage: see training/assistant_stage.py.
"""
from __future__ import annotations

import sys

from training.assistant_stage import run


def main(argv: list[str] | None = None) -> int:
    return run(argv, stage=1)


if __name__ == "__main__":
    sys.exit(main())
