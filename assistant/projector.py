"""The trainable bridge from vision features to the LLM's embedding space, as in LLaVA."""
from __future__ import annotations

from torch import nn

from assistant.config import ProjectorConfig


def build_projector(config: ProjectorConfig, vision_width: int, llm_width: int,
                    embedding_std: float | None = None) -> nn.Module:
    """(B, N, vision_width) → (B, N, llm_width). `mlp2x_gelu` is LLaVA-1.5's; `linear` is LLaVA-1's.

    With `embedding_std` (the spread of the LLM's own input embeddings), the last layer starts small
    enough that projected features are about as large as word embeddings. PyTorch's default init gives
    outputs of order 1, which for a small LLM whose embeddings have a spread of 0.05 makes image slots
    50× louder than any word, and its frozen layers then barely use them.
    """
    if config.kind == "linear":
        projector = nn.Linear(vision_width, llm_width)
        last = projector
    else:
        projector = nn.Sequential(nn.Linear(vision_width, llm_width), nn.GELU(), nn.Linear(llm_width, llm_width))
        last = projector[2]
    if embedding_std is not None:
        nn.init.normal_(last.weight, std=embedding_std / last.in_features ** 0.5)
        nn.init.zeros_(last.bias)
    if config.kind == "mlp2x_gelu_norm":
        # An RMSNorm whose gain starts at the embeddings' spread: image slots stay as loud as words, and
        # their scale is one well-conditioned vector instead of whatever the weights drift to.
        norm = nn.RMSNorm(llm_width)
        nn.init.constant_(norm.weight, embedding_std if embedding_std is not None else 1.0)
        projector.append(norm)
    return projector
