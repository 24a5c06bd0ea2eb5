"""The trainable bridge from vision features to the LLM's embedding space, as in LLaVA."""
from __future__ import annotations

import math

from torch import Tensor, nn

from assistant.config import ConfigError, ProjectorConfig


def slots_per_image(num_patches: int, merge: int) -> int:
    """How many `<image>` slots an image fills: its patches, merge×merge of them per slot."""
    side = math.isqrt(num_patches)
    if side * side != num_patches or side % merge:
        raise ConfigError(f"projector.merge {merge} needs a square patch grid whose side it divides; the vision "
                          f"tower gives {num_patches} patches")
    return (side // merge) ** 2


class PatchMerge(nn.Module):
    """(B, N, D) patches of a square grid → (B, N / k², D·k²): each k×k block of neighbours becomes one row,
    in row-major order of the blocks."""

    def __init__(self, merge: int):
        super().__init__()
        self.merge = merge

    def forward(self, features: Tensor) -> Tensor:
        b, n, d = features.shape
        k, side = self.merge, math.isqrt(n)
        blocks = features.view(b, side // k, k, side // k, k, d).permute(0, 1, 3, 2, 4, 5)  # (B, h, w, k, k, D)
        return blocks.reshape(b, (side // k) ** 2, k * k * d)


def build_projector(config: ProjectorConfig, vision_width: int, llm_width: int,
                    embedding_std: float | None = None) -> nn.Module:
    """(B, N, vision_width) → (B, N / merge², llm_width). `mlp2x_gelu` is LLaVA-1.5's; `linear` is LLaVA-1's.

    With `embedding_std` (the spread of the LLM's own input embeddings), the last layer starts small
    enough that projected features are about as large as word embeddings. PyTorch's default init gives
    outputs of order 1, which for a small LLM whose embeddings have a spread of 0.05 makes image slots
    50× louder than any word, and its frozen layers then barely use them.
    """
    width = vision_width * config.merge ** 2
    if config.kind == "linear":
        projector = nn.Linear(width, llm_width)
        last = projector
    else:
        projector = nn.Sequential(nn.Linear(width, llm_width), nn.GELU(), nn.Linear(llm_width, llm_width))
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
    if config.merge > 1:  # merge=1 keeps the plain module, so its weights' names stay LLaVA's
        projector = nn.Sequential(PatchMerge(config.merge), projector)
    return projector
