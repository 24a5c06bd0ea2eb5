"""The server's replies (ui/server.py) in OpenAI's formats: a chat.completion, its server-sent chunks, the usage.

    completion("glyph", [(0, TextDelta("Hi")), (0, Finished("stop", "Hi", [12], 30))])   # → a dict to send as JSON
    for line in chunks("glyph", events, include_usage=True): ...                    # "data: {...}\n\n", then [DONE]

A drawing comes back as a markdown image with a PNG data URL inside the text (what the server reads back in
a later request) and as `images = [{"b64_json": ...}]`.
"""
from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterator

from assistant.generation import Finished, ImageDone, TextDelta
from ui.api_requests import APIError


def png_base64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def completion(name: str, events: list[tuple[int, object]]) -> dict:
    """A chat.completion from the (choice index, event) pairs of every choice."""
    texts: dict[int, str] = {}
    images: dict[int, list[str]] = {}
    finished: dict[int, Finished] = {}
    for index, event in events:
        texts.setdefault(index, "")
        if isinstance(event, TextDelta):
            texts[index] += event.text
        elif isinstance(event, ImageDone):
            images.setdefault(index, []).append(png_base64(event.image))
            texts[index] += _markdown(len(images[index]), images[index][-1])
        elif isinstance(event, Finished):
            finished[index] = event
    choices = []
    for index, text in texts.items():
        message = {"role": "assistant", "content": text}
        if images.get(index):
            message["images"] = [{"b64_json": b} for b in images[index]]
        reason = finished[index].reason if index in finished else "stop"
        choices.append({"index": index, "message": message, "finish_reason": reason})
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": name, "choices": choices, "usage": usage(list(finished.values()))}


def usage(finished: list[Finished]) -> dict:
    """OpenAI's token counts: the prompt once (every choice answers the same one), the replies summed. A reply's
    tokens are its text and image tokens and the end of its turn."""
    prompt = finished[0].prompt_tokens if finished else 0
    reply = sum(len(f.token_ids) + (f.reason == "stop") for f in finished)
    return {"prompt_tokens": prompt, "completion_tokens": reply, "total_tokens": prompt + reply}


def chunks(name: str, events: Iterator, include_usage: bool = False) -> Iterator[str]:
    """Server-sent events in OpenAI's chat.completion.chunk format, ending with `data: [DONE]`. Each choice's
    last chunk carries the usage so far; include_usage adds OpenAI's final chunk with no choices and the total."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": name}

    def chunk(index: int, delta: dict, finish: str | None = None, **extra) -> str:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        return "data: " + json.dumps(base | {"choices": [choice]} | extra) + "\n\n"

    started: set[int] = set()
    drawn: dict[int, int] = {}
    finished: list[Finished] = []
    try:
        for index, event in events:
            if index not in started:
                started.add(index)
                yield chunk(index, {"role": "assistant", "content": ""})
            if isinstance(event, TextDelta):
                yield chunk(index, {"content": event.text})
            elif isinstance(event, ImageDone):
                drawn[index] = drawn.get(index, 0) + 1
                data = png_base64(event.image)
                yield chunk(index, {"content": _markdown(drawn[index], data), "images": [{"b64_json": data}]})
            elif isinstance(event, Finished):
                finished.append(event)
                yield chunk(index, {}, event.reason, usage=usage(finished))
    except APIError as error:  # after the stream began, errors travel inside it
        yield "data: " + json.dumps(error.body()) + "\n\n"
    if include_usage:
        yield "data: " + json.dumps(base | {"choices": [], "usage": usage(finished)}) + "\n\n"
    yield "data: [DONE]\n\n"


def _markdown(number: int, b64: str) -> str:
    return f"\n![image {number}](data:image/png;base64,{b64})\n"
