"""The frozen vision tower: an open_clip image encoder that returns patch features for the projector.

    tower = VisionTower(VisionConfig("ViT-L-14-336", "openai"))   # or VisionConfig("local-dir:runs/clip", None)
    pixels = tower.preprocess(pil_image)          # (3, S, S), open_clip's own resize, crop and normalisation
    features = tower(pixels[None])                # (B, N, D) patch tokens of the chosen block

Any open_clip ViT works (its blocks are `encoder.transformer.resblocks`).
Like LLaVA, the features come from the penultimate transformer block by
default, patch tokens only (no class token), before the final LayerNorm and
projection: those keep more spatial detail than CLIP's pooled embedding.
"""
from __future__ import annotations

import open_clip
import torch
from PIL import Image
from safetensors import SafetensorError
from torch import Tensor, nn

from assistant.config import ConfigError, VisionConfig


class VisionTower(nn.Module):
    def __init__(self, config: VisionConfig):
        super().__init__()
        self.config = config
        clip, self.preprocess_image = _create_clip(config)
        self.encoder = clip.visual  # the text tower is not needed: keep only the image half
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        blocks = len(self.encoder.transformer.resblocks)
        if not -blocks <= config.feature_layer < blocks:
            raise ConfigError(f"vision.feature_layer {config.feature_layer} is outside the {blocks} blocks of "
                              f"{config.model_name}; use -2 (penultimate) or an index in [-{blocks}, {blocks})")
        self.layer = config.feature_layer % blocks
        size = self.encoder.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else size
        patch = self.encoder.patch_size
        self.num_patches = (self.image_size // (patch[0] if isinstance(patch, (tuple, list)) else patch)) ** 2
        self.hidden_size = self.encoder.transformer.width
        self.eval()

    def train(self, mode: bool = True) -> VisionTower:
        return super().train(False)  # frozen: never dropout or batch statistics, whatever the caller asks

    def preprocess(self, image: Image.Image) -> Tensor:
        """An RGB PIL image → (3, S, S) pixel values as this CLIP model expects them."""
        return self.preprocess_image(image)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    @torch.no_grad()
    def forward(self, pixel_values: Tensor) -> Tensor:
        """(B, 3, S, S) → (B, N, D) patch features of block `feature_layer`."""
        weight = next(self.encoder.parameters())  # pixels come from preprocess() on the CPU: meet the tower
        out = self.encoder.forward_intermediates(pixel_values.to(weight.device, weight.dtype), indices=[self.layer],
                                                 stop_early=True, intermediates_only=True, output_fmt="NLC")
        return out["image_intermediates"][0]


def _create_clip(config: VisionConfig):
    name = config.model_name
    if ":" not in name and name not in open_clip.list_models():
        raise ConfigError(f"{name!r} is not an open_clip model; see open_clip.list_models(), or give a folder "
                          "holding open_clip_config.json and weights as 'local-dir:PATH'")
    pretrained = None if ":" in name else config.pretrained  # a schema folder names its own weights
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    except (RuntimeError, OSError, ValueError, SafetensorError) as error:
        raise ConfigError(f"could not load the open_clip vision model {name!r} (pretrained={pretrained!r}): "
                          f"{error}. Give a checkpoint file path, a 'local-dir:PATH' folder, or a pretrained tag "
                          "that is downloaded already") from error
    return model, preprocess
