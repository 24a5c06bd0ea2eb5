"""A multi-turn conversation with the assistant: what the terminal chat, the UI and the server all drive.

    session = ChatSession(model)
    for event in session.send("What is in this picture?", images=["scene.png"]):
        ...                                                   # TextDelta / ImageDone / Finished
    for event in session.send("Now draw it with a blue circle", draw=True):
        ...
    session.undo(); session.reset()
    session = ChatSession.from_messages(model, earlier_messages)   # continue a conversation a client sent back

Images may come in any user turn, several per turn. The assistant's drawn
images stay in the history as their VQ codes, so later turns see them. Vision
features are computed once per distinct image and reused in every later turn.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

import torch
from PIL import Image
from torch import Tensor

from assistant.generation import DEFAULT_SAMPLING, Finished, ImageDone, Prompt, Sampling, TextDelta, generate, is_guided
from assistant.images import load_image
from assistant.pixels import to_tensor
from assistant.templates import render_chat


class ChatSession:
    def __init__(self, model, system_prompt: str | None = None):
        self.model = model
        self.system_prompt = system_prompt
        self.messages: list[dict] = []  # Hugging Face multimodal messages; user images are RGB PIL images
        self._features: dict[str, Tensor] = {}  # image fingerprint → (N, D) vision features (the tower is frozen)

    @classmethod
    def from_messages(cls, model, messages: list[dict], system_prompt: str | None = None) -> ChatSession:
        """A session that continues an earlier conversation, as the UI and the server get it back from a client.

        `messages` are Hugging Face messages of the user and the assistant. A user image may be a path, bytes or
        a PIL image (loaded and checked as in send). An assistant's drawn image is its VQ codes
        ({"type": "image", "codes"}) or, when only its pixels came back ({"type": "image", "image"}), the codes
        the VQ-VAE reads from them. A session's own `messages` give back the same messages."""
        session = cls(model, system_prompt)
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise ValueError(f"message {index} must be a {{role, content}} dict of the user or the assistant "
                                 "(give a system prompt as system_prompt)")
            content = message.get("content")
            if isinstance(content, list):
                content = [session._restored(part, message["role"]) for part in content]
            session.messages.append({"role": message["role"], "content": content})
        return session

    def _restored(self, part: dict, role: str) -> dict:
        if not isinstance(part, dict) or part.get("type") != "image":
            return part
        if role == "user":
            return {"type": "image", "image": load_image(part["image"])}
        if "codes" in part:
            return part
        pixels = to_tensor([part["image"]], self.model.vq.config.image_size)
        return {"type": "image", "codes": self.model.vq.encode(pixels)[0], "image": part["image"]}

    def reset(self) -> None:
        self.messages.clear()

    def undo(self) -> None:
        """Forget the last exchange: the last user message and the reply to it."""
        while self.messages:
            if self.messages.pop()["role"] == "user":
                return

    def retry(self, settings: Sampling = DEFAULT_SAMPLING) -> Iterator[TextDelta | ImageDone | Finished]:
        """Drop the last reply and answer the last user message again."""
        if not self.messages or not any(m["role"] == "user" for m in self.messages):
            raise ValueError("there is no user message to answer again")
        while self.messages[-1]["role"] != "user":
            self.messages.pop()
        yield from self._reply(settings, draw=False)

    def send(self, text: str, images=(), settings: Sampling = DEFAULT_SAMPLING,
             draw: bool = False) -> Iterator[TextDelta | ImageDone | Finished]:
        """Add a user turn (text and images: paths, bytes or PIL images) and stream the reply.

        draw=True makes the reply a drawing (after its description, DrawingConfig.describe). Bad images raise assistant.images.ImageError
        before anything is added to the conversation.
        """
        message = user_message(text, images)
        self.messages.append(message)
        try:
            yield from self._reply(settings, draw)
        except Exception:
            if self.messages[-1] is message:  # nothing was answered (e.g. the chat outgrew the context): forget it
                self.messages.pop()
            raise

    def next_prompts(self, cfg_scale: float) -> tuple[Prompt, Prompt | None]:
        """The prompt that asks for the next reply, and the unconditional one guidance needs (None at scale 1)."""
        conversation = self._with_system(self.messages)
        unconditional = self._prompt(_without_last_request(conversation)) if is_guided(cfg_scale) else None
        return self._prompt(conversation), unconditional

    def _reply(self, settings: Sampling, draw: bool) -> Iterator[TextDelta | ImageDone | Finished]:
        prompt, unconditional = self.next_prompts(settings.cfg_scale)
        reply: list[dict] = []
        try:
            for event in generate(self.model, prompt, settings, draw=draw, unconditional=unconditional):
                if isinstance(event, TextDelta):
                    _add_text(reply, event.text)
                elif isinstance(event, ImageDone):
                    reply.append({"type": "image", "codes": event.codes, "image": event.image})
                yield event
        finally:  # also when the caller stops reading early: keep what was said
            if reply:
                self.messages.append({"role": "assistant", "content": reply})

    def _with_system(self, messages: list[dict]) -> list[dict]:
        if self.system_prompt is None:
            return list(messages)
        return [{"role": "system", "content": self.system_prompt}] + messages

    def _prompt(self, messages: list[dict]) -> Prompt:
        rendered = render_chat(messages, self.model.tokenizer, self.model.layout, add_generation_prompt=True)
        features = [self.vision_features(image) for image in rendered.images]
        projected = self.model.project(torch.stack(features)) if features else None
        return Prompt(rendered.input_ids[None], projected)

    def vision_features(self, image: Image.Image) -> Tensor:
        """(N, D) features of one image, from the cache when this image was seen before."""
        key = _fingerprint(image)
        if key not in self._features:
            pixels = self.model.vision_tower.preprocess(image)[None]
            self._features[key] = self.model.vision_tower(pixels)[0]
        return self._features[key]


def one_turn_prompts(model, text: str, images=(), cfg_scale: float = 1.0) -> tuple[Prompt, Prompt | None]:
    """The prompt of a one-turn chat and, for guidance, its unconditional prompt: for batch generation."""
    session = ChatSession(model)
    session.messages.append(user_message(text, images))
    return session.next_prompts(cfg_scale)


def user_message(text: str, images=()) -> dict:
    """A Hugging Face user message: the images (paths, bytes or PIL images, loaded and checked) and the text."""
    content = [{"type": "image", "image": load_image(image)} for image in images]
    if text:
        content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def _fingerprint(image: Image.Image) -> str:
    return hashlib.sha256(image.mode.encode() + str(image.size).encode() + image.tobytes()).hexdigest()


def _add_text(reply: list[dict], text: str) -> None:
    if reply and reply[-1]["type"] == "text":
        reply[-1]["text"] += text
    else:
        reply.append({"type": "text", "text": text})


def _without_last_request(messages: list[dict]) -> list[dict]:
    """The unconditional prompt for guidance: the same chat with the last user turn emptied."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[:last] + [{"role": "user", "content": ""}] + messages[last + 1:]
