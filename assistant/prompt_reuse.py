"""Reuse of a generation's key/value cache by the next one whose prompt starts the same way.

    reused = restore(model, decoder, embeds)     # positions copied from the last pass (0: none); run the rest
    kept = remember(model, decoder, embeds)      # after a single-row prefill; kept.fed(more) for each later feed

Why: every turn of a chat renders the whole conversation again, so the next prompt repeats the last one and
its reply before the new question; without reuse its time to the first token grows with the conversation
(a follow-up after a described scene re-reads 100-200 positions). A server's client sends the conversation
back on every request, so the same holds there. Serving engines do the same (llama.cpp's prompt cache, vLLM's
prefix caching).

What is compared is the prompt's input embeddings themselves, position by position, not its token ids: an
image slot has the same id for every image, but its embedding is that image's features, so a new picture
ends the shared part exactly where it starts. The keys and values of a position depend only on the
embeddings up to it and on the LLM's weights, so a fingerprint of the weights (each parameter's storage and
version counter, which every in-place update bumps) guards against a model that trained in between.

Only single-row passes of the lean decoder (assistant/decoder.py) take part: a text reply or an unguided
drawing, as a chat makes them. Batches (evaluation, guided drawing) neither keep nor reuse anything. The
reused values are those of an earlier pass, so they may differ from a fresh prefill's by float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from assistant.decoder import Decoder

MIN_REUSE = 4  # shorter shared starts are not worth the copy (a prompt always shares its first few tokens)


@dataclass
class Kept:
    """The last single-row pass: its decoder (whose cache keeps growing as it decodes) and what it was fed."""
    decoder: Decoder
    weights: tuple
    embeds: list[Tensor] = field(default_factory=list)  # (1, T_i, H) pieces, in the order they were fed

    def fed(self, embeds: Tensor) -> None:
        self.embeds.append(embeds.detach())


def remember(model, decoder: Decoder, embeds: Tensor) -> Kept | None:
    """Keep this single-row pass for the next generation to reuse; None (and nothing kept) otherwise."""
    if not getattr(model, "reuse_prompt_prefix", False) or embeds.shape[0] != 1:
        return None
    kept = Kept(decoder, weights_fingerprint(model))
    kept.fed(embeds)
    model.__dict__["_glyph_kept_pass"] = kept  # not a module or buffer: never saved, never moved
    return kept


def restore(model, decoder: Decoder, embeds: Tensor) -> int:
    """Copy into `decoder` the keys and values of the longest start of `embeds` (1, T, H) that the last kept
    pass was fed, leaving at least the last position to run; returns how many positions were copied."""
    kept = model.__dict__.get("_glyph_kept_pass")
    if kept is None or not getattr(model, "reuse_prompt_prefix", False) or embeds.shape[0] != 1 \
            or not _compatible(kept, decoder, model):
        return 0
    before = torch.cat(kept.embeds, dim=1)[0]  # (S, H)
    if before.shape[0] > kept.decoder.length:  # a pass stopped between feeding and running: not trusted
        return 0
    span = min(before.shape[0], embeds.shape[1] - 1)
    same = (before[:span] == embeds[0, :span].to(before.dtype)).all(dim=-1)
    shared = int(same.long().cumprod(dim=0).sum()) if span > 0 else 0
    if shared < MIN_REUSE:
        return 0
    decoder.adopt(kept.decoder, shared)
    return shared


def forget(model) -> None:
    """Drop the kept pass: the next generation prefills its whole prompt (what a first question costs)."""
    model.__dict__.pop("_glyph_kept_pass", None)


def weights_fingerprint(model) -> tuple:
    """Each LLM parameter's storage and version: any change to a weight (a training step, a cast, a LoRA
    merge, a load) changes it."""
    return tuple((p.data_ptr(), p._version, p.dtype) for p in model.causal_lm.parameters())


def _compatible(kept: Kept, decoder: Decoder, model) -> bool:
    other = kept.decoder
    return (other.keys.dtype == decoder.keys.dtype and other.int8 == decoder.int8
            and other.keys.device == decoder.keys.device and other.keys.shape[0] == decoder.keys.shape[0]
            and bool(other.key_mask[:1].all()) and kept.weights == weights_fingerprint(model))
