"""Tiny random-weight parts saved to disk, loaded by the same from-path code as real models.

    paths = build_parts(tmp_path, arch="llama")      # tokenizer+LLM dir, open_clip local-dir, VQ dir
    model = GlyphModel.build(assistant_config(paths))
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from open_clip.push_to_hf_hub import save_config_for_hf
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from assistant.config import AssistantConfig, LLMConfig, ProjectorConfig, VisionConfig, VQConfig
from assistant.generation import Prompt
from assistant.templates import render_chat
from assistant.vq import VQModel

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CORPUS = ["a red circle above a blue square", "what is in the picture?", "draw a green triangle",
          "hello! how can I help you today?", "there are two shapes: a yellow cross and a purple circle",
          "the small orange square is left of the big cyan triangle", "<image> is just text here"] * 20
CLIP_CONFIG = {"embed_dim": 32,
               "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8,
                              "mlp_ratio": 2},
               "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}}
VQ_CONFIG = VQConfig(image_size=16, downsample=8, codebook_size=16, code_dim=4, channels=(16, 32), stem=4,
                     encoder_blocks=1, decoder_blocks=1, groups=8)


@dataclass(frozen=True)
class Parts:
    llm: Path
    clip: Path
    vq: Path


def build_tokenizer(chat_template: bool) -> PreTrainedTokenizerFast:
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    if chat_template:
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       chat_template=CHATML)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def build_llm(directory: Path, arch: str) -> Path:
    """A 2-layer, hidden-32 causal LM of `arch` (llama: tied embeddings like SmolLM2; qwen2: padded rows)."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer(chat_template=arch != "gpt2")
    n = len(tokenizer)
    if arch == "llama":
        config = LlamaConfig(vocab_size=n, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                             tie_word_embeddings=True)
        model = LlamaForCausalLM(config)
    elif arch == "qwen2":  # like Qwen2, more embedding rows than tokens
        config = Qwen2Config(vocab_size=n + 13, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                             tie_word_embeddings=False)
        model = Qwen2ForCausalLM(config)
    elif arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=n, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                           bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id))
    else:
        raise ValueError(arch)
    model.config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_clip(directory: Path) -> Path:
    """A tiny open_clip ViT (16 px, patch 8 → 4 patch tokens of width 32) in open_clip's hub folder layout."""
    torch.manual_seed(1)
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "glyph-tiny-vit.json"
    config_file.write_text(json.dumps(CLIP_CONFIG))
    model = open_clip.CLIP(**CLIP_CONFIG)
    model.visual.image_mean, model.visual.image_std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    save_file(model.state_dict(), directory / "open_clip_model.safetensors")
    save_config_for_hf(model, directory / "open_clip_config.json", model_config=CLIP_CONFIG)
    config_file.unlink()
    return directory


def build_vq(directory: Path) -> Path:
    torch.manual_seed(2)
    return VQModel(VQ_CONFIG).save_pretrained(directory)


def build_parts(root: Path, arch: str = "llama") -> Parts:
    return Parts(build_llm(root / f"llm-{arch}", arch), build_clip(root / "clip"), build_vq(root / "vq"))


def assistant_config(parts: Parts, projector: str = "mlp2x_gelu", merge: int = 1) -> AssistantConfig:
    return AssistantConfig(vq=str(parts.vq), vision=VisionConfig(f"local-dir:{parts.clip}", None),
                           projector=ProjectorConfig(projector, merge), llm=LLMConfig(str(parts.llm)))


def prompt_of(model, messages: list[dict]) -> Prompt:
    """The generation prompt of a chat, with its images' vision features."""
    chat = render_chat(messages, model.tokenizer, model.layout, add_generation_prompt=True)
    features = None
    if chat.images:
        features = model.image_features(torch.stack([model.vision_tower.preprocess(i) for i in chat.images]))
    return Prompt(chat.input_ids[None], features)


def stage1_args(world: dict, out: Path, *extra: str) -> list[str]:
    """`glyph train align` options for a tiny world: {"parts": Parts, "align": chats file, "root": folder}."""
    parts = world["parts"]
    return ["--data", str(world["align"]), "--out", str(out), "--vision", f"local-dir:{parts.clip}",
            "--llm", str(parts.llm), "--vq", str(parts.vq), "--batch-size", "4", "--holdout", "4",
            "--samples", "2", "--precision", "fp32", "--cache-dir", str(world["root"] / "cache"), *extra]
