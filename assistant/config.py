"""Configuration dataclasses, saved as JSON next to the weights. They import no torch.

    config = VQConfig(image_size=64, downsample=8, codebook_size=2048)
    config.save(directory)                  # writes directory/config.json
    VQConfig.load(directory)                # reads it back, checked

    AssistantConfig(vision=VisionConfig(...), projector=ProjectorConfig("mlp2x_gelu"),
                    llm=LLMConfig("HuggingFaceTB/SmolLM2-135M-Instruct"), vq="runs/vq")

Every field is explicit: there are no hidden defaults read with getattr, and
a file with unknown or missing fields is refused with a message that names them.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from boltons.fileutils import atomic_save

CONFIG_NAME = "config.json"
LOCAL_DIR = "local-dir:"  # open_clip's prefix for a folder holding open_clip_config.json and its weights


class ConfigError(ValueError):
    """A configuration that cannot describe a working model."""


def unreadable(path, why: str, fix: str) -> ConfigError:
    """The one error for a weights or config file that cannot be read: the file, why, and how to remake it."""
    return ConfigError(f"{path} cannot be read ({why}): it is truncated, empty or not what its name says; {fix}")


def first_line(error: BaseException) -> str:
    """An exception's first line, for an error message that quotes it (its type's name when it has no text)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


class JsonConfig:
    """JSON round trip for a (possibly nested) frozen config dataclass, refusing unknown or missing fields."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)  # a field added later has a default: older files lack it
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        unknown, missing = sorted(set(data) - names), sorted(required - set(data))
        if unknown or missing:
            raise ConfigError(f"{cls.__name__} fields do not match: unknown {unknown}, missing {missing}")
        types = typing.get_type_hints(cls)
        values = {}
        for name, value in data.items():
            kind = types[name]
            if isinstance(kind, type) and issubclass(kind, JsonConfig):
                value = kind.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[name] = value
        return cls(**values).validate()

    def validate(self):
        return self

    def save(self, directory: str | Path) -> Path:
        return write_json_atomic(Path(directory) / CONFIG_NAME, self.to_dict())

    @classmethod
    def load(cls, directory: str | Path):
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; pass a directory written by save_pretrained")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON ({error})") from error
        return cls.from_dict(data)


@dataclass(frozen=True)
class VQConfig(JsonConfig):
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
    codebook_size: int = 2048
    code_dim: int = 8
    channels: tuple[int, ...] = (64, 128)
    stem: int = 4
    encoder_blocks: int = 1  # residual blocks per resolution in the encoder
    decoder_blocks: int = 2  # ... and in the decoder, which does the harder job
    groups: int = 16  # GroupNorm groups
    commitment: float = 0.25  # β: weight of ‖z − sg(q)‖² against the codebook term
    # Each token sees and draws only its own downsample × downsample patch (as a ViT's patch embedding does),
    # never its neighbours: a token then names that patch's picture alone, so a world whose cells hold one of
    # a few pictures needs one code per picture, not per picture-in-its-neighbourhood.
    local_tokens: bool = False

    @property
    def grid(self) -> int:
        """Side of the token grid: an image becomes grid × grid ids."""
        return self.image_size // self.downsample

    @property
    def tokens_per_image(self) -> int:
        return self.grid * self.grid

    def validate(self) -> VQConfig:
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

@dataclass(frozen=True)
class VisionConfig(JsonConfig):
    """The frozen open_clip vision tower and which of its features the LLM sees."""
    # An open_clip model name ("ViT-L-14-336"), or a folder in open_clip's hub layout (open_clip_config.json and
    # open_clip_model.safetensors) as "local-dir:PATH" or "hf-hub:ORG/REPO"; those carry their own weights.
    model_name: str = "ViT-L-14-336"
    pretrained: str | None = "openai"  # for a plain model name: a pretrained tag or a checkpoint file path
    feature_layer: int = -2  # transformer block whose patch tokens are used; -2 = penultimate, as in LLaVA

    def validate(self) -> VisionConfig:
        if not self.model_name:
            raise ConfigError("vision.model_name is empty; give an open_clip model name such as 'ViT-L-14-336'")
        return self


PROJECTORS = ("linear", "mlp2x_gelu", "mlp2x_gelu_norm")


@dataclass(frozen=True)
class ProjectorConfig(JsonConfig):
    """Vision feature width → LLM hidden width. mlp2x_gelu is LLaVA-1.5's Linear-GELU-Linear;
    mlp2x_gelu_norm adds an RMSNorm whose gain starts at the LLM's embedding spread.

    merge > 1 joins each merge×merge block of neighbouring patches into one image slot, their features
    concatenated (InternVL's pixel shuffle, Qwen2-VL's patch merger): merge² times fewer slots for the LLM
    to read, nothing of the features dropped.

    slot_labels, when given, are one short text per image slot, written in the prompt just before that slot
    (e.g. the grid cell each slot covers: "top left", "top", ...). A slot's features then sit beside words
    that name where they are, so the LLM can answer "where?" by copying a label and find "the ring" by its
    neighbourhood rather than by counting positions. () = no labels (LLaVA's layout)."""
    kind: str = "mlp2x_gelu"
    merge: int = 1
    slot_labels: tuple[str, ...] = ()

    def validate(self) -> ProjectorConfig:
        if self.kind not in PROJECTORS:
            raise ConfigError(f"projector.kind is {self.kind!r}; choose one of {', '.join(PROJECTORS)}")
        if not isinstance(self.merge, int) or self.merge < 1:
            raise ConfigError(f"projector.merge is {self.merge!r}; use 1 (one slot per patch) or 2, 3, ...")
        if not all(isinstance(label, str) and label.strip() for label in self.slot_labels):
            raise ConfigError(f"projector.slot_labels must be non-empty strings, one per image slot; got "
                              f"{list(self.slot_labels)!r:.120}")
        return self


@dataclass(frozen=True)
class LLMConfig(JsonConfig):
    """The frozen causal language model: a Hugging Face hub id or local directory, optionally a GGUF file in it."""
    name_or_path: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    gguf_file: str | None = None


@dataclass(frozen=True)
class ImageTokens(JsonConfig):
    """The tokens added to the LLM's vocabulary, in this order, after its last original token.

    `image` marks one slot of an input image's features; `boi` and `eoi` open and
    close a generated image; code i of the VQ codebook is `code_format.format(i)`.
    """
    image: str = "<image>"
    boi: str = "<boi>"
    eoi: str = "<eoi>"
    code_format: str = "<code_{:04d}>"

    def validate(self) -> ImageTokens:
        names = [self.image, self.boi, self.eoi, self.code_format.format(0)]
        if len(set(names)) != len(names) or "{" not in self.code_format:
            raise ConfigError(f"image tokens {names} must be distinct and code_format must contain '{{}}'")
        return self


@dataclass(frozen=True)
class DrawingConfig(JsonConfig):
    """How a drawn image is written in the assistant's reply.

    labels, when given, are one short text per drawn code (the VQ grid's cells, row by row: "top left",
    "top", ...), written before that code: "<boi> top left: <code> top: <code> ... <eoi>". The labels are
    part of the layout, not of what the model chooses: generation writes them and training does not score
    them. Each code is then drawn right after words that say where it goes, so "a red circle in the top
    left" has something to attend to, instead of the model counting the codes it has drawn. () = none.

    describe: the assistant says what it will draw before it draws ("Here is a large red circle in the top left
    corner." then the image), as it was trained to (glyph data chats --describe-drawings). The sentence settles
    the layout in words; a drawing the caller asks for outright (draw=True, the images API) then starts with
    that sentence instead of with the image."""
    labels: tuple[str, ...] = ()
    describe: bool = False

    def validate(self) -> DrawingConfig:
        if not all(isinstance(label, str) and label.strip() for label in self.labels):
            raise ConfigError(f"drawing.labels must be non-empty strings, one per drawn code; got "
                              f"{list(self.labels)!r:.120}")
        if not isinstance(self.describe, bool):
            raise ConfigError(f"drawing.describe must be true or false; got {self.describe!r:.40}")
        return self


@dataclass(frozen=True)
class AssistantConfig(JsonConfig):
    """The whole assistant: which frozen parts it is built from, and how they are joined."""
    vq: str  # directory of the VQ-VAE (VQModel.save_pretrained) that draws the pictures
    kind: str = "glyph-assistant"
    vision: VisionConfig = field(default_factory=VisionConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    tokens: ImageTokens = field(default_factory=ImageTokens)
    drawing: DrawingConfig = field(default_factory=DrawingConfig)

    def located_in(self, directory: str | Path) -> AssistantConfig:
        """This config with its relative part paths (the VQ directory, a `local-dir:` vision folder, an LLM
        folder that exists there) taken as relative to `directory`: a shipped assistant names its parts by
        paths inside itself, so it loads from wherever the repository was cloned. The paths come out absolute:
        an assistant trained further from a relative --init saves parts that its own folder can find."""
        base = Path(directory).resolve()

        def under(path: str) -> str:
            return path if Path(path).is_absolute() else str(base / path)

        vision = self.vision
        if vision.model_name.startswith(LOCAL_DIR):
            vision = dataclasses.replace(vision, model_name=LOCAL_DIR + under(vision.model_name[len(LOCAL_DIR):]))
        llm = self.llm
        if not Path(llm.name_or_path).is_absolute() and (base / llm.name_or_path).is_dir():
            llm = dataclasses.replace(llm, name_or_path=str(base / llm.name_or_path))
        return dataclasses.replace(self, vq=under(self.vq), vision=vision, llm=llm)

    def validate(self) -> AssistantConfig:
        if self.kind != "glyph-assistant":
            raise ConfigError(f"config kind is {self.kind!r}, expected 'glyph-assistant'")
        for part in (self.vision, self.projector, self.llm, self.tokens, self.drawing):
            part.validate()
        return self


def write_json_atomic(path: Path, data) -> Path:
    """Write JSON so that a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_save(str(path), text_mode=True) as file:
        file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
