"""The assistant: frozen CLIP vision tower → trainable projector → frozen causal LLM, plus an image vocabulary.

    model = GlyphModel.build(AssistantConfig(vq="runs/vq", vision=..., llm=...))   # fresh projector and rows
    model.add_lora(LoraConfig(r=16, target_modules=[...]))                          # stage 2
    out = model(input_ids, attention_mask, pixel_values=pixels, labels=labels)      # out.loss
    model.save_pretrained("runs/assistant")       # config.json, model.safetensors (trained rows), adapter/
    model = GlyphModel.from_pretrained("runs/assistant")

The parts are held side by side (composition): `vision_tower`, `projector`,
`language_model` (a transformers causal LM, wrapped by peft once LoRA is
added), `vocab` (the new token rows) and `vq` (the frozen VQ-VAE that turns
drawn codes into pixels). No transformers class is subclassed or patched: the
model runs the LLM's backbone on embeddings it builds itself, and computes
logits with the LLM's head plus the vocabulary's new rows.
"""
from __future__ import annotations

import dataclasses
import json
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from boltons.fileutils import atomic_save
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from assistant.config import AssistantConfig, ConfigError, first_line, unreadable
from assistant.decoder import Decoder
from assistant.image_vocab import SPECIALS, ImageVocabulary
from assistant.llm import load_language_model
from assistant.lora_merge import plain_lora
from assistant.merged_llm import load_merged_language_model
from assistant.projector import build_projector, slots_per_image
from assistant.templates import IGNORE_INDEX, ImageLayout
from assistant.vision import VisionTower
from assistant.vq import VQModel

if TYPE_CHECKING:
    from peft import LoraConfig

WEIGHTS_NAME = "model.safetensors"  # projector + new vocabulary rows: everything trained except LoRA
ADAPTER_DIR = "adapter"  # peft's LoRA adapter (adapter_config.json + adapter_model.safetensors)


@dataclass
class GlyphOutput:
    loss: Tensor | None  # mean cross-entropy over supervised tokens, when labels were given
    logits: Tensor | None  # (B, T, vocab) when no labels were given; training computes only the supervised ones


def _is_peft(module: nn.Module) -> bool:
    """Is `module` wrapped by peft? Nothing is before peft is imported: only training and loading an adapter
    unmerged import it, so that chatting with a merged model does not pay its import at every start."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(module, peft.PeftModel)


class GlyphModel(nn.Module):
    def __init__(self, config: AssistantConfig, vision_tower: VisionTower, projector: nn.Module,
                 language_model: nn.Module, tokenizer, vocab: ImageVocabulary, vq: VQModel):
        super().__init__()
        self.config = config
        self.vision_tower = vision_tower
        self.projector = projector
        self.language_model = language_model
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.vq = vq.requires_grad_(False).eval()
        self.lora_merged = False  # merge_lora() folded the adapter into the LLM (inference only)
        self.use_decoder = True  # generation runs assistant.decoder where it supports the LLM
        self.int8_decoding = False  # ... reading the LLM's plain weights as int8 rows (assistant/int8.py)
        # A one-row generation starts from the positions its prompt shares with the last one (a chat's earlier
        # turns: assistant/prompt_reuse.py); False prefills every prompt whole.
        self.reuse_prompt_prefix = True
        self.layout = self._layout()

    def _layout(self) -> ImageLayout:
        slots = slots_per_image(self.vision_tower.num_patches, self.config.projector.merge)
        return ImageLayout.of(self.vocab, slots, self.vq.config.tokens_per_image, self.tokenizer,
                              self.config.projector.slot_labels, self.config.drawing.labels)

    def label_slots(self, labels: tuple[str, ...]) -> None:
        """Write `labels` (one per image slot, ProjectorConfig.slot_labels) before the image slots from now on;
        () for none. Saved with the config, so the assistant keeps reading images the way it was trained."""
        projector = dataclasses.replace(self.config.projector, slot_labels=tuple(labels)).validate()
        self.config = dataclasses.replace(self.config, projector=projector)
        self.layout = self._layout()

    def label_drawings(self, labels: tuple[str, ...]) -> None:
        """Write `labels` (one per drawn code, DrawingConfig.labels) before the codes of a drawing from now on;
        () for none. Saved with the config, so the assistant keeps drawing the way it was trained."""
        drawing = dataclasses.replace(self.config.drawing, labels=tuple(labels)).validate()
        self.config = dataclasses.replace(self.config, drawing=drawing)
        self.layout = self._layout()

    def describe_drawings(self, describe: bool) -> None:
        """Whether the assistant says what it draws before a drawing (DrawingConfig.describe) from now on; saved
        with the config."""
        drawing = dataclasses.replace(self.config.drawing, describe=describe).validate()
        self.config = dataclasses.replace(self.config, drawing=drawing)

    # ---- building and loading -------------------------------------------------------------------------

    @classmethod
    def build(cls, config: AssistantConfig, merged_adapter: Path | None = None,
              lazy_vision: bool = False, fresh: bool = True) -> GlyphModel:
        """The frozen parts named in `config`, with a fresh projector and fresh vocabulary rows; the LLM with the
        plain LoRA adapter saved in `merged_adapter` folded in, when one is given (assistant/merged_llm.py), and
        the vision tower built on first use with lazy_vision (assistant/vision.py). fresh=False skips starting
        the projector and rows from the LLM's embeddings (statistics over all its rows, ~0.1 s on SmolLM2): for
        a caller that loads trained ones over them."""
        config.validate()
        tower, llm, tokenizer, vq = _frozen_parts(config, merged_adapter, lazy_vision)
        first_id, codes = len(tokenizer), vq.quantizer.codes()
        if fresh:
            vocab = ImageVocabulary.create(config.tokens, first_id, codes, llm.get_input_embeddings().weight,
                                           llm.get_output_embeddings().weight)
        else:
            vocab = ImageVocabulary(config.tokens, first_id, llm.get_input_embeddings().weight.shape[1], codes)
        _add_tokens(tokenizer, vocab)
        rows = llm.get_input_embeddings().weight[:vocab.first_id]  # the LLM's own tokens' rows
        projector = build_projector(config.projector, tower.hidden_size, llm.config.get_text_config().hidden_size,
                                    embedding_std=float(rows.detach().float().std()) if fresh else None)
        return cls(config, tower, projector, llm, tokenizer, vocab, vq)

    @classmethod
    def from_pretrained(cls, directory: str | Path, trainable: bool = False, merge_lora: bool = False,
                        vq: str | Path | None = None) -> GlyphModel:
        """Rebuild the whole assistant from a directory written by save_pretrained.

        trainable=True keeps the LoRA adapter trainable (to continue training); otherwise it is frozen.
        merge_lora=True folds it into the LLM's weights (merge_lora()): what chatting and serving want. Such a
        model also builds its vision tower on the first picture (a chat that starts with words does not wait).
        vq swaps in another VQ-VAE (a new image tokenizer, to train further with): everything trained is kept
        but the code tokens' output rows, which start afresh (see _load_trained). The same VQ changes nothing.
        """
        directory = Path(directory)
        config = AssistantConfig.load(directory).located_in(directory)
        new_vq = Path(vq).resolve() if vq is not None else None
        swapped = new_vq is not None and new_vq != Path(config.vq).resolve()
        if swapped:
            config = dataclasses.replace(config, vq=str(new_vq))
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise ConfigError(f"{weights} does not exist; pass a directory written by GlyphModel.save_pretrained")
        adapter = directory / ADAPTER_DIR
        fold = adapter.is_dir() and merge_lora and plain_lora(adapter)  # peft's merge, without peft's wrapper
        model = cls.build(config, merged_adapter=adapter if fold else None, lazy_vision=merge_lora,
                          fresh=swapped)  # a new codebook may keep the fresh code map
        _load_trained(model, weights, new_codebook=swapped)
        if fold:
            model.lora_merged = True
        elif adapter.is_dir():
            from peft import PeftModel  # noqa: PLC0415 (see _is_peft)
            model.language_model = PeftModel.from_pretrained(model.language_model, adapter, is_trainable=trainable)
            if merge_lora:
                model.merge_lora()
        return model.eval()

    def save_pretrained(self, directory: str | Path) -> Path:
        """Only what trains (projector, new rows, LoRA) and the config naming the frozen parts."""
        if self.lora_merged:
            raise RuntimeError("this model's LoRA adapter was merged into the LLM for inference (merge_lora), so "
                               "it can no longer be saved apart; save the model you loaded with trainable=True")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {f"projector.{k}": v for k, v in self.projector.state_dict().items()}
        state |= {f"vocab.{k}": v for k, v in self.vocab.state_dict().items()}
        metadata = {"format": "pt", "first_id": str(self.vocab.first_id),
                    "codebook_size": str(self.vocab.codebook_size), "vision_width": str(self.vision_tower.hidden_size)}
        with atomic_save(str(directory / WEIGHTS_NAME)) as file:  # a reader never sees half a file
            file.write(safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in state.items()}, metadata))
        if _is_peft(self.language_model):
            self.language_model.save_pretrained(directory / ADAPTER_DIR)
        self.config.save(directory)
        return directory

    @property
    def has_lora(self) -> bool:
        """Does the LLM carry a (separate, unmerged) LoRA adapter?"""
        return _is_peft(self.language_model)

    def add_lora(self, lora: LoraConfig) -> None:
        """Wrap the LLM with trainable LoRA adapters (peft); its original weights stay frozen."""
        if _is_peft(self.language_model):
            raise RuntimeError("this model already has a LoRA adapter")  # noqa: TRY004 (a state, not a type)
        from peft import get_peft_model  # noqa: PLC0415 (see _is_peft)
        self.language_model = get_peft_model(self.language_model, lora)

    @property
    def adapted(self) -> bool:
        """Does the LLM carry a trained LoRA adapter, separate or merged (so that it is no longer the LLM's own)?"""
        return self.lora_merged or self.has_lora

    def llm_alone(self) -> GlyphModel:
        """This assistant with its LLM as it was before the adapter, sharing every other part: it answers the
        text-only turns the adapter hands over (generation.hands_over). The LLM is loaded again on first use
        (a cached file: under a second) and kept; not a submodule, so never saved or counted. Without an
        adapter the model is its own."""
        if not self.adapted:
            return self
        alone = self.__dict__.get("_glyph_llm_alone")
        if alone is None:
            llm, _ = load_language_model(self.config.llm.name_or_path, self.config.llm.gguf_file)
            weight = self.causal_lm.get_input_embeddings().weight  # the same dtype and device as the adapted LLM
            llm = llm.to(device=weight.device, dtype=weight.dtype).requires_grad_(False)
            alone = GlyphModel(self.config, self.vision_tower, self.projector, llm, self.tokenizer, self.vocab,
                               self.vq).eval()
            self.__dict__["_glyph_llm_alone"] = alone
        alone.use_decoder, alone.int8_decoding = self.use_decoder, self.int8_decoding  # the caller's choices
        alone.reuse_prompt_prefix = self.reuse_prompt_prefix
        return alone

    def merge_lora(self) -> None:
        """Fold the LoRA adapter into the LLM's weights for inference: the same outputs, without LoRA's two
        extra matmuls per linear at every step. A merged model cannot be trained or saved any more."""
        if _is_peft(self.language_model):
            self.language_model = self.language_model.merge_and_unload()
            self.lora_merged = True

    def decoder(self, batch: int, capacity: int):
        """generation's lean decoder over the LLM (assistant/decoder.py), or None: use backbone()."""
        if not self.use_decoder:
            return None
        return Decoder.for_model(self.causal_lm, batch, capacity, int8=self.int8_decoding)

    def train(self, mode: bool = True) -> GlyphModel:
        super().train(mode)
        self.vq.eval()  # frozen parts never train; the vision tower keeps itself in eval mode too
        return self

    # ---- the forward pass ---------------------------------------------------------------------------

    @property
    def causal_lm(self) -> nn.Module:
        """The transformers causal LM (inside peft's wrapper once LoRA is added; LoRA layers sit in it)."""
        llm = self.language_model
        return llm.get_base_model() if _is_peft(llm) else llm

    @property
    def context_length(self) -> int:
        """The most positions the LLM attends over (prompt and reply together)."""
        return self.causal_lm.config.get_text_config().max_position_embeddings

    def image_features(self, pixel_values: Tensor) -> Tensor:
        """(B, 3, S, S) preprocessed images → (B, N, H) projected features, one row per placeholder slot."""
        return self.project(self.vision_tower(pixel_values))

    def project(self, vision_features: Tensor) -> Tensor:
        """(B, N, D) vision features (which may be cached, the tower being frozen) → (B, N, H)."""
        return self.projector(vision_features.to(self.projector_dtype))

    @property
    def projector_dtype(self) -> torch.dtype:
        return next(self.projector.parameters()).dtype

    def embed(self, input_ids: Tensor, image_features: Tensor | None = None) -> Tensor:
        """(B, T) ids → (B, T, H), with the `<image>` slots filled by `image_features` (n, N, H) in order."""
        embeds = self.vocab.embed(input_ids, self.causal_lm.get_input_embeddings())
        slots = input_ids == self.vocab.image_id
        given = 0 if image_features is None else image_features.shape[0] * image_features.shape[1]
        if int(slots.sum()) != given:
            n = self.layout.slots_per_image
            raise ValueError(f"the ids hold {int(slots.sum())} image slots ({int(slots.sum()) / n:g} images of {n}) "
                             f"but {given // n} image(s) were given; give one image per <image> placeholder")
        if given:
            embeds = embeds.masked_scatter(slots.unsqueeze(-1), image_features.to(embeds.dtype))
        return embeds

    def backbone(self, inputs_embeds: Tensor, attention_mask: Tensor | None = None,
                 position_ids: Tensor | None = None, past_key_values=None, use_cache: bool = False):
        """The LLM's transformer without its head: (B, T, H) embeddings → (B, T, H) final hidden states, cache."""
        out = self.causal_lm.base_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                        position_ids=position_ids, past_key_values=past_key_values,
                                        use_cache=use_cache)
        return out.last_hidden_state, out.past_key_values

    def logits(self, hidden: Tensor) -> Tensor:
        """(..., H) → (..., vocab) over the LLM's tokens and the image vocabulary."""
        return self.vocab.logits(hidden, self.causal_lm.get_output_embeddings())

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, pixel_values: Tensor | None = None,
                image_features: Tensor | None = None, labels: Tensor | None = None) -> GlyphOutput:
        """Give pixel_values (B_img, 3, S, S) or already projected image_features (B_img, N, H), in slot order."""
        if pixel_values is not None:
            image_features = self.image_features(pixel_values)
        embeds = self.embed(input_ids, image_features)
        hidden, _ = self.backbone(embeds, attention_mask, _positions(attention_mask))
        if labels is None:
            return GlyphOutput(None, self.logits(hidden))
        return GlyphOutput(self.next_token_loss(hidden[:, :-1], labels[:, 1:]), None)

    def next_token_loss(self, hidden: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy of (B, T, H) hidden states against (B, T) next-token targets, over supervised ones.

        Logits are computed only where a target exists: most positions (prompts, image slots) have none, and
        the head is the costliest matmul of a small LLM. A code target is scored among the K codes alone, as
        generation samples it (in image mode only codes may come): its logits need K output rows, not the
        LLM's whole vocabulary, which makes a drawn token about 25x cheaper in the head. Every other target is
        scored over the whole vocabulary."""
        supervised = targets != IGNORE_INDEX
        codes = supervised & (targets >= self.vocab.code_start)  # (B, T)
        words = supervised & ~codes
        total = F.cross_entropy(self.logits(hidden[words]).float(), targets[words], reduction="sum")
        if codes.any():
            code_logits = hidden[codes] @ self.vocab.code_rows().to(hidden.dtype).T  # (S_codes, K)
            total = total + F.cross_entropy(code_logits.float(), self.vocab.codes_of(targets[codes]),
                                            reduction="sum")
        return total / supervised.sum()


# A build directory's stage-2 phases, in training order: instruct/, then refine rounds refine/, refine-2/, ...
# each going on from the one before. Its assistant is the last one it has (glyph build).
FIRST_STAGE_2, REFINE = "instruct", "refine"


def stage_2_folder(round_number: int) -> str:
    """The build folder of a refine round: refine/ for the first, refine-2/, refine-3/, ... after it."""
    return REFINE if round_number == 1 else f"{REFINE}-{round_number}"


def stage_2_rank(name: str) -> int | None:
    """Where a folder name comes in the stage-2 order (instruct 0, refine 1, refine-N N), or None."""
    if name == FIRST_STAGE_2:
        return 0
    head, _, number = name.partition("-")
    if head == REFINE and (not number or (number.isdigit() and int(number) >= 2)):
        return int(number or 1)
    return None


def stage_2_phases(build: Path) -> list[Path]:
    """The stage-2 phase folders a build directory has, last first."""
    found = [p for p in build.iterdir() if p.is_dir() and stage_2_rank(p.name) is not None] if build.is_dir() else []
    return sorted(found, key=lambda p: stage_2_rank(p.name), reverse=True)
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "scenes-smollm2"  # the assistant in the repository
REBUILD = ("glyph build scenes-smollm2 --out runs/scenes-smollm2, then "
           "glyph ship runs/scenes-smollm2 --out models/scenes-smollm2")


def load_assistant(directory: str | Path | None = None) -> GlyphModel:
    """The assistant to chat with, its LoRA merged: `directory` (an assistant or a build directory), or the one
    shipped in models/ when None. A missing, truncated or mismatched part is one ConfigError that names it."""
    where = Path(directory) if directory is not None else SHIPPED
    if directory is None and not (SHIPPED / "config.json").is_file():
        raise ConfigError(f"the shipped assistant {SHIPPED} is missing or incomplete (no config.json); restore it "
                          f"(git checkout -- models) or rebuild it: {REBUILD}; or pass --model DIR")
    hint = REBUILD if directory is None else "rebuild it (glyph build ...) or pass another --model"
    found = locate(where)
    bad = unreadable_file(found)
    if bad is not None:
        raise unreadable(bad[0], bad[1], hint)
    try:
        return GlyphModel.from_pretrained(found, merge_lora=True)
    except ConfigError as error:
        raise ConfigError(f"{error}" + (f"; rebuild it: {REBUILD}" if directory is None else "")) from error
    except (OSError, RuntimeError, ValueError, KeyError, SafetensorError, pickle.UnpicklingError) as error:
        raise ConfigError(f"the assistant in {where} could not be loaded, a file of it may be truncated or from "
                          f"another build ({type(error).__name__}: {first_line(error)}); "
                          f"{hint}") from error


def unreadable_file(directory: Path) -> tuple[Path, str] | None:
    """(the first JSON or safetensors file of the assistant in `directory`, or of the parts its config names on
    disk, that cannot be read; why), or None. Safetensors headers are checked, which catches truncation."""
    folders = [directory]
    try:
        config = AssistantConfig.load(directory).located_in(directory)
        parts = [config.vq, config.vision.model_name.removeprefix("local-dir:"), config.llm.name_or_path]
        folders += [Path(p) for p in parts if Path(p).is_dir()]
    except (ConfigError, OSError, ValueError, KeyError, TypeError):
        pass  # config.json itself is checked below, and from_pretrained names what else is wrong
    for folder in folders:
        for path in sorted(folder.rglob("*.json")) + sorted(folder.rglob("*.safetensors")):
            try:
                if path.suffix == ".json":
                    json.loads(path.read_text())
                else:
                    with safe_open(str(path), "pt") as weights:
                        weights.keys()
            except (OSError, ValueError, SafetensorError) as error:
                return path, f"{type(error).__name__}: {first_line(error)}"
    return None


def locate(directory: str | Path) -> Path:
    """The assistant directory for `directory`: itself, or a build directory's (glyph build --out) last
    stage-2 phase: its last refine round (refine-N/, refine/) when it has one, else `instruct/`."""
    directory = Path(directory)
    if (directory / "config.json").is_file():
        return directory
    for phase in stage_2_phases(directory):
        if (phase / "config.json").is_file():
            return phase
    raise ConfigError(f"{directory} holds no assistant (no config.json); pass a directory written by glyph train "
                      "instruct, or a glyph build --out directory")


def _positions(attention_mask: Tensor | None) -> Tensor | None:
    """Position ids that skip left padding, so a padded row sees the same positions as an unpadded one."""
    if attention_mask is None:
        return None
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _frozen_parts(config: AssistantConfig, merged_adapter: Path | None = None, lazy_vision: bool = False):
    tower = VisionTower(config.vision, lazy=lazy_vision)
    if merged_adapter is None:
        llm, tokenizer = load_language_model(config.llm.name_or_path, config.llm.gguf_file)
    else:
        llm, tokenizer = load_merged_language_model(config.llm.name_or_path, config.llm.gguf_file, merged_adapter)
    vq = VQModel.from_pretrained(config.vq)
    return tower, llm, tokenizer, vq


def _add_tokens(tokenizer, vocab: ImageVocabulary) -> None:
    """Add the image tokens to the tokenizer so it can print them; their ids must be the vocabulary's."""
    strings = vocab.token_strings()
    known = tokenizer.get_vocab()  # built afresh at every call (~30 ms on SmolLM2's 49k tokens): once
    clashes = [s for s in strings[:4] if s in known]
    if clashes:
        raise ConfigError(f"tokenizer {tokenizer.name_or_path} already has {clashes}; choose other image token "
                          "strings in the config's `tokens`")
    tokenizer.add_tokens(strings, special_tokens=True)
    if tokenizer.convert_tokens_to_ids(strings[-1]) != vocab.size - 1:
        raise ConfigError(f"tokenizer {tokenizer.name_or_path} gave the image tokens other ids than expected")


def _load_trained(model: GlyphModel, weights: Path, new_codebook: bool = False) -> None:
    """Load the projector and vocabulary rows. With new_codebook, rows trained for another VQ codebook are
    accepted: what does not depend on the codebook is kept (the projector, `<image>`/`<boi>`/`<eoi>`, and the
    code map, which embeds any code vector of its width), and the code tokens' output rows start at the mean
    of the old ones (see _with_fresh_codes)."""
    try:
        with safe_open(str(weights), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(weights)
    except (SafetensorError, OSError) as error:
        raise unreadable(weights, f"{type(error).__name__}: {first_line(error)}",
                         "train or build this assistant again") from None
    expected = {"first_id": model.vocab.first_id, "codebook_size": model.vocab.codebook_size,
                "vision_width": model.vision_tower.hidden_size}
    saved = {k: int(meta[k]) for k in expected if k in meta}
    if new_codebook:
        state = _with_fresh_codes(state, model.vocab)
        saved["codebook_size"] = model.vocab.codebook_size
    if saved != expected:
        raise ConfigError(f"{weights} was trained for {json.dumps(saved)} but the parts named in its config.json "
                          f"give {json.dumps(expected)}: the tokenizer, VQ model or vision tower differs")
    for prefix, part in (("projector.", model.projector), ("vocab.", model.vocab)):
        part_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        shapes = {k: tuple(v.shape) for k, v in part.state_dict().items()}
        if {k: tuple(v.shape) for k, v in part_state.items()} != shapes:
            raise ConfigError(f"{weights} holds a {prefix[:-1]} that does not fit the parts named in its "
                              "config.json (the LLM's or vision tower's width differs)")
        part.load_state_dict(part_state)


def _with_fresh_codes(state: dict[str, Tensor], vocab: ImageVocabulary) -> dict[str, Tensor]:
    """The saved vocabulary output rows (3 + K_old, H) → (3 + K_new, H): the specials' rows kept, every code
    row the mean of the old code rows, so that no new code is preferred before training moves them. A codebook
    of another code width cannot go through the old code map, so the map starts as `vocab`'s fresh one."""
    rows = state["vocab.output"]
    codes = rows[SPECIALS:].mean(0, keepdim=True).expand(vocab.codebook_size, -1)
    state = state | {"vocab.output": torch.cat([rows[:SPECIALS], codes])}
    fresh = {f"vocab.{k}": v for k, v in vocab.state_dict().items() if k.startswith("code_map.")}
    if any(state[k].shape != v.shape for k, v in fresh.items()):
        state |= fresh
    return state
