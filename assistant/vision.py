"""The frozen vision tower: an open_clip image encoder that returns patch features for the projector.

    tower = VisionTower(VisionConfig("ViT-L-14-336", "openai"))   # or VisionConfig("local-dir:runs/clip", None)
    pixels = tower.preprocess(pil_image)          # (3, S, S), open_clip's own resize, crop and normalisation
    features = tower(pixels[None])                # (B, N, D) patch tokens of the chosen block

Any open_clip ViT works (its blocks are `encoder.transformer.resblocks`).
Like LLaVA, the features come from the penultimate transformer block by
default, patch tokens only (no class token), before the final LayerNorm and
projection: those keep more spatial detail than CLIP's pooled embedding.

    tower = VisionTower(VisionConfig("local-dir:runs/clip", None), lazy=True)   # sizes known, nothing built yet

A lazy tower (what chatting loads: GlyphModel.from_pretrained(..., merge_lora=True)) reads its sizes from the
folder's open_clip_config.json and builds the encoder on first use, so a chat that starts with words does not
wait for open_clip and timm to import (0.7-1.0 s measured on a busy machine) or for the CLIP to load. Casts
and moves made before (`model.to(torch.bfloat16)`) are kept and replayed on the encoder when it is built.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from assistant.config import LOCAL_DIR, ConfigError, VisionConfig


class VisionTower(nn.Module):
    def __init__(self, config: VisionConfig, lazy: bool = False):
        super().__init__()
        self.config = config
        sizes = _sizes_on_disk(config) if lazy else None
        if sizes is None:
            self._build()
        else:
            self._deferred = []  # the _apply calls (casts, moves) made before the encoder is built
            self._set_sizes(*sizes)
        self.eval()

    def _build(self) -> None:
        clip, preprocess = _create_clip(self.config)
        encoder = clip.visual  # the text tower is not needed: keep only the image half
        encoder.requires_grad_(False)
        encoder.eval()
        size, patch = encoder.image_size, encoder.patch_size
        self._set_sizes(size[0] if isinstance(size, (tuple, list)) else size,
                        patch[0] if isinstance(patch, (tuple, list)) else patch,
                        encoder.transformer.width, len(encoder.transformer.resblocks))
        for fn in self.__dict__.pop("_deferred", []):
            encoder._apply(fn)
        self.preprocess_image = preprocess
        self.encoder = encoder

    def _set_sizes(self, image_size: int, patch_size: int, width: int, blocks: int) -> None:
        feature_layer = self.config.feature_layer
        if not -blocks <= feature_layer < blocks:
            raise ConfigError(f"vision.feature_layer {feature_layer} is outside the {blocks} blocks of "
                              f"{self.config.model_name}; use -2 (penultimate) or an index in [-{blocks}, {blocks})")
        self.layer = feature_layer % blocks
        self.image_size, self.hidden_size = image_size, width
        self.num_patches = (image_size // patch_size) ** 2

    @property
    def built(self) -> bool:
        return "_deferred" not in self.__dict__

    def __getattr__(self, name: str):
        if name in ("encoder", "preprocess_image") and not self.built:
            self._build()
            return getattr(self, name)
        return super().__getattr__(name)

    def _apply(self, fn, recurse: bool = True):
        if not self.built:
            self._deferred.append(fn)  # replayed on the encoder when it is built
            return self
        return super()._apply(fn, recurse)

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


def _sizes_on_disk(config: VisionConfig) -> tuple[int, int, int, int] | None:
    """(image size, patch size, width, blocks) of a local-dir ViT, from its open_clip_config.json, when its
    weights file's header agrees; None when they cannot be known without building it (then it is built at once,
    and any fault in the folder is reported while loading, not at the first picture)."""
    if not config.model_name.startswith(LOCAL_DIR):
        return None
    folder = Path(config.model_name.removeprefix(LOCAL_DIR))
    try:
        vision = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]["vision_cfg"]
        sizes = tuple(vision[key] for key in ("image_size", "patch_size", "width", "layers"))
        with safe_open(str(folder / "open_clip_model.safetensors"), "pt") as weights:
            patches = weights.get_slice("visual.conv1.weight").get_shape()
            positions = weights.get_slice("visual.positional_embedding").get_shape()
    except (OSError, ValueError, KeyError, TypeError, SafetensorError):
        return None
    if "timm_model_name" in vision or not all(type(value) is int for value in sizes):
        return None  # a timm tower, or non-square sizes: open_clip knows them
    image_size, patch, width, _ = sizes
    if patches != [width, 3, patch, patch] or positions != [(image_size // patch) ** 2 + 1, width]:
        return None
    return sizes


def _create_clip(config: VisionConfig):
    import open_clip  # noqa: PLC0415 (here, not at the top: a lazy tower does not import it until a picture)
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
