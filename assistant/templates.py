"""Chat messages → (input_ids, labels): the one place where conversations become tokens.

    layout = ImageLayout.of(vocab, slots_per_image=tower.num_patches, tokens_per_image=vq.config.tokens_per_image)
    chat = render_chat(messages, tokenizer, layout)                        # for training
    prompt = render_chat(messages, tokenizer, layout, add_generation_prompt=True)   # for generation

Messages use Hugging Face's multimodal format:

    {"role": "user", "content": [{"type": "image", "image": <PIL image>}, {"type": "text", "text": "What is this?"}]}
    {"role": "assistant", "content": [{"type": "text", "text": "Here it is:"}, {"type": "image", "codes": [...]}]}

`content` may also be a plain string. An image in a user or system turn expands
to `slots_per_image` `<image>` ids, which the model fills with projected vision
features; with slot labels, each `<image>` id follows its label's text ids.
An image in an assistant turn is one the assistant drew: `<boi>`, its VQ
codes (`codes`: h·w codebook indices, row by row) and `<eoi>`; with drawing
labels (DrawingConfig.labels), each code follows its label's text ids.

The LLM's own chat template lays out the turns (SmolLM2 and Qwen2 have
ChatML); a tokenizer without one gets DEFAULT_CHAT_TEMPLATE. The template is
rendered once with a sentinel in place of each message's content; the text
between sentinels is the template's scaffolding, tokenised as such, and each
content part is tokenised on its own. The labels therefore come from token
positions, never from re-tokenising and subtracting lengths.

Supervised (labels = ids): the assistant's content (text, `<boi>`, codes,
`<eoi>`) and the end-of-turn token that closes each assistant turn (the
tokenizer's eos). Everything else is IGNORE_INDEX, drawing labels included:
generation writes them, the model never chooses them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

IGNORE_INDEX = -100  # the label of a token that is not trained on (PyTorch cross-entropy's ignore_index)
ROLES = ("system", "user", "assistant")

# For tokenizers that come without a chat template (GPT-2, a bare base model). Turns end in the eos token.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{%- endif %}"
)


class TemplateError(ValueError):
    """Messages that cannot be rendered; the message says which one and why."""


@dataclass(frozen=True)
class ImageLayout:
    """The ids and sizes that images turn into."""
    image_id: int  # one slot of an input image
    slots_per_image: int  # N: the vision tower's patch count
    boi_id: int
    eoi_id: int
    code_start: int  # id of codebook entry 0
    codebook_size: int
    tokens_per_image: int  # h·w codes in a drawn image
    slot_label_ids: tuple[tuple[int, ...], ...] = ()  # the ids written before each slot (ProjectorConfig.slot_labels)
    code_label_ids: tuple[tuple[int, ...], ...] = ()  # the ids written before each drawn code (DrawingConfig.labels)

    @classmethod
    def of(cls, vocab, slots_per_image: int, tokens_per_image: int, tokenizer=None,
           slot_labels: tuple[str, ...] = (), drawing_labels: tuple[str, ...] = ()) -> ImageLayout:
        if slot_labels and len(slot_labels) != slots_per_image:
            raise TemplateError(f"{len(slot_labels)} slot labels for {slots_per_image} image slots; give one per slot")
        if drawing_labels and len(drawing_labels) != tokens_per_image:
            raise TemplateError(f"{len(drawing_labels)} drawing labels for {tokens_per_image} codes in a drawing; "
                                "give one per code (the VQ grid's cells, row by row)")
        return cls(vocab.image_id, slots_per_image, vocab.boi_id, vocab.eoi_id, vocab.code_start,
                   vocab.codebook_size, tokens_per_image, _label_ids(tokenizer, slot_labels),
                   _label_ids(tokenizer, drawing_labels))

    @property
    def drawing_length(self) -> int:
        """The ids one drawing takes in a reply: <boi>, its codes with their labels, <eoi>."""
        return self.tokens_per_image + 2 + sum(map(len, self.code_label_ids))

    def image_ids(self) -> list[int]:
        """The ids one input image becomes: its slots, each after its label when there are labels."""
        if not self.slot_label_ids:
            return [self.image_id] * self.slots_per_image
        return [i for label in self.slot_label_ids for i in (*label, self.image_id)]

    def drawing_ids(self, code_ids: list[int]) -> tuple[list[int], list[bool]]:
        """The ids a drawing with these code token ids becomes, and which of them the model chose (and is
        trained on): <boi>, each code after its label when there are labels, <eoi>."""
        labels = self.code_label_ids or ((),) * len(code_ids)
        ids, chosen = [self.boi_id], [True]
        for label, code in zip(labels, code_ids, strict=True):
            ids += [*label, code]
            chosen += [False] * len(label) + [True]
        return ids + [self.eoi_id], chosen + [True]


def _label_ids(tokenizer, labels: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """Each label's ids: "top left: <x> top: <x> ...", a space before every label but the first, as in running
    text."""
    return tuple(tuple(_tokenize(tokenizer, f"{' ' if i else ''}{label}:", special=False))
                 for i, label in enumerate(labels))


@dataclass(frozen=True)
class RenderedChat:
    input_ids: Tensor  # (T,) int64
    labels: Tensor  # (T,) int64: the id where supervised, IGNORE_INDEX elsewhere
    images: list[Any]  # the input images in slot order, as given in the messages


def render_chat(messages: list[dict], tokenizer, layout: ImageLayout,
                add_generation_prompt: bool = False) -> RenderedChat:
    messages = [_check_message(i, m) for i, m in enumerate(messages)]
    scaffolds = _scaffolding(messages, tokenizer, add_generation_prompt)
    end_of_turn = _end_of_turn_id(tokenizer)
    ids: list[int] = []
    labels: list[int] = []
    images: list[Any] = []
    for index in range(len(messages) + 1):
        start = len(ids)
        _append(ids, labels, _tokenize(tokenizer, scaffolds[index], special=True), supervised=False)
        if index > 0 and messages[index - 1]["role"] == "assistant":
            _supervise_end_of_turn(ids, labels, start, end_of_turn, index - 1, scaffolds[index])
        if index < len(messages):
            assistant = messages[index]["role"] == "assistant"
            for part in messages[index]["content"]:
                part_ids, chosen = _part_ids(part, tokenizer, layout, assistant, index, images)
                ids.extend(part_ids)
                labels.extend(i if assistant and c else IGNORE_INDEX for i, c in zip(part_ids, chosen))
    return RenderedChat(torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long), images)


def _check_message(index: int, message: dict) -> dict:
    if not isinstance(message, dict) or message.get("role") not in ROLES or "content" not in message:
        raise TemplateError(f"message {index} must be a dict with 'role' ({', '.join(ROLES)}) and 'content'; "
                            f"got {message!r:.80}")
    content = message["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(p, dict) and p.get("type") in ("text", "image")
                                                 for p in content):
        raise TemplateError(f"message {index}: content must be a string or a list of "
                            "{'type': 'text' | 'image', ...} parts")
    return {"role": message["role"], "content": content}


def _sentinel(index: int) -> str:
    return f"\x1e{index}\x1e"  # an ASCII record separator: no tokenizer or template touches it


def _scaffolding(messages: list[dict], tokenizer, add_generation_prompt: bool) -> list[str]:
    """The template's text around the messages: len(messages) + 1 pieces (before, between, after)."""
    stand_ins = [{"role": m["role"], "content": _sentinel(i)} for i, m in enumerate(messages)]
    template = None if tokenizer.chat_template else DEFAULT_CHAT_TEMPLATE
    text = tokenizer.apply_chat_template(stand_ins, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)
    pieces = []
    for index in range(len(messages)):
        before, found, text = text.partition(_sentinel(index))
        if not found or _sentinel(index) in text:
            raise TemplateError(f"the chat template of {tokenizer.name_or_path} does not show message {index}'s "
                                "content exactly once (it may drop system messages or rewrite content); "
                                "use a tokenizer whose template keeps every message")
        pieces.append(before)
    return pieces + [text]


def _end_of_turn_id(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise TemplateError(f"tokenizer {tokenizer.name_or_path} has no eos token to end a turn with; set one")
    return tokenizer.eos_token_id


def _tokenize(tokenizer, text: str, special: bool) -> list[int]:
    """Template text may hold special tokens (<|im_start|>); message text never may: a user typing
    '<|im_end|>' or '<image>' gets those characters, not the control token."""
    if not text:
        return []
    return tokenizer(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"]


def _part_ids(part: dict, tokenizer, layout: ImageLayout, assistant: bool, index: int,
              images: list) -> tuple[list[int], list[bool]]:
    """A content part's ids, and for each whether the speaker chose it (else the layout wrote it)."""
    if part["type"] == "text":
        if not isinstance(part.get("text"), str):
            raise TemplateError(f"message {index}: a text part needs a 'text' string")
        ids = _tokenize(tokenizer, part["text"], special=False)
        return ids, [True] * len(ids)
    if assistant:
        return layout.drawing_ids([layout.code_start + c for c in _codes(part, layout, index)])
    images.append(part.get("image"))
    ids = layout.image_ids()
    return ids, [True] * len(ids)


def _codes(part: dict, layout: ImageLayout, index: int) -> list[int]:
    codes = part.get("codes")
    if codes is None:
        raise TemplateError(f"message {index}: an assistant image needs 'codes', its VQ codebook indices "
                            "(encode the picture with the VQ model first)")
    codes = [int(c) for c in (codes.flatten().tolist() if isinstance(codes, Tensor) else codes)]
    if len(codes) != layout.tokens_per_image or not all(0 <= c < layout.codebook_size for c in codes):
        raise TemplateError(f"message {index}: an assistant image needs {layout.tokens_per_image} codes in "
                            f"[0, {layout.codebook_size}); got {len(codes)} codes")
    return codes


def _append(ids: list[int], labels: list[int], new: list[int], supervised: bool) -> None:
    ids.extend(new)
    labels.extend(new if supervised else [IGNORE_INDEX] * len(new))


def _supervise_end_of_turn(ids: list[int], labels: list[int], start: int, end_of_turn: int, index: int,
                           scaffold: str) -> None:
    """Supervise the scaffolding after an assistant turn, from `start` up to and including its end-of-turn token."""
    for position in range(start, len(ids)):
        labels[position] = ids[position]
        if ids[position] == end_of_turn:
            return
    raise TemplateError(f"the chat template does not end assistant message {index} with the eos token "
                        f"(id {end_of_turn}); the text after it is {scaffold!r}")
