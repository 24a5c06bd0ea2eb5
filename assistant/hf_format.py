"""Glyph's parts as plain Hugging Face models: what `glyph export` writes and the benchmark's reference runs.

    config = clip_vision_config(glyph.vision_tower.encoder)             # transformers CLIPVisionConfig
    state = clip_vision_state(glyph.vision_tower.encoder, "")          # CLIPVisionModel's weight names
    llm = merged_causal_lm(glyph)          # a transformers causal LM over the whole vocabulary, LoRA merged
    llava, processor = llava_model(glyph)  # the understanding half as LlavaForConditionalGeneration (merge 1)

- The vision tower: open_clip's VisionTransformer and transformers' CLIPVisionModel
  are the same network under other names (open_clip packs q, k and v in one
  matrix). Its features are CLIPVisionModel's hidden_states[feature_layer]
  without the class token.
- The LLM: Glyph never resizes the LLM's embeddings (assistant/image_vocab.py);
  here the new ids' input and output rows are appended to copies of them, so one
  ordinary causal LM gives the same logits over the whole vocabulary. The head is
  untied: the new output rows are not the new input rows.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor
from transformers import (AutoModelForCausalLM, CLIPImageProcessor, CLIPVisionConfig, LlavaConfig,
                          LlavaForConditionalGeneration, LlavaProcessor, PreTrainedModel)

from assistant.templates import DEFAULT_CHAT_TEMPLATE


def clip_vision_config(encoder) -> CLIPVisionConfig:
    """The CLIPVisionConfig of an open_clip VisionTransformer (`model.visual`)."""
    block = encoder.transformer.resblocks[0]
    activation = type(block.mlp.gelu).__name__
    return CLIPVisionConfig(hidden_size=encoder.transformer.width, intermediate_size=block.mlp.c_fc.out_features,
                            num_hidden_layers=len(encoder.transformer.resblocks),
                            num_attention_heads=block.attn.num_heads, image_size=_side(encoder.image_size),
                            patch_size=_side(encoder.patch_size), layer_norm_eps=block.ln_1.eps,
                            hidden_act="quick_gelu" if activation == "QuickGELU" else "gelu")


def clip_vision_state(encoder, prefix: str) -> dict[str, Tensor]:
    """open_clip's VisionTransformer weights under CLIPVisionModel's names, each starting with `prefix`
    ("" for CLIPVisionModel, "model.vision_tower." inside LLaVA). Its final LayerNorm and
    projection are left out: the assistant reads an earlier block."""
    state = {"embeddings.patch_embedding.weight": encoder.conv1.weight,
             "embeddings.class_embedding": encoder.class_embedding,
             "embeddings.position_embedding.weight": encoder.positional_embedding,
             "pre_layrnorm.weight": encoder.ln_pre.weight, "pre_layrnorm.bias": encoder.ln_pre.bias}
    for i, block in enumerate(encoder.transformer.resblocks):
        layer = f"encoder.layers.{i}."
        q, k, v = block.attn.in_proj_weight.chunk(3)
        qb, kb, vb = block.attn.in_proj_bias.chunk(3)
        state |= {layer + "self_attn.q_proj.weight": q, layer + "self_attn.q_proj.bias": qb,
                  layer + "self_attn.k_proj.weight": k, layer + "self_attn.k_proj.bias": kb,
                  layer + "self_attn.v_proj.weight": v, layer + "self_attn.v_proj.bias": vb,
                  layer + "self_attn.out_proj.weight": block.attn.out_proj.weight,
                  layer + "self_attn.out_proj.bias": block.attn.out_proj.bias,
                  layer + "layer_norm1.weight": block.ln_1.weight, layer + "layer_norm1.bias": block.ln_1.bias,
                  layer + "layer_norm2.weight": block.ln_2.weight, layer + "layer_norm2.bias": block.ln_2.bias,
                  layer + "mlp.fc1.weight": block.mlp.c_fc.weight, layer + "mlp.fc1.bias": block.mlp.c_fc.bias,
                  layer + "mlp.fc2.weight": block.mlp.c_proj.weight, layer + "mlp.fc2.bias": block.mlp.c_proj.bias}
    return {prefix + k: v.detach().clone().contiguous() for k, v in state.items()}


def clip_image_processor(encoder) -> CLIPImageProcessor:
    """transformers' CLIPImageProcessor doing open_clip's default preprocessing for this tower: resize the short
    side to S (bicubic), centre-crop S×S, scale to [0, 1], normalise with the tower's mean and std."""
    side = _side(encoder.image_size)
    preprocess = encoder.preprocess_cfg  # set by open_clip.create_model_and_transforms from the model's config
    return CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                              resample=3, image_mean=list(preprocess["mean"]), image_std=list(preprocess["std"]),
                              do_convert_rgb=True)


def projector_state(projector, prefix: str = "") -> dict[str, Tensor]:
    """The projector's layers under LLaVA's multi_modal_projector names: linear_1 (and linear_2 for mlp2x_gelu),
    then `norm` for mlp2x_gelu_norm; a patch merge has no weights."""
    layers = [m for m in projector.modules() if isinstance(m, (torch.nn.Linear, torch.nn.RMSNorm))]
    names = ["linear_1", "linear_2", "norm"][:len(layers)]
    return {f"{prefix}{name}.{k}": v.detach().clone().contiguous() for name, layer in zip(names, layers)
            for k, v in layer.state_dict().items()}


def llava_config(glyph, text_config) -> LlavaConfig:
    """LlavaConfig for `glyph`'s vision tower, slots and image token, over the LLM config `text_config`."""
    return LlavaConfig(vision_config=clip_vision_config(glyph.vision_tower.encoder), text_config=text_config,
                       image_token_id=glyph.vocab.image_id, projector_hidden_act="gelu",
                       vision_feature_layer=glyph.config.vision.feature_layer,
                       vision_feature_select_strategy="default", image_seq_length=glyph.layout.slots_per_image,
                       tie_word_embeddings=False)


@torch.no_grad()
def whole_vocabulary_state(glyph) -> dict[str, Tensor]:
    """The LLM's weights (LoRA merged when the model merged it), with the embedding and head grown to Glyph's
    whole vocabulary: the LLM's rows for its own ids, then the image vocabulary's new rows."""
    if glyph.has_lora:
        raise ValueError("merge the LoRA adapter first (GlyphModel.from_pretrained(..., merge_lora=True))")
    vocab, llm = glyph.vocab, glyph.causal_lm
    state = {k: v.detach().clone() for k, v in llm.state_dict().items()}
    names = {module: name for name, module in llm.named_modules()}
    embed = llm.get_input_embeddings().weight[:vocab.first_id]  # (first_id, H): padding rows past it dropped
    head = llm.get_output_embeddings().weight[:vocab.first_id]
    state[names[llm.get_input_embeddings()] + ".weight"] = torch.cat([embed, vocab.input_rows().to(embed.dtype)])
    state[names[llm.get_output_embeddings()] + ".weight"] = torch.cat([head, vocab.output.to(head.dtype)])
    return state


def merged_causal_lm(glyph, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A plain transformers causal LM over Glyph's whole vocabulary (see whole_vocabulary_state)."""
    llm = glyph.causal_lm
    config = copy.deepcopy(llm.config)
    config.vocab_size, config.tie_word_embeddings = glyph.vocab.size, False
    if hasattr(config, "quantization_config"):  # a GGUF source: the weights here are dense
        del config.quantization_config
    if hasattr(config.get_text_config(), "tie_word_embeddings"):
        config.get_text_config().tie_word_embeddings = False
    dtype = dtype or llm.get_input_embeddings().weight.dtype
    merged = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    state = whole_vocabulary_state(glyph)
    missing, unexpected = merged.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"the LLM's weights did not map onto {type(merged).__name__}: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    merged.generation_config = copy.deepcopy(llm.generation_config)
    return merged.requires_grad_(False)


def llava_model(glyph, dtype: torch.dtype | None = None) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """The assistant (LoRA merged) as transformers' LLaVA and its processor. LLaVA projects each patch on its own,
    so only an `mlp2x_gelu` projector without patch merging fits it: anything else is a ValueError."""
    misfit = llava_misfit(glyph.config.projector)
    if misfit:
        raise ValueError(misfit)
    vocab, encoder = glyph.vocab, glyph.vision_tower.encoder
    language_model = merged_causal_lm(glyph, dtype)
    llava = LlavaForConditionalGeneration(llava_config(glyph, language_model.config))
    llava = llava.to(language_model.dtype).eval()
    state = clip_vision_state(encoder, "model.vision_tower.")
    state |= projector_state(glyph.projector, "model.multi_modal_projector.")
    state |= {("model.language_model." + k.removeprefix("model.")) if k.startswith("model.") else k: v
              for k, v in language_model.state_dict().items()}
    missing, unexpected = llava.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("model.vision_tower.post_layernorm")]  # never read
    if missing or unexpected:
        raise RuntimeError(f"the weights did not map onto LLaVA: missing {missing[:3]}, unexpected {unexpected[:3]}")
    llava.generation_config = language_model.generation_config
    processor = LlavaProcessor(image_processor=clip_image_processor(encoder), tokenizer=glyph.tokenizer,
                               patch_size=_side(encoder.patch_size), vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, image_token=vocab.tokens.image,
                               chat_template=multimodal_chat_template(
                                   glyph.tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE, vocab.tokens.image))
    return llava.requires_grad_(False), processor


def llava_misfit(projector) -> str | None:
    """Why a projector (ProjectorConfig) has no LLaVA equivalent, or None when it has one."""
    if projector.slot_labels:
        return ("LLaVA writes an image's slots with nothing between them, but this assistant writes a label before "
                "each slot (projector.slot_labels); export it with --format hf-merged instead")
    if projector.kind == "mlp2x_gelu" and projector.merge == 1:
        return None
    return (f"LLaVA's multi_modal_projector is mlp2x_gelu over single patches, but this assistant's projector is "
            f"{projector.kind} with {projector.merge}x{projector.merge} patches per slot; export it with "
            "--format hf-merged instead")


def multimodal_chat_template(text_template: str, image_token: str) -> str:
    """A text-only chat template (SmolLM2's, Qwen2's) that also takes Hugging Face's multimodal messages: each
    message's list of parts becomes one string, an image part the image token, as Glyph's templates lay it out.
    A top-level `set messages` shadows the caller's messages for the rest of the template."""
    return ("{%- set glyph = namespace(messages=[]) -%}"
            "{%- for message in messages -%}"
            "{%- if message['content'] is string -%}{%- set glyph.messages = glyph.messages + [message] -%}"
            "{%- else -%}{%- set text = namespace(value='') -%}"
            "{%- for part in message['content'] -%}"
            "{%- if part['type'] == 'image' -%}{%- set text.value = text.value + " + repr(image_token) + " -%}"
            "{%- elif part['type'] == 'text' -%}{%- set text.value = text.value + part['text'] -%}{%- endif -%}"
            "{%- endfor -%}"
            "{%- set glyph.messages = glyph.messages + [{'role': message['role'], 'content': text.value}] -%}"
            "{%- endif -%}{%- endfor -%}"
            "{%- set messages = glyph.messages -%}" + text_template)


def _side(size) -> int:
    return size[0] if isinstance(size, (tuple, list)) else size
