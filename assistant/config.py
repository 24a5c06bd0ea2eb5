"""Configuration dataclasses, saved as JSON next to the weights. They import no torch.

    config = VQConfig(image_size=64, downsample=8, codebook_size=1024)
    config.save(directory)                  # writes directory/config.json
    VQConfig.load(directory)                # reads it back, checked

Every field is explicit: there are no hidden defaults read with getattr, and
a file with unknown or missing fields is refused with a message that names them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "config.json"


class ConfigError(ValueError):
    """A configuration that cannot describe a working model."""


@dataclass(frozen=True)
class VQConfig:
    """The VQ-VAE image tokenizer: an image of `image_size`² becomes a (h, w) grid of codebook ids.

    `channels` lists the feature width at each resolution from image_size/stem
    down to the grid, so `downsample == stem * 2 ** (len(channels) - 1)`.
    `stem` folds stem×stem pixel patches into channels before the first
    convolution (and the decoder unfolds them at the end): the full-resolution
    convolutions are the costliest part of a small VQ-VAE, and a scene's flat
    colours lose nothing by it.
    """
    kind: str = "glyph-vqvae"
    image_size: int = 64
    downsample: int = 8
    codebook_size: int = 1024
    code_dim: int = 8
    channels: tuple[int, ...] = (64, 128)
    stem: int = 4
    encoder_blocks: int = 1  # residual blocks per resolution in the encoder
    decoder_blocks: int = 2  # ... and in the decoder, which does the harder job
    groups: int = 16  # GroupNorm groups
    commitment: float = 0.25  # β: weight of ‖z − sg(q)‖² against the codebook term

    @property
    def grid(self) -> int:
        """Side of the token grid: an image becomes grid × grid ids."""
        return self.image_size // self.downsample

    @property
    def tokens_per_image(self) -> int:
        return self.grid * self.grid

    def validate(self) -> "VQConfig":
        if self.kind != "glyph-vqvae":
            raise ConfigError(f"config kind is {self.kind!r}, expected 'glyph-vqvae'")
        levels = len(self.channels) - 1
        if self.stem < 1 or self.downsample != self.stem * 2 ** levels:
            raise ConfigError(f"downsample {self.downsample} must equal stem {self.stem} × 2^(len(channels) − 1) "
                              f"= {self.stem * 2 ** levels}; change channels, stem or downsample")
        if self.image_size % self.downsample:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of downsample {self.downsample}")
        if self.codebook_size < 2 or self.code_dim < 1:
            raise ConfigError(f"codebook_size ({self.codebook_size}) must be ≥ 2 and code_dim ({self.code_dim}) ≥ 1")
        bad = [c for c in self.channels if c % self.groups]
        if bad:
            raise ConfigError(f"channels {bad} are not multiples of groups {self.groups}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VQConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise ConfigError(f"{cls.__name__} fields do not match: unknown {unknown}, missing {missing}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values).validate()

    def save(self, directory: str | Path) -> Path:
        return write_json_atomic(Path(directory) / CONFIG_NAME, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> "VQConfig":
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; pass a directory written by save_pretrained")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON ({error})") from error
        return cls.from_dict(data)


def write_json_atomic(path: Path, data) -> Path:
    """Write JSON so that a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path
