"""The reference: the same assistant the plain Hugging Face way, on the same weights.

    reference = llava_from(glyph)          # LlavaForConditionalGeneration (+ peft LoRA when glyph has one)
    ids = generate_text(reference, glyph, prompt_ids, pixel_values, max_new_tokens=64)
    codes = generate_codes(reference, glyph, prompt_ids, unconditional_ids, cfg_scale=4.0)

What a user who knows transformers would write:
- transformers' `LlavaForConditionalGeneration`: HF's CLIP vision tower (open_clip's
  weights converted), LLaVA's projector, and the Llama LLM with its embedding and
  head resized to the whole vocabulary (the new rows copied from Glyph's image
  vocabulary); peft LoRA on the LLM's linears;
- `generate()` with a LogitsProcessor that allows only code tokens while drawing
  (and only text tokens while writing);
- HF's own classifier-free guidance (`guidance_scale`, `negative_prompt_ids`), which
  runs the unconditional prompt as a second, unbatched forward at every step.
"""
from __future__ import annotations

import copy

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import Tensor
from transformers import LlavaForConditionalGeneration, LogitsProcessor

from assistant.hf_format import clip_vision_state, llava_config, projector_state

LLM_LINEARS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class AllowRange(LogitsProcessor):
    """Only ids in [start, end) may be sampled (plus `extra`); every other logit is −inf."""

    def __init__(self, start: int, end: int, extra: tuple[int, ...] = ()):
        self.start, self.end, self.extra = start, end, extra

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        allowed[self.start:self.end] = True
        allowed[list(self.extra)] = True
        return scores.masked_fill(~allowed, float("-inf"))


def llava_from(glyph) -> LlavaForConditionalGeneration:
    """A LlavaForConditionalGeneration holding exactly glyph's weights (and a LoRA adapter when glyph has one)."""
    if glyph.config.projector.kind != "mlp2x_gelu" or glyph.config.projector.merge != 1:
        raise ValueError("the reference is LLaVA: it needs the mlp2x_gelu projector without patch merging")
    vocab, llm = glyph.vocab, glyph.causal_lm
    text_config = copy.deepcopy(llm.config)
    text_config.vocab_size, text_config.tie_word_embeddings = vocab.size, False
    reference = LlavaForConditionalGeneration(llava_config(glyph, text_config)).eval()
    state = (clip_vision_state(glyph.vision_tower.encoder, "model.vision_tower.")
             | projector_state(glyph.projector, "model.multi_modal_projector.") | _llm_state(glyph))
    missing, unexpected = reference.load_state_dict(state, strict=False)
    left = [k for k in missing if not k.startswith("model.vision_tower.post_layernorm")]
    if left or unexpected:
        raise RuntimeError(f"weights did not map onto LLaVA: missing {left}, unexpected {unexpected}")
    reference.generation_config.pad_token_id = glyph.tokenizer.pad_token_id
    reference.generation_config.eos_token_id = glyph.tokenizer.eos_token_id
    reference.requires_grad_(False)
    if isinstance(glyph.language_model, PeftModel):
        reference = _with_lora(reference, glyph.language_model)
    return reference


@torch.no_grad()
def _llm_state(glyph) -> dict[str, Tensor]:
    """The LLM's weights, its embedding and head resized to the whole vocabulary with Glyph's new rows."""
    vocab, llm = glyph.vocab, glyph.causal_lm
    base = {k: v for k, v in llm.model.state_dict().items() if "lora_" not in k}
    state = {"model.language_model." + k.replace(".base_layer", ""): v.clone() for k, v in base.items()}
    embed = llm.get_input_embeddings().weight[:vocab.first_id]
    head = llm.get_output_embeddings().weight[:vocab.first_id]
    state["model.language_model.embed_tokens.weight"] = torch.cat([embed, vocab.input_rows().to(embed.dtype)])
    state["lm_head.weight"] = torch.cat([head, vocab.output.to(head.dtype)])
    return state


def _with_lora(reference: LlavaForConditionalGeneration, glyph_llm: PeftModel) -> PeftModel:
    lora = glyph_llm.peft_config["default"]
    wrapped = get_peft_model(reference, LoraConfig(r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                                                   target_modules=LLM_LINEARS, bias="none"))
    glyph_lora = {k.replace("base_model.model.model.", ""): v for k, v in glyph_llm.state_dict().items()
                  if "lora_" in k}
    state = {f"base_model.model.model.language_model.{k}": v.detach().clone() for k, v in glyph_lora.items()}
    missing, unexpected = wrapped.load_state_dict(state, strict=False)
    lora_missing = [k for k in missing if "lora_" in k]
    if lora_missing or unexpected:
        raise RuntimeError(f"LoRA did not map onto LLaVA: missing {lora_missing[:3]}, unexpected {unexpected[:3]}")
    return wrapped.eval()


# ---- generation the transformers way ---------------------------------------------------------------------

@torch.inference_mode()
def generate_text(reference, glyph, input_ids: Tensor, pixel_values: Tensor | None, max_new_tokens: int) -> Tensor:
    """Greedy text reply: (n,) new ids; code tokens, image slots, <boi> and <eoi> are never produced."""
    out = reference.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                             pixel_values=pixel_values, max_new_tokens=max_new_tokens, do_sample=False,
                             logits_processor=[AllowRange(0, glyph.vocab.first_id)])
    return out[0, input_ids.shape[1]:]


@torch.inference_mode()
def generate_codes(reference, glyph, input_ids: Tensor, unconditional_ids: Tensor | None, cfg_scale: float,
                   seed: int | None = None) -> Tensor:
    """One drawing: <boi> appended to the prompt, then exactly h·w code tokens → (h, w) codebook indices.

    Greedy when seed is None; otherwise sampled at temperature 1. With unconditional_ids, HF's own
    classifier-free guidance at cfg_scale."""
    vocab, tokens = glyph.vocab, glyph.layout.tokens_per_image
    boi = torch.tensor([[vocab.boi_id]], device=input_ids.device)
    ids = torch.cat([input_ids, boi], dim=1)
    guidance = {}
    if unconditional_ids is not None:
        negative = torch.cat([unconditional_ids, boi], dim=1)
        guidance = {"guidance_scale": cfg_scale, "negative_prompt_ids": negative,
                    "negative_prompt_attention_mask": torch.ones_like(negative)}
    if seed is not None:
        torch.manual_seed(seed)
    out = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                             min_new_tokens=tokens, do_sample=seed is not None, top_k=None, top_p=None,
                             temperature=1.0 if seed is not None else None,
                             logits_processor=[AllowRange(vocab.code_start, vocab.size)], **guidance)
    grid = glyph.vq.config.grid
    return vocab.codes_of(out[0, ids.shape[1]:]).view(grid, grid)


# ---- training the transformers way -----------------------------------------------------------------------

def set_trainable(reference, stage: int) -> list[torch.nn.Parameter]:
    """What LLaVA trains when it adds tokens: the projector, the whole input embedding and head (every row: a
    plain nn.Embedding cannot train only its new ones), and in stage 2 the LoRA adapters."""
    inner = reference.get_base_model() if isinstance(reference, PeftModel) else reference
    reference.requires_grad_(False)
    for name, parameter in reference.named_parameters():
        parameter.requires_grad_(stage == 2 and "lora_" in name)
    for module in (inner.model.multi_modal_projector, inner.get_input_embeddings(), inner.get_output_embeddings()):
        module.requires_grad_(True)
    return [p for p in reference.parameters() if p.requires_grad]
