"""The trainable bridge from vision features to the LLM's embedding space, as in LLaVA."""
from __future__ import annotations

from torch import nn

from assistant.config import ProjectorConfig


def build_projector(config: ProjectorConfig, vision_width: int, llm_width: int) -> nn.Module:
    """(B, N, vision_width) → (B, N, llm_width). `mlp2x_gelu` is LLaVA-1.5's; `linear` is LLaVA-1's."""
    if config.kind == "linear":
        return nn.Linear(vision_width, llm_width)
    return nn.Sequential(nn.Linear(vision_width, llm_width), nn.GELU(), nn.Linear(llm_width, llm_width))
