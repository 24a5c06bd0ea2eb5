"""The learning-rate schedule every Glyph training stage uses: linear warm-up, then cosine decay to 0.

It computes the same factors as transformers' `get_cosine_schedule_with_warmup`,
built on torch's LambdaLR because importing `transformers.optimization` pulls
in peft and costs about 3 s, a noticeable share of a 5-minute training run.
"""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_with_warmup(optimizer: Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return LambdaLR(optimizer, factor)
