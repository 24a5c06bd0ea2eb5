"""An OpenAI-compatible HTTP server for a Glyph assistant (FastAPI + uvicorn), on 127.0.0.1 by default.

    glyph serve --model runs/scenes-tiny/instruct [--port 8000] [--api-key KEY]

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="KEY or anything")
    reply = client.chat.completions.create(model="glyph", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},
        {"type": "text", "text": "What colour is the circle?"}]}])

Endpoints:
- `POST /v1/chat/completions`: text and `image_url` content parts (data: URLs; http(s) URLs only with
  --allow-remote-images), `stream` (server-sent events in OpenAI's chunk format), temperature, top_p,
  max_tokens (or max_completion_tokens), seed, stop, `n` choices (1 to --max-images; with a seed, choice i
  uses seed + i), `response_format` {"type": "text"}, `stream_options.include_usage`. Every reply carries
  `usage` (prompt, completion and total tokens; a stream puts it on each choice's last chunk, and in an
  extra chunk with no choices when include_usage is asked for). Ask for a drawing in words ("draw a red circle"), or
  pass `"glyph_draw": true` (the client's `extra_body`) to make the reply start with an image;
  `"glyph_cfg_scale"` sets the drawings' classifier-free guidance (default 3, 1 = none), here and below.
  **Drawn images** come back twice: as markdown images with PNG data URLs inside `message.content`
  (`![image 1](data:image/png;base64,...)`, so any chat client shows them), and as
  `message.images = [{"b64_json": "..."}]` (the client reads it as `message.model_extra["images"]`).
  In a stream they come as a content delta and a `delta.images` list. A drawing sent back in a later
  request's assistant message, as that markdown data URL, an `image_url` part or `images[].b64_json`, is
  seen again: the VQ-VAE turns its pixels back into the codes the assistant drew.
- `POST /v1/images/generations`: `prompt`, `n` (1 to --max-images), `response_format` "b64_json";
  `size` may be left out or be the model's own size. A prompt the model will not draw (something outside
  what it can draw) gets a 400, code `prompt_declined`, whose message is the model's own reply.
- `GET /v1/models`; `GET /health` (no API key needed: `{"status": "ok"}` once the model is loaded).

Errors are OpenAI's error bodies (`{"error": {"message", "type", "param", "code"}}`) with 400 (bad
request), 401 (API key), 404 (unknown model or path), 413 (request too large) or 500. One generation runs
at a time (the model is shared; requests queue), and every request has its own conversation.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import io
import json
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from assistant.chat import ChatSession, one_turn_prompts
from assistant.generation import (DEFAULT_SAMPLING, ContextLengthError, Finished, ImageDone, Sampling, TextDelta,
                                  draw_all, reply_all, would_draw)
from assistant.images import ImageError, decode_data_url, load_image
from assistant.pixels import to_tensor

MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(data:image/[^)]*\)")


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 8 * 1024 * 1024
    max_image_bytes: int = 4 * 1024 * 1024
    max_images: int = 4  # per request (images in) and per images.generate call (images out)
    max_tokens: int = 1024  # the most text tokens a request may ask for
    allow_remote_images: bool = False  # fetch http(s) image URLs? Off: the server fetches nothing by default
    remote_timeout_s: float = 10.0


class APIError(Exception):
    """An error for the client: becomes an OpenAI error body with this status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = {401: "authentication_error", 404: "not_found_error", 413: "request_too_large",
                500: "server_error"}.get(self.status, "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


# ---- requests → a conversation and sampling settings -------------------------------------------------------

DECLINE_SAMPLING = Sampling(temperature=0, max_new_tokens=96)  # the model's words when it will not draw a prompt
NO_REASON = "it gave no reason; ask for something it can draw, or chat with it to see what it can do"
# Each sampling parameter: (JSON type, lowest, highest). OpenAI's own ranges where it has them; a seed fits
# torch's generator; guidance beyond 50 only saturates the drawing.
PARAMETERS = {"temperature": (float, 0.0, 2.0), "top_p": (float, 0.0, 1.0), "seed": (int, 0, 2 ** 63 - 1),
              "glyph_cfg_scale": (float, 0.0, 50.0)}


def sampling_of(body: dict, limits: Limits) -> Sampling:
    """The request's sampling settings; every parameter is type- and range-checked and named in its error."""
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise APIError(400, "stop must be a string or a list of at most 4 strings", "stop")
    default = DEFAULT_SAMPLING
    token_key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(body, token_key, int, 1, limits.max_tokens, default.max_new_tokens)
    values = {name: _number(body, name, kind, low, high, fallback) for (name, (kind, low, high)), fallback in zip(
        PARAMETERS.items(), (default.temperature, default.top_p, None, default.cfg_scale))}
    if values["top_p"] == 0:
        raise APIError(400, "top_p must be above 0 (0.01 keeps only the likeliest tokens)", "top_p")
    try:
        return Sampling(temperature=values["temperature"], top_p=values["top_p"], max_new_tokens=max_tokens,
                        seed=values["seed"], stop=tuple(stop), cfg_scale=values["glyph_cfg_scale"]).validate()
    except (ValueError, TypeError) as error:
        raise APIError(400, str(error)) from None


def _number(body: dict, name: str, kind: type, lowest, highest, default):
    """body[name] as `kind` within [lowest, highest], or `default` when it is absent or null."""
    value = body.get(name)
    if value is None:
        return default
    integral = isinstance(value, int) and not isinstance(value, bool)
    if not integral and not (kind is float and isinstance(value, float)):
        wanted = "an integer" if kind is int else "a number"
        raise APIError(400, f"{name} must be {wanted}, not {json.dumps(value)}", name)
    if not lowest <= value <= highest:  # also refuses NaN and ±Infinity
        raise APIError(400, f"{name} {json.dumps(value)} must be between {lowest:g} and {highest:g}", name)
    return kind(value)


def flag_of(body: dict, name: str) -> bool:
    value = False if body.get(name) is None else body[name]
    if not isinstance(value, bool):
        raise APIError(400, f"{name} must be true or false, not {json.dumps(value)}", name)
    return value


def conversation_of(messages, limits: Limits) -> tuple[str | None, list[dict], dict]:
    """(system prompt, earlier turns as ChatSession messages, the last user turn's {text, images})."""
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages must be a non-empty list of {role, content}", "messages")
    system, turns, images_seen = None, [], 0
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant"):
            raise APIError(400, f"{where} needs a role of system, user or assistant", where)
        if message["role"] == "assistant":
            content = _assistant_content(message, where, limits)
            images_seen += sum(part["type"] == "image" for part in content)
            turns.append({"role": "assistant", "content": content})
        else:
            text, images = _content(message.get("content"), where, limits)
            if message["role"] in ("system", "developer"):
                system = (system + "\n" if system else "") + text
                continue
            images_seen += len(images)
            turns.append({"role": "user", "text": text, "images": images})
        if images_seen > limits.max_images:
            raise APIError(400, f"the request holds more than {limits.max_images} images; send at most "
                                f"{limits.max_images}", where)
    if turns and turns[-1]["role"] == "user":
        return system, turns[:-1], turns[-1]
    raise APIError(400, "the last message must be the user's", "messages")


def _content(content, where: str, limits: Limits) -> tuple[str, list]:
    if isinstance(content, str):
        return _encodable(content, f"{where}.content"), []
    if not isinstance(content, list):
        raise APIError(400, f"{where}.content must be a string or a list of content parts", where)
    texts, images = [], []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(_encodable(part["text"], f"{where}.content[{number}].text"))
        elif kind == "image_url":
            images.append(_image_part(part, f"{where}.content[{number}]", limits))
        else:
            raise APIError(400, f"{where}.content[{number}] must be a text or image_url part", where)
    return "\n".join(texts), images


def _assistant_content(message: dict, where: str, limits: Limits) -> list[dict]:
    """An assistant message as text and image parts, in order: the drawings this server sent (markdown data URLs
    in the text, image_url parts, or `images[].b64_json` when the content holds none) come back as pixels."""
    content = message.get("content")
    content = [] if content is None else [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(content, list):
        raise APIError(400, f"{where}.content must be a string or a list of content parts", where)
    parts = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            text = _encodable(part["text"], f"{where}.content[{number}].text")
            for piece in re.split(f"({MARKDOWN_IMAGE.pattern})", text):
                if MARKDOWN_IMAGE.fullmatch(piece):
                    url = piece[piece.index("(") + 1:-1]
                    parts.append({"type": "image", "image": _image(url, f"{where}.content[{number}]", limits)})
                elif piece.strip():
                    parts.append({"type": "text", "text": piece.strip()})
        elif kind == "image_url":
            parts.append({"type": "image", "image": _image_part(part, f"{where}.content[{number}]", limits)})
        else:
            raise APIError(400, f"{where}.content[{number}] must be a text or image_url part", where)
    if not any(part["type"] == "image" for part in parts):
        parts += [{"type": "image", "image": _image("data:image/png;base64," + _b64(item, f"{where}.images[{i}]"),
                                                    f"{where}.images[{i}]", limits)}
                  for i, item in enumerate(_list(message.get("images"), f"{where}.images"))]
    return parts or [{"type": "text", "text": ""}]


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise APIError(400, f"{where} must be a list of {{b64_json}}", where)
    return value


def _b64(item, where: str) -> str:
    if not isinstance(item, dict) or not isinstance(item.get("b64_json"), str):
        raise APIError(400, f"{where} must be {{\"b64_json\": \"...\"}}", where)
    return item["b64_json"]


def _image_part(part: dict, where: str, limits: Limits):
    url = part.get("image_url", {}).get("url") if isinstance(part.get("image_url"), dict) else None
    return _image(url, where, limits)


def _encodable(text: str, where: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise APIError(400, f"{where} is not valid Unicode text (character {error.start} is a lone surrogate, "
                            f"{text[error.start]!r}); send UTF-8 text", where) from None
    return text


def _image(url, where: str, limits: Limits):
    try:
        if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
            if not limits.allow_remote_images:
                raise APIError(400, f"{where}: this server does not fetch image URLs; send the image inline as a "
                                    "data URL (data:image/png;base64,...), or start it with --allow-remote-images",
                               where, "remote_image_refused")
            return load_image(_fetch(url, limits), name=url)
        return load_image(decode_data_url(url, max_bytes=limits.max_image_bytes), name=where)
    except ImageError as error:  # load_image's message already names `where` ("Cannot use messages[0]...")
        message = str(error) if where in str(error) else f"{where}: {error}"
        raise APIError(400, message, where, "invalid_image") from None


def _fetch(url: str, limits: Limits) -> bytes:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=limits.remote_timeout_s) as response:  # noqa: S310 (opted in)
            data = response.read(limits.max_image_bytes + 1)
    except OSError as error:
        raise ImageError(f"could not fetch {url}: {error}") from None
    if len(data) > limits.max_image_bytes:
        raise ImageError(f"{url} is over the {limits.max_image_bytes:,}-byte image limit")
    return data


def png_base64(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# ---- generation, one at a time ------------------------------------------------------------------------------

class Assistant:
    """The model behind the endpoints. One generation at a time: requests wait their turn for the lock."""

    def __init__(self, model, name: str, limits: Limits = Limits()):
        self.model, self.name, self.limits = model, name, limits
        self.lock = threading.Lock()

    def session(self, system: str | None, turns: list[dict]) -> ChatSession:
        session = ChatSession(self.model, system)
        for turn in turns:
            if turn["role"] == "assistant":
                session.messages.append({"role": "assistant", "content": [self._drawn(p) for p in turn["content"]]})
            else:
                session.messages.append(_user_message(turn))
        return session

    def _drawn(self, part: dict) -> dict:
        """An assistant's image part with the VQ codes it was drawn with, read back from its pixels."""
        if part["type"] != "image":
            return part
        pixels = to_tensor([part["image"]], self.model.vq.config.image_size)
        return {"type": "image", "codes": self.model.vq.encode(pixels)[0], "image": part["image"]}

    def chat(self, body: dict) -> Reply:
        """Start the reply to a chat completions request. Bad requests raise APIError here, before any work."""
        self.check_model(body.get("model"))
        choices = _count(body, "n", self.limits.max_images)
        _text_format(body.get("response_format"))
        flag_of(body, "stream"), _include_usage(body)  # checked now, before the reply starts
        settings = sampling_of(body, self.limits)
        system, turns, last = conversation_of(body.get("messages"), self.limits)
        draw = flag_of(body, "glyph_draw")
        seeds = [None if settings.seed is None else (settings.seed + i) % 2 ** 63 for i in range(choices)]
        sessions = [self.session(system, turns) for _ in seeds]  # each choice continues its own copy
        return Reply(_choices(sessions, last, [dataclasses.replace(settings, seed=seed) for seed in seeds], draw),
                     self.lock)

    def images(self, body: dict) -> list[str]:
        """base64 PNGs for an images.generate request."""
        self.check_model(body.get("model"), optional=True)
        prompt, n = body.get("prompt"), _count(body, "n", self.limits.max_images)
        if not isinstance(prompt, str) or not prompt.strip():
            raise APIError(400, "prompt must be a non-empty string", "prompt")
        _encodable(prompt, "prompt")
        if body.get("response_format", "b64_json") != "b64_json":
            raise APIError(400, "response_format must be b64_json: this server keeps no files to link to",
                           "response_format")
        side = self.model.vq.config.image_size
        if body.get("size") not in (None, "auto", f"{side}x{side}"):
            raise APIError(400, f"size must be {side}x{side}, this model's image size", "size")
        settings = sampling_of({"temperature": 1.0} | {k: body[k] for k in ("glyph_cfg_scale", "seed") if k in body},
                               self.limits)
        prompt_pair = one_turn_prompts(self.model, prompt, cfg_scale=settings.cfg_scale)
        seeds = [None if settings.seed is None else (settings.seed + i) % 2 ** 63 for i in range(n)]
        with self.lock:
            try:
                if not would_draw(self.model, [prompt_pair[0]])[0]:  # e.g. "draw an elephant": it says why not
                    said = reply_all(self.model, [prompt_pair[0]], DECLINE_SAMPLING)[0].text.strip()
                    raise APIError(400, f"the model declined to draw this prompt: {said or NO_REASON}", "prompt",
                                   "prompt_declined")
                done = draw_all(self.model, [prompt_pair[0]] * n, [prompt_pair[1]] * n if prompt_pair[1] else None,
                                settings, seeds)
            except ValueError as error:
                raise APIError(400, str(error), "prompt") from None
        return [png_base64(d.image) for d in done]

    def check_model(self, model, optional: bool = False) -> None:
        if model is None and optional:
            return
        if model != self.name:
            raise APIError(404, f"the model {json.dumps(model)} does not exist here; this server serves "
                                f"{json.dumps(self.name)} (GET /v1/models lists it)", "model", "model_not_found")


def _count(body: dict, name: str, most: int) -> int:
    value = body.get(name)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise APIError(400, f"{name} must be an integer from 1 to {most}, not {json.dumps(value)}", name)
    return value


def _text_format(response_format) -> None:
    """Replies are text: response_format may ask for text, nothing else (JSON modes need constrained decoding)."""
    if response_format is None or response_format == {"type": "text"}:
        return
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    raise APIError(400, f"response_format {json.dumps(kind if kind is not None else response_format)} is not "
                        "supported: this server writes text; leave it out or send {\"type\": \"text\"}",
                   "response_format")


def _choices(sessions: list[ChatSession], last: dict, settings: list[Sampling], draw: bool) -> Iterator[tuple]:
    """(choice index, event) for each choice in turn: n replies to the same conversation."""
    for index, (session, sampling) in enumerate(zip(sessions, settings)):
        for event in session.send(last["text"], images=last["images"], settings=sampling, draw=draw):
            yield index, event


class Reply:
    """A reply generated by a worker thread that holds the model's lock until the reply is complete.

    The worker finishes even when the client goes away, so the lock is always released. first() waits for
    the first event and turns a refusal (the prompt does not fit the context) into an APIError.
    """

    def __init__(self, events: Iterator, lock: threading.Lock):
        self._queue: queue.Queue = queue.Queue()
        self._events, self._lock = events, lock
        threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        with self._lock:
            try:
                for event in self._events:
                    self._queue.put(event)
            except ContextLengthError as error:
                self._queue.put(APIError(400, str(error), "messages", "context_length_exceeded"))
            except ValueError as error:  # another refusal of what was asked (a template or settings problem)
                self._queue.put(APIError(400, str(error)))
            except Exception as error:  # noqa: BLE001 (reported to the client, not lost in a thread)
                self._queue.put(APIError(500, f"generation failed: {type(error).__name__}: {error}"))
        self._queue.put(None)

    def __iter__(self) -> Iterator[TextDelta | ImageDone | Finished]:
        while (item := self._queue.get()) is not None:
            if isinstance(item, APIError):
                raise item
            yield item

    def first(self) -> Iterator[TextDelta | ImageDone | Finished]:
        """Wait for the first event (raising APIError for a refused request); iterate the result for all."""
        item = self._queue.get()
        if isinstance(item, APIError):
            raise item
        return _chain([] if item is None else [item], [] if item is None else self)


def _user_message(turn: dict) -> dict:
    content = [{"type": "image", "image": image} for image in turn["images"]]
    if turn["text"]:
        content.append({"type": "text", "text": turn["text"]})
    return {"role": "user", "content": content}


# ---- responses ---------------------------------------------------------------------------------------------

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


def _include_usage(body: dict) -> bool:
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise APIError(400, "stream_options must be {\"include_usage\": true or false}", "stream_options")
    return options.get("include_usage", False)


def _markdown(number: int, b64: str) -> str:
    return f"\n![image {number}](data:image/png;base64,{b64})\n"


# ---- the app -----------------------------------------------------------------------------------------------

def create_app(assistant: Assistant, api_key: str | None = None):
    app = FastAPI(title="Glyph", docs_url=None, redoc_url=None, openapi_url=None)
    limits = assistant.limits

    def error(err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if api_key is not None and request.url.path != "/health" \
                and request.headers.get("authorization") != f"Bearer {api_key}":
            return error(APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' "
                                       "with the key this server was started with", code="invalid_api_key"))
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_request_bytes:
            return error(APIError(413, f"the request is {int(length):,} bytes, over this server's "
                                       f"{limits.max_request_bytes:,}-byte limit; send smaller images"))
        return await call_next(request)

    @app.exception_handler(APIError)
    async def api_error(_request, err: APIError):
        return error(err)

    @app.exception_handler(HTTPException)
    async def http_error(_request, err: HTTPException):
        return error(APIError(err.status_code, str(err.detail)))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, err: RequestValidationError):
        return error(APIError(400, f"the request is not valid: {err.errors()[:1]}"))

    async def json_body(request: Request) -> dict:
        raw = await request.body()
        if len(raw) > limits.max_request_bytes:
            raise APIError(413, f"the request is over this server's {limits.max_request_bytes:,}-byte limit")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            raise APIError(400, "the request body is not JSON") from None
        except UnicodeDecodeError:
            raise APIError(400, "the request body is not UTF-8 JSON") from None
        except ValueError:  # JSON that Python will not read: an integer of more than 4,300 digits
            raise APIError(400, "the request body holds a number too long to read; send numbers of at most "
                                "4,300 digits") from None
        except RecursionError:
            raise APIError(400, "the request body is JSON nested too deeply; send a flat OpenAI request") from None
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        return body

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": assistant.name, "object": "model", "created": 0,
                                            "owned_by": "glyph"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await json_body(request)
        reply = await run_in_threadpool(assistant.chat, body)
        events = await run_in_threadpool(reply.first)  # a refused prompt is a 4xx here, before any chunk is sent
        if body.get("stream"):
            return StreamingResponse(chunks(assistant.name, events, _include_usage(body)),
                                     media_type="text/event-stream")
        return completion(assistant.name, await run_in_threadpool(list, events))

    @app.post("/v1/images/generations")
    async def images(request: Request):
        body = await json_body(request)
        pictures = await run_in_threadpool(assistant.images, body)
        return {"created": int(time.time()), "data": [{"b64_json": p} for p in pictures]}

    return app


def _chain(first: list, rest) -> Iterator:
    yield from first
    yield from rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glyph serve", description="Serve an assistant with OpenAI's HTTP API.")
    parser.add_argument("--model", type=Path, default=None, help="the assistant directory (or a build directory); default: the one shipped in "
                        "models/scenes-smollm2")
    parser.add_argument("--name", default="glyph", help="the model id clients pass as `model`")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default: none)")
    parser.add_argument("--max-images", type=int, default=Limits.max_images)
    parser.add_argument("--max-request-mb", type=float, default=Limits.max_request_bytes / 2**20)
    parser.add_argument("--allow-remote-images", action="store_true",
                        help="fetch http(s) image URLs (off: only inline data: URLs are read)")
    args = parser.parse_args(argv)
    try:
        from assistant.model import load_assistant

        model = load_assistant(args.model)
    except (ValueError, OSError) as error:
        print(f"glyph serve: {error}", file=sys.stderr)
        return 2
    limits = Limits(max_request_bytes=int(args.max_request_mb * 2**20), max_images=args.max_images,
                    allow_remote_images=args.allow_remote_images)
    import uvicorn

    app = create_app(Assistant(model, args.name, limits), args.api_key)
    print(f"Glyph API: http://{args.host}:{args.port}/v1  (model {args.name!r}; Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
