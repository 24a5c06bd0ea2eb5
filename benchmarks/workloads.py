"""The measured work, once for Glyph and once for the reference, each a call that starts from the same inputs.

    pair = Pair.build(parts, config, tokens=64, lora=True)     # Glyph and the reference on the same weights
    pair.first_token("glyph")(); pair.reply("reference", 64)(); pair.draw("glyph", cfg_scale=4.0)()
    trainer = Trainer(pair, stage=2, side="glyph", lr=2e-4, batches=batches, dtype=torch.bfloat16); trainer.step(batch)

Inference starts from a rendered prompt's ids and a PIL image on both sides, so
that time to first token includes the vision tower. Drawing is sampled at
temperature 1 with a seed; text is greedy. Training steps run on batches of
8 chats × the config's train_length (256) tokens: an image's slots after a short prompt, supervised text
after it (all of it in stage 1, the second half in stage 2).

`Pair.build(..., device=torch.device("cuda"))` puts both sides on a GPU; the inputs of every call (ids, pixels,
training batches, cached vision features) are then made there too, outside the timed calls.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from assistant.chat import ChatSession, one_turn_prompts, user_message
from assistant.generation import Finished, ImageDone, Prompt, Sampling, generate
from assistant.model import GlyphModel
from assistant.pixels import to_pil
from assistant.prompt_reuse import forget
from assistant.templates import IGNORE_INDEX
from benchmarks.parts import PROMPT_TOKENS, BenchConfig, Parts, assistant
from benchmarks.reference import generate_codes, generate_text, llava_from, set_trainable

QUESTION = "What is in this picture? Describe every shape, its colour and where it is."
FOLLOW_UP = "Which of them is the biggest?"
EARLIER_REPLY = 32  # tokens of the reply to QUESTION that a follow-up comes after
REQUEST = "Draw a red circle above a small blue square."
SIDES = ("glyph", "reference")
BATCH, LENGTH = 8, BenchConfig.train_length  # LENGTH: a config's default tokens per training chat
DECODE_TOKENS = 64  # timed reply length after the first token
CPU = torch.device("cpu")


def picture(size: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


@dataclass
class Pair:
    glyph: GlyphModel
    reference: torch.nn.Module
    image: Image.Image
    device: torch.device = CPU

    @classmethod
    def build(cls, parts: Parts, config: BenchConfig, tokens: int, lora: bool = True, merged: bool = False,
              device: torch.device = CPU) -> Pair:
        """merged: LoRA folded into the weights on both sides, as a deployed model has it (LLaVA's own loader
        merges too); training keeps it apart. Both sides are built on the CPU, then moved to `device`."""
        glyph = assistant(parts, config, tokens, lora=lora)
        # Each timed reply repeats the same prompt: reusing the last one's keys and values would time a
        # cache lookup, not a first question (assistant/prompt_reuse.py; the follow-up row times that).
        glyph.reuse_prompt_prefix = False
        reference = llava_from(glyph)
        if merged:
            glyph.merge_lora()
            reference = reference.merge_and_unload()
        return cls(glyph.to(device), reference.to(device), picture(config.image_size), device)

    def to(self, dtype: torch.dtype) -> Pair:
        self.glyph.to(dtype)
        self.reference.to(dtype)
        return self

    # ---- inference ----

    def _question(self) -> tuple[Tensor, Tensor]:
        prompt, _ = one_turn_prompts(self.glyph, QUESTION, [self.image])
        return prompt.input_ids.to(self.device), self.glyph.vision_tower.preprocess(self.image)[None].to(self.device)

    def _on_device(self, prompt: Prompt | None) -> Prompt | None:
        return None if prompt is None else Prompt(prompt.input_ids.to(self.device), prompt.image_features)

    def reply(self, side: str, tokens: int) -> Callable[[], list[int]]:
        """Greedy text reply of `tokens` tokens to a question about the image (1 token: time to first token)."""
        ids, pixels = self._question()
        if side == "reference":
            return lambda: generate_text(self.reference, self.glyph, ids, pixels, tokens).tolist()
        settings = Sampling(temperature=0, max_new_tokens=tokens, max_images=0)

        def glyph() -> list[int]:
            prompt = Prompt(ids, self.glyph.image_features(pixels))
            return next(e for e in generate(self.glyph, prompt, settings) if isinstance(e, Finished)).token_ids
        return glyph

    def follow_up(self, side: str) -> Callable[[], list[int]]:
        """The first token of a follow-up question (greedy), after QUESTION about the image and the side's own
        EARLIER_REPLY-token reply to it. That first exchange is the call's `prepare` (untimed, before each timed
        call): on Glyph's side it leaves the keys and values that the follow-up's prompt starts with
        (assistant/prompt_reuse.py); the reference's generate() prefills the whole conversation again."""
        ids, pixels = self._question()
        state = {}

        def conversation(reply_ids: list[int]) -> Tensor:
            said = self.glyph.tokenizer.decode(reply_ids, skip_special_tokens=True)
            session = ChatSession(self.glyph)
            session.messages += [user_message(QUESTION, [self.image]),
                                 {"role": "assistant", "content": [{"type": "text", "text": said}]},
                                 user_message(FOLLOW_UP)]
            return session.next_prompts(1.0)[0].input_ids.to(self.device)

        if side == "reference":
            def prepare() -> None:
                state["ids"] = conversation(generate_text(self.reference, self.glyph, ids, pixels,
                                                          EARLIER_REPLY).tolist())

            def reference() -> list[int]:
                return generate_text(self.reference, self.glyph, state["ids"], pixels, 1).tolist()
            reference.prepare = prepare
            return reference

        def glyph_prepare() -> None:
            self.glyph.reuse_prompt_prefix = True  # on for this exchange and its follow-up alone
            forget(self.glyph)
            earlier = Sampling(temperature=0, max_new_tokens=EARLIER_REPLY, max_images=0)
            first = Prompt(ids, self.glyph.image_features(pixels))
            said = next(e for e in generate(self.glyph, first, earlier) if isinstance(e, Finished)).token_ids
            state["ids"] = conversation(said)

        def glyph() -> list[int]:
            settings = Sampling(temperature=0, max_new_tokens=1, max_images=0)
            try:  # the features are computed again, as in the first-token row (a chat would keep them)
                prompt = Prompt(state["ids"], self.glyph.image_features(pixels))
                return next(e for e in generate(self.glyph, prompt, settings) if isinstance(e, Finished)).token_ids
            finally:
                self.glyph.reuse_prompt_prefix = False
        glyph.prepare = glyph_prepare
        return glyph

    def draw(self, side: str, cfg_scale: float, seed: int | None = 0) -> Callable[[], Tensor]:
        """One drawing for a text request, as (h, w) codes; the VQ decoder turns it into pixels on both sides.
        seed None: greedy (for the fairness check)."""
        prompt, unconditional = map(self._on_device, one_turn_prompts(self.glyph, REQUEST, cfg_scale=cfg_scale))
        if side == "reference":
            def reference() -> Tensor:
                codes = generate_codes(self.reference, self.glyph, prompt.input_ids,
                                       None if unconditional is None else unconditional.input_ids, cfg_scale, seed)
                to_pil(self.glyph.vq.decode(codes[None]))
                return codes
            return reference
        settings = Sampling(temperature=0 if seed is None else 1.0, top_k=0, top_p=1.0, cfg_scale=cfg_scale,
                            seed=seed, max_new_tokens=1)

        def glyph() -> Tensor:
            events = generate(self.glyph, prompt, settings, draw=True, unconditional=unconditional)
            return next(e for e in events if isinstance(e, ImageDone)).codes
        return glyph


# ---- training ------------------------------------------------------------------------------------------------

def answer_start(slots: int, stage: int, length: int) -> int:
    """Where a training chat's supervised text starts: after the slots (stage 1), or halfway through the text
    after them (stage 2)."""
    return PROMPT_TOKENS + slots if stage == 1 else (PROMPT_TOKENS + slots + length) // 2


def supervised_tokens(slots: int, stage: int, length: int) -> int:
    """Labelled next-token targets in one batch of training_batches: the head's work in a step."""
    return BATCH * (length - answer_start(slots, stage, length))


def training_batches(glyph: GlyphModel, stage: int, count: int, seed: int = 0, length: int = LENGTH,
                     device: torch.device = CPU) -> list[dict]:
    """`count` batches of BATCH chats × `length` tokens: a 16-token prompt, the image's slots, then text. Made
    on the CPU (the same numbers on every device), then moved to `device`."""
    generator = torch.Generator().manual_seed(seed)
    slots, first = glyph.layout.slots_per_image, PROMPT_TOKENS
    batches = []
    for _ in range(count):
        ids = torch.randint(3, glyph.vocab.first_id, (BATCH, length), generator=generator)
        ids[:, first:first + slots] = glyph.vocab.image_id
        labels = ids.clone()
        labels[:, :answer_start(slots, stage, length)] = IGNORE_INDEX
        pixels = torch.stack([glyph.vision_tower.preprocess(picture(glyph.vision_tower.image_size))] * BATCH)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "pixel_values": pixels}
        batches.append({k: v.to(device) for k, v in batch.items()})
    return batches


class Trainer:
    """One side's optimizer steps as its trainer takes them: AdamW, gradient clipping, optional bf16 autocast
    (on the batches' device; under it Glyph's trainer keeps the frozen layers in bf16). On a CPU Glyph's side
    trains with training.attention's grouped-query attention, as glyph train does; the reference with SDPA.

    Glyph reads cached vision features (its trainer caches them per file: the tower is frozen); the reference
    runs the vision tower in every step, as LlavaForConditionalGeneration does."""

    def __init__(self, pair: Pair, stage: int, side: str, lr: float, batches: list[dict], dtype: torch.dtype):
        from training.assistant_stage import set_trainable as glyph_trainable
        from training.assistant_stage import store_frozen_layers_in
        from training.attention import use_grouped_attention

        self.side, self.model, self.dtype = side, pair.glyph if side == "glyph" else pair.reference, dtype
        if side == "glyph":
            glyph_trainable(pair.glyph, stage)
            if dtype == torch.bfloat16:  # as glyph train align / instruct do under bf16
                store_frozen_layers_in(pair.glyph, dtype)
            if batches[0]["input_ids"].device.type == "cpu":  # and, on a CPU, grouped-query attention
                use_grouped_attention(pair.glyph.causal_lm)
            self.parameters = [p for p in pair.glyph.parameters() if p.requires_grad]
            # The trainer caches them once per data file before training (training.chat_data); so does this.
            self.features = {id(b): pair.glyph.vision_tower(b["pixel_values"]) for b in batches}
        else:
            self.parameters = set_trainable(pair.reference, stage)
        self.optimizer = torch.optim.AdamW(self.parameters, lr=lr, fused=True)

    def step(self, batch: dict) -> float:
        self.model.train()
        device_type = batch["input_ids"].device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16):
            loss = self._loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _loss(self, batch: dict) -> Tensor:
        if self.side == "reference":
            return self.model(**batch).loss
        features = self.model.project(self.features[id(batch)])
        return self.model(batch["input_ids"], batch["attention_mask"], image_features=features,
                          labels=batch["labels"]).loss

    def trainable_bytes(self) -> int:
        """Weights, gradients and AdamW's two moments of what trains, in fp32."""
        return 16 * sum(p.numel() for p in self.parameters)
