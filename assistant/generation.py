"""Generation that sees and draws, shared by the terminal chat, the UI and the HTTP server.

    prompt, unconditional = one_turn_prompts(model, "draw a red circle", cfg_scale=3.0)  # from assistant.chat
    for event in generate(model, prompt, Sampling(temperature=0.7, seed=1), unconditional=unconditional):
        if isinstance(event, TextDelta): print(event.text, end="")
        elif isinstance(event, ImageDone): event.image.save("drawn.png")
        elif isinstance(event, Finished): print(event.reason)

Text mode samples the LLM's own tokens (and `<boi>`); code tokens are never
sampled there. When the model samples `<boi>`, or the caller asks to draw,
generation switches to image mode: only code tokens may be sampled, for
exactly h·w steps (each after its drawing label, when the assistant has
them, which generation writes itself), then `<eoi>` is fed and text mode
resumes. An image once
begun always completes; `max_new_tokens` counts text tokens.

An assistant trained to say what it draws first (DrawingConfig.describe: "Here is a large red circle in the
top left corner." then the image) is let write that sentence when a drawing is asked for outright: with
draw=True the reply starts in text mode and the end of the sentence opens the image; `draw_all` first has
each row describe its drawing (`ImageDone.said`), then draws it.

Classifier-free guidance (image mode only), when the caller passes an
unconditional prompt (the same chat with the last request left out) and
`is_guided(cfg_scale)`: the two prompts run as two rows of ONE batch, and the
code logits are `c + (scale − 1)(c − u)`. A KV cache is kept throughout.
The whole reply must fit the LLM's context: a prompt that does not is refused,
and generation stops ("length") before the context is full.

A turn in a chat with no picture in it (no image slot, no drawing) whose adapter would reply with nothing, the
end of turn at once, is handed to the LLM alone (`hands_over`, GlyphModel.llm_alone): an assistant trained so
(data_gen.hand_over) leaves everyday requests to its LLM, whose replies are then its own, token for token.
The decision is greedy whatever the sampling settings; the LLM alone then samples as asked, and never draws.

`reply_all` and `draw_all` answer or draw for many prompts at once, as the rows
of one batch (the evaluation's way: one row at a time leaves most of a CPU's
matmul speed unused).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor
from transformers import DynamicCache

from assistant.pixels import to_pil
from assistant.prompt_reuse import remember, restore

FLOAT32_MAX = torch.finfo(torch.float32).max
# A drawing's description (DrawingConfig.describe) is one sentence, about 40 tokens for five objects; one that
# runs longer is cut there, and the drawing asked for starts anyway.
DESCRIPTION_TOKENS = 96


class ContextLengthError(ValueError):
    """A prompt (and the room its reply needs) that does not fit the LLM's context."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    max_new_tokens: int = 256  # text tokens; images always complete
    cfg_scale: float = 3.0  # guidance for image tokens; 1 = none
    seed: int | None = None
    stop: tuple[str, ...] = ()  # stop when the text ends with one of these (it is not returned)
    max_images: int = 4  # after this many images in one reply, <boi> is no longer sampled

    def validate(self) -> Sampling:
        problems = [f"{name} {value} {rule}" for name, value, ok, rule in [
            ("temperature", self.temperature, 0 <= self.temperature < math.inf, "must be a finite number ≥ 0"),
            ("top_k", self.top_k, self.top_k >= 0, "must be ≥ 0"),
            ("top_p", self.top_p, 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("max_new_tokens", self.max_new_tokens, self.max_new_tokens >= 1, "must be ≥ 1"),
            ("cfg_scale", self.cfg_scale, 0 <= self.cfg_scale < math.inf, "must be a finite number ≥ 0")] if not ok]
        if problems:
            raise ValueError("bad sampling settings: " + "; ".join(problems))
        return self


DEFAULT_SAMPLING = Sampling()


def is_guided(cfg_scale: float) -> bool:
    """Whether drawings at this scale use classifier-free guidance: the one place that decides it. At scale 1 the
    guided logits c + (1 − 1)(c − u) are exactly c, so the unconditional prompt is neither built nor run."""
    return cfg_scale != 1


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ImageDone:
    image: Image.Image
    codes: Tensor  # (h, w) VQ codebook indices
    said: str = ""  # draw_all: what the assistant said it would draw, just before (DrawingConfig.describe)


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" (end of turn or a stop string) or "length"
    text: str  # all text of the reply
    token_ids: list[int]  # every generated token id, text and image (without the final end-of-turn)
    prompt_tokens: int = 0  # the prompt's length in tokens, image slots included (the API's usage)


@dataclass(frozen=True)
class Prompt:
    """Token ids (1, T) and the projected features of its image slots (n, N, H) or None."""
    input_ids: Tensor
    image_features: Tensor | None = None


class _Rows:
    """A KV-cached pass of the LLM over one or more left-padded rows; `room`: the positions expected past the
    prompt (the lean decoder reserves them, and grows its cache if more come)."""

    def __init__(self, model, prompts: list[Prompt], room: int):
        self.model = model
        device = model.causal_lm.get_input_embeddings().weight.device  # every tensor of the pass lives there
        width = max(p.input_ids.shape[1] for p in prompts)
        ids = torch.stack([torch.cat([p.input_ids[0].new_zeros(width - p.input_ids.shape[1]), p.input_ids[0]])
                           for p in prompts]).to(device)  # (B, L), left-padded with id 0 (masked out)
        self.mask = torch.stack([torch.arange(width, device=device) >= width - p.input_ids.shape[1]
                                 for p in prompts]).long()
        features = [p.image_features for p in prompts if p.image_features is not None]
        embeds = model.embed(ids, torch.cat(features) if features else None)
        # The lean decoder when the LLM's architecture has one (assistant/decoder.py), else transformers' forward.
        self.decoder = model.decoder(len(prompts), capacity=min(width + room, model.context_length))
        self.cache = DynamicCache() if self.decoder is None else None
        # A one-row pass starts from the positions it shares with the last one (a chat's earlier turns).
        self.reused = restore(model, self.decoder, embeds) if self.decoder is not None else 0
        self._run(embeds[:, self.reused:], self.mask[:, self.reused:], (self.mask.cumsum(-1) - 1).clamp(min=0))
        self.kept = remember(model, self.decoder, embeds) if self.decoder is not None else None

    def _run(self, embeds: Tensor, new_mask: Tensor, positions: Tensor) -> None:
        if self.decoder is not None:
            hidden = self.decoder(embeds, new_mask.bool())
        else:
            hidden, self.cache = self.model.backbone(embeds, self.mask, positions, self.cache, use_cache=True)
        self.last = hidden[:, -1]  # (B, H): predicts the next token of each row

    def feed(self, ids: Tensor, live: Tensor | None = None) -> None:
        """Append one token to every row: ids (B,). Rows where `live` (B,) is False are done: their token is
        masked out, so their positions stop growing."""
        ids = ids.to(self.mask.device)
        column = live.to(self.mask.device).long()[:, None] if live is not None else self.mask.new_ones(len(ids), 1)
        self.mask = torch.cat([self.mask, column], dim=1)
        vocab = self.model.vocab
        if bool((ids >= vocab.first_id).all()):  # drawing: every row is fed a code (or <boi>, <eoi>)
            embeds = vocab.rows_of(ids)[:, None].to(self.last.dtype)
        else:
            embeds = vocab.embed(ids[:, None], self.model.causal_lm.get_input_embeddings())
        self._run(embeds, column, self.mask.sum(-1, keepdim=True) - 1)
        if self.kept is not None:
            self.kept.fed(embeds)

    def feed_text(self, ids: tuple[int, ...]) -> None:
        """Append the same text ids (a drawing label) to every row, in one pass."""
        block = torch.tensor(ids, device=self.mask.device).expand(len(self.mask), -1)  # (B, n)
        new_mask = self.mask.new_ones(block.shape)
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        embeds = self.model.vocab.embed(block, self.model.causal_lm.get_input_embeddings()).to(self.last.dtype)
        positions = self.mask.sum(-1, keepdim=True) - len(ids) + torch.arange(len(ids), device=self.mask.device)
        self._run(embeds, new_mask, positions)
        if self.kept is not None:
            self.kept.fed(embeds)

    def text_logits(self) -> Tensor:
        """(B, first_id + 1) logits of the next token over the LLM's own tokens, then <boi>."""
        vocab, head = self.model.vocab, self.model.causal_lm.get_output_embeddings()
        bias = None if head.bias is None else head.bias[:vocab.first_id]
        original = self._project(head.weight[:vocab.first_id], bias, name="text head")
        return torch.cat([original, self._project(vocab.output[1:2], None)], dim=-1)

    def code_logits(self) -> Tensor:
        """(B, K) logits over the code tokens alone: all that image mode needs."""
        return self._project(self.model.vocab.code_rows(), None)

    def _project(self, weight: Tensor, bias: Tensor | None, name: str | None = None) -> Tensor:
        weight = weight.to(self.last.dtype)
        if self.decoder is not None:
            return self.decoder.project(self.last, weight, bias, name)
        return torch.nn.functional.linear(self.last, weight, bias)

    def keep_first(self) -> None:
        """Drop every row but the first (the conditional one) from the cache."""
        if self.decoder is not None:
            self.decoder.keep_first(1)
        else:
            self.cache.batch_select_indices(torch.tensor([0], device=self.mask.device))
        self.mask, self.last = self.mask[:1], self.last[:1]


def sample(logits: Tensor, settings: Sampling, generator: torch.Generator | None) -> Tensor:
    """(B, V) logits → (B,) ids, with temperature, top-k and top-p (nucleus) filtering."""
    if settings.temperature == 0 or 1 / settings.temperature > FLOAT32_MAX:
        return logits.argmax(-1)  # a temperature too small for float32 (1e-300 rounds to 0 there) is greedy
    # The top logit shifted to 0 first: a tiny temperature then gives 0 and -inf (greedy), never inf - inf.
    logits = logits.float()
    logits = (logits - logits.max(-1, keepdim=True).values) / settings.temperature
    if settings.top_k:
        kth = logits.topk(min(settings.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)  # probability mass ahead of each token
        ordered = ordered.masked_fill(before >= settings.top_p, float("-inf"))  # the top token always stays
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
    probabilities = logits.softmax(-1)
    if generator is not None and generator.device != probabilities.device:  # a seed's draws are the CPU's
        return torch.multinomial(probabilities.cpu(), 1, generator=generator)[:, 0].to(probabilities.device)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0]


@torch.inference_mode()
def generate(model, prompt: Prompt, settings: Sampling = DEFAULT_SAMPLING, *, draw: bool = False,
             unconditional: Prompt | None = None) -> Iterator[TextDelta | ImageDone | Finished]:
    """Stream a reply to `prompt` (rendered with add_generation_prompt). draw=True makes it a drawing:
    it starts with an image, or with the description of one (DrawingConfig.describe), which the model may
    instead use to decline the request in words (it then ends its turn, and no image follows).

    `unconditional` is the prompt for classifier-free guidance; without it, or at scale 1, there is none.
    """
    settings.validate()
    unconditional = unconditional if is_guided(settings.cfg_scale) else None
    context = model.context_length
    if prompt.input_ids.shape[1] >= context:
        raise ContextLengthError(f"the prompt is {prompt.input_ids.shape[1]} tokens but the model's context holds "
                                 f"{context}; shorten the conversation or start a new one")
    if not draw and hands_over(model, prompt):
        yield from generate(model.llm_alone(), prompt, dataclasses.replace(settings, max_images=0))
        return
    generator = torch.Generator().manual_seed(settings.seed) if settings.seed is not None else None
    vocab, tokenizer = model.vocab, model.tokenizer
    describe_first = draw and model.config.drawing.describe  # the drawing asked for opens with its description
    room_needed = settings.max_new_tokens + 1 + (model.layout.drawing_length if draw else 0)
    rows = None  # prefilled when first needed: a guided drawing prefills two rows of its own (_draw)
    reply: list[int] = []  # every token of the reply so far, text and image
    text_ids: list[int] = []  # the text tokens alone, to decode
    shown, images = "", 0
    while True:
        room = context - prompt.input_ids.shape[1] - len(reply)  # positions left for the reply
        if room < 2:
            yield Finished("length", shown, reply, prompt.input_ids.shape[1])
            return
        may_draw = images < settings.max_images and room > model.layout.drawing_length
        if draw and not reply and may_draw and not describe_first:
            token = vocab.boi_id
        elif describe_first and not images and may_draw and len(text_ids) >= DESCRIPTION_TOKENS:
            token = vocab.boi_id  # the description ran on: cut it, as draw_all does, and draw
        else:
            rows = rows or _Rows(model, [prompt], room=room_needed)
            # An assistant that describes first and then ends its turn without opening an image has declined
            # in words ("Sorry, I can't draw a horse."): no picture is forced after that.
            token = _next_text_token(model, rows, settings, generator, may_draw)
        if token == tokenizer.eos_token_id:
            yield Finished("stop", shown, reply, prompt.input_ids.shape[1])
            return
        if token == vocab.boi_id:
            images += 1
            so_far = Prompt(torch.cat([prompt.input_ids, prompt.input_ids.new_tensor([reply])], dim=1),
                            prompt.image_features)
            if unconditional is not None:
                rows = None  # _draw prefills two new rows: let this cache go first
            else:
                rows = rows or _Rows(model, [prompt], room=room_needed)
            rows, done = _draw(model, rows, so_far, unconditional, settings, generator)
            reply += model.layout.drawing_ids(vocab.code_ids(done.codes.flatten()).tolist())[0]
            yield done
            continue
        reply.append(token)
        text_ids.append(token)
        text = tokenizer.decode(text_ids, skip_special_tokens=True)
        stop = next((s for s in settings.stop if s in text), None)
        if stop is not None:
            text = text[:text.index(stop)]
        if not text.endswith("\ufffd"):  # hold back a character whose UTF-8 bytes are not all out yet
            if text[len(shown):]:
                yield TextDelta(text[len(shown):])
            shown = text
        if stop is not None or len(text_ids) >= settings.max_new_tokens:
            yield Finished("stop" if stop is not None else "length", shown, reply, prompt.input_ids.shape[1])
            return
        rows.feed(torch.tensor([token]))


def hands_over(model, prompt: Prompt) -> bool:
    """Does the adapter leave this turn to the LLM alone? Only in a text-only chat (no image slot, no drawing),
    and only when its greedy reply is empty: the end of turn at once. One prefill, which generation by the
    adapter then reuses (assistant/prompt_reuse.py)."""
    if not model.adapted or not _text_only(model, prompt):
        return False
    return bool(_empty_replies(model, _Rows(model, [prompt], room=1).text_logits())[0])


def _text_only(model, prompt: Prompt) -> bool:
    return prompt.image_features is None and not bool((prompt.input_ids >= model.vocab.first_id).any())


def _empty_replies(model, logits: Tensor) -> Tensor:
    """(B,) whether each row's greedy next token, over its text logits (B, first_id + 1), is the end of turn."""
    return logits.argmax(-1) == model.tokenizer.eos_token_id


def _next_text_token(model, rows: _Rows, settings: Sampling, generator, may_draw: bool) -> int:
    """Text mode: the LLM's own tokens, and <boi>; never an image slot, a code or <eoi>."""
    logits = rows.text_logits()  # (1, first_id + 1): index first_id is <boi>
    if not may_draw:
        logits[:, -1] = float("-inf")
    token = int(sample(logits, settings, generator))
    return model.vocab.boi_id if token == model.vocab.first_id else token


def _draw(model, rows: _Rows | None, so_far: Prompt, unconditional: Prompt | None, settings: Sampling,
          generator: torch.Generator | None) -> tuple[_Rows, ImageDone]:
    """Feed <boi>, sample exactly h·w codes (with CFG when asked), feed <eoi>; return the text-mode rows."""
    guided = unconditional is not None
    if guided:
        # Both rows in one batch. The conditional row is re-run from its ids so that the two rows share
        # one cache: one prefill per image, against h·w guided steps.
        room = model.layout.drawing_length + settings.max_new_tokens
        rows = _Rows(model, [so_far, unconditional], room=room)
    codes = _sample_codes(model, rows, guided, settings, [generator])[0]
    if guided:
        rows.keep_first()
    return rows, ImageDone(to_pil(model.vq.decode(codes[None]))[0], codes)


def _sample_codes(model, rows: _Rows, guided: bool, settings: Sampling,
                  generators: list[torch.Generator | None]) -> Tensor:
    """Feed <boi> to every row, sample h·w codes for each drawing (each after its label, when the layout has
    drawing labels), feed <eoi>: (D, h, w) for D generators.

    `rows` holds the D drawings' rows, followed, when guided, by their D unconditional rows. Each drawing
    samples with its own generator, so a seeded drawing comes out the same alone or in a batch."""
    vocab, count, layout = model.vocab, len(generators), model.layout
    rows.feed(torch.full((len(rows.mask),), vocab.boi_id))
    codes = []
    for cell in range(layout.tokens_per_image):
        if layout.code_label_ids:
            rows.feed_text(layout.code_label_ids[cell])
        logits = rows.code_logits()  # (B, K): image mode computes only the code rows
        if guided:
            logits = logits[:count] + (settings.cfg_scale - 1) * (logits[:count] - logits[count:])
        code = torch.cat([sample(logits[i:i + 1], settings, g) for i, g in enumerate(generators)])  # (D,)
        codes.append(code)
        rows.feed(vocab.code_ids(code).repeat(len(rows.mask) // count))
    rows.feed(torch.full((len(rows.mask),), vocab.eoi_id))
    grid = model.vq.config.grid
    return torch.stack(codes, dim=1).view(count, grid, grid)


# ---- many requests at once (evaluation, batch serving) ----------------------------------------------------

@torch.inference_mode()
def reply_all(model, prompts: list[Prompt], settings: Sampling = DEFAULT_SAMPLING) -> list[Finished]:
    """Text replies to many prompts at once, as the rows of one KV-cached batch.

    Text only: no image is drawn and stop strings are not applied. Each row ends at its end of turn, after
    max_new_tokens, or when its context is full. Greedy replies are the tokens generate() gives one at a time
    (up to float rounding); sampled ones draw from one generator for the whole batch."""
    settings.validate()
    _check_fits(model, prompts)
    generator = torch.Generator().manual_seed(settings.seed) if settings.seed is not None else None
    eos = model.tokenizer.eos_token_id
    rows = _Rows(model, prompts, room=settings.max_new_tokens + 1)
    room = [model.context_length - p.input_ids.shape[1] for p in prompts]
    replies: list[list[int]] = [[] for _ in prompts]
    reasons = ["length"] * len(prompts)
    live = torch.tensor([r >= 2 for r in room])
    logits = rows.text_logits()
    handed = [i for i, empty in enumerate(_empty_replies(model, logits).tolist())  # to the LLM alone (hands_over)
              if empty and model.adapted and _text_only(model, prompts[i])]
    live[handed] = False
    while live.any():
        tokens = sample(logits[:, :-1], settings, generator)  # the LLM's own tokens only, never <boi> or a code
        for i in live.nonzero()[:, 0].tolist():
            token = int(tokens[i])
            if token == eos:
                live[i], reasons[i] = False, "stop"
                continue
            replies[i].append(token)
            if len(replies[i]) >= settings.max_new_tokens or room[i] - len(replies[i]) < 2:
                live[i] = False
        if live.any():
            rows.feed(tokens, live)
            logits = rows.text_logits()
    finished = [Finished(reason, model.tokenizer.decode(ids, skip_special_tokens=True), ids, p.input_ids.shape[1])
                for reason, ids, p in zip(reasons, replies, prompts)]
    if handed:
        alone = reply_all(model.llm_alone(), [prompts[i] for i in handed], settings)
        for i, reply in zip(handed, alone):
            finished[i] = reply
    return finished


@torch.inference_mode()
def draw_all(model, prompts: list[Prompt], unconditionals: list[Prompt] | None, settings: Sampling,
             seeds: list[int | None]) -> list[ImageDone]:
    """One drawing per prompt, all in one KV-cached batch; guided when `unconditionals` are given (and the scale
    is_guided).

    Drawing i samples with seed seeds[i], so it is the image generate(..., draw=True) draws for that prompt
    with Sampling(seed=seeds[i]) (up to float rounding). At scale 1 the unconditional prompts are not run."""
    settings.validate()
    if len(seeds) != len(prompts) or (unconditionals is not None and len(unconditionals) != len(prompts)):
        raise ValueError(f"{len(prompts)} prompts need as many seeds (got {len(seeds)}) and unconditional "
                         f"prompts (got {len(unconditionals or [])})")
    unconditionals = unconditionals if is_guided(settings.cfg_scale) else None
    describe = model.config.drawing.describe
    _check_fits(model, prompts + (unconditionals or []),
                extra=model.layout.drawing_length + (DESCRIPTION_TOKENS if describe else 0))
    generators = [torch.Generator().manual_seed(s) if s is not None else None for s in seeds]
    said = _describe(model, prompts, settings, generators)[0] if describe else [[] for _ in prompts]
    prompts = [_followed_by(p, ids) for p, ids in zip(prompts, said)]
    rows = _Rows(model, prompts + (unconditionals or []), room=model.layout.drawing_length)
    codes = _sample_codes(model, rows, unconditionals is not None, settings, generators)
    return [ImageDone(image, grid, model.tokenizer.decode(ids, skip_special_tokens=True).strip())
            for image, grid, ids in zip(to_pil(model.vq.decode(codes)), codes, said)]


@torch.inference_mode()
def _describe(model, prompts: list[Prompt], settings: Sampling,
              generators: list[torch.Generator | None]) -> tuple[list[list[int]], list[bool]]:
    """What each prompt's reply says before its drawing: text tokens until the model opens an image (<boi>) or
    ends its turn, at most DESCRIPTION_TOKENS; and whether it opened an image. Row i samples with generators[i]
    and only while it is live, so its tokens are the ones generate() would sample with that generator."""
    eos, boi_column = model.tokenizer.eos_token_id, model.vocab.first_id  # text_logits' last column is <boi>
    rows = _Rows(model, prompts, room=DESCRIPTION_TOKENS)
    said: list[list[int]] = [[] for _ in prompts]
    opened = [False] * len(prompts)
    live = torch.ones(len(prompts), dtype=torch.bool)
    for _ in range(DESCRIPTION_TOKENS):
        logits = rows.text_logits()  # (B, first_id + 1)
        tokens = torch.full((len(prompts),), eos)
        for i in live.nonzero()[:, 0].tolist():
            token = int(sample(logits[i:i + 1], settings, generators[i]))
            if token in (eos, boi_column):
                live[i], opened[i] = False, token == boi_column
            else:
                said[i].append(token)
                tokens[i] = token
        if not live.any():
            break
        rows.feed(tokens, live)
    return said, opened


def _followed_by(prompt: Prompt, ids: list[int]) -> Prompt:
    """`prompt` with text ids appended (the reply so far)."""
    if not ids:
        return prompt
    return Prompt(torch.cat([prompt.input_ids, prompt.input_ids.new_tensor([ids])], dim=1), prompt.image_features)


def _check_fits(model, prompts: list[Prompt], extra: int = 0) -> None:
    for number, prompt in enumerate(prompts):
        if prompt.input_ids.shape[1] + extra >= model.context_length:
            raise ContextLengthError(f"prompt {number} is {prompt.input_ids.shape[1]} tokens and needs {extra} more, "
                                     f"but the model's context holds {model.context_length}; shorten it")


@torch.inference_mode()
def first_token_logits(model, prompts: list[Prompt]) -> Tensor:
    """(B, first_id + 1) logits of each prompt's first reply token over the LLM's own tokens, then <boi>: what
    the model would open its reply with, free to start a drawing."""
    _check_fits(model, prompts, extra=1)
    return _Rows(model, prompts, room=1).text_logits()


def would_draw(model, prompts: list[Prompt]) -> list[bool]:
    """For each prompt: would the model, free to say anything, open its reply with a drawing (greedy <boi>)?
    A request the model cannot draw (outside what it knows) is answered in words instead. An assistant that
    describes its drawings first (DrawingConfig.describe) would draw when its greedy reply opens an image after
    that description."""
    if model.config.drawing.describe:
        _check_fits(model, prompts, extra=DESCRIPTION_TOKENS)
        return _describe(model, prompts, Sampling(temperature=0), [None] * len(prompts))[1]
    logits = first_token_logits(model, prompts)  # (B, first_id + 1); <boi> is the last column
    return (logits.argmax(-1) == logits.shape[-1] - 1).tolist()
