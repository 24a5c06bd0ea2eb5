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
  pass `"glyph_draw": true` (the client's `extra_body`) to make the reply a drawing (an assistant trained to say what it
  draws first, DrawingConfig.describe, says it, then draws);
  `"glyph_cfg_scale"` sets the drawings' classifier-free guidance (1 = none), here and below. What a request
  leaves out is assistant.generation.Sampling's default (max_tokens 256, temperature 0.7, guidance 3).
  **Drawn images** come back twice: as markdown images with PNG data URLs inside `message.content`
  (`![image 1](data:image/png;base64,...)`, so any chat client shows them), and as
  `message.images = [{"b64_json": "..."}]` (the client reads it as `message.model_extra["images"]`).
  In a stream they come as a content delta and a `delta.images` list. A drawing sent back in a later
  request's assistant message, as that markdown data URL, an `image_url` part or `images[].b64_json`, is
  seen again: the VQ-VAE turns its pixels back into the codes the assistant drew.
- `POST /v1/images/generations`: `prompt`, `n` (1 to --max-images), `response_format` "b64_json";
  `size` may be left out or be the model's own size. A prompt the model will not draw (something outside
  what it can draw) gets a 400, code `prompt_declined`, whose message is the model's own reply. An
  assistant that says what it draws before drawing (DrawingConfig.describe) gives that sentence as each
  image's `revised_prompt`, as DALL-E 3 gives the prompt it rewrote.
- `GET /v1/models`; `GET /health` (no API key needed: `{"status": "ok"}` once the model is loaded).

Requests are read and checked in ui/api_requests.py, replies written in ui/api_responses.py.
Errors are OpenAI's error bodies (`{"error": {"message", "type", "param", "code"}}`) with 400 (bad
request), 401 (API key), 404 (unknown model or path), 413 (request too large) or 500. One generation runs
at a time (the model is shared; requests queue), and every request has its own conversation.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import queue
import sys
import threading
import time
from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from assistant.chat import ChatSession, one_turn_prompts
from assistant.generation import (
    ContextLengthError,
    Finished,
    ImageDone,
    Sampling,
    TextDelta,
    draw_all,
    reply_all,
    would_draw,
)
from ui.api_requests import (
    APIError,
    Limits,
    check_text_format,
    conversation_of,
    count_of,
    encodable,
    flag_of,
    include_usage_of,
    sampling_of,
)
from ui.api_responses import chunks, completion, png_base64
from ui.loader import add_model_option, load_for

DECLINE_SAMPLING = Sampling(temperature=0, max_new_tokens=96)  # the model's words when it will not draw a prompt
NO_REASON = "it gave no reason; ask for something it can draw, or chat with it to see what it can do"

# ---- generation, one at a time ------------------------------------------------------------------------------

class Assistant:
    """The model behind the endpoints. One generation at a time: requests wait their turn for the lock."""

    def __init__(self, model, name: str, limits: Limits = Limits()):
        self.model, self.name, self.limits = model, name, limits
        self.lock = threading.Lock()

    def chat(self, body: dict) -> Reply:
        """Start the reply to a chat completions request. Bad requests raise APIError here, before any work."""
        self.check_model(body.get("model"))
        choices = count_of(body, "n", self.limits.max_images)
        check_text_format(body.get("response_format"))
        flag_of(body, "stream"), include_usage_of(body)  # checked now, before the reply starts
        settings = sampling_of(body, self.limits)
        system, turns, last = conversation_of(body.get("messages"), self.limits)
        draw = flag_of(body, "glyph_draw")
        seeds = [None if settings.seed is None else (settings.seed + i) % 2 ** 63 for i in range(choices)]
        # Each choice continues its own copy; drawings sent back as pixels are read back into their VQ codes.
        sessions = [ChatSession.from_messages(self.model, turns, system) for _ in seeds]
        return Reply(_choices(sessions, last, [dataclasses.replace(settings, seed=seed) for seed in seeds], draw),
                     self.lock)

    def images(self, body: dict) -> list[dict]:
        """An images.generate request's `data`: a base64 PNG each, with its `revised_prompt` when the assistant
        said what it would draw."""
        self.check_model(body.get("model"), optional=True)
        prompt, n = body.get("prompt"), count_of(body, "n", self.limits.max_images)
        if not isinstance(prompt, str) or not prompt.strip():
            raise APIError(400, "prompt must be a non-empty string", "prompt")
        encodable(prompt, "prompt")
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
        return [{"b64_json": png_base64(d.image)} | ({"revised_prompt": d.said} if d.said else {}) for d in done]

    def check_model(self, model, optional: bool = False) -> None:
        if model is None and optional:
            return
        if model != self.name:
            raise APIError(404, f"the model {json.dumps(model)} does not exist here; this server serves "
                                f"{json.dumps(self.name)} (GET /v1/models lists it)", "model", "model_not_found")



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


# ---- the app -----------------------------------------------------------------------------------------------

def create_app(assistant: Assistant, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="Glyph", docs_url=None, redoc_url=None, openapi_url=None)
    _guard(app, assistant.limits, api_key)
    _answer_errors(app)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": assistant.name, "object": "model", "created": 0,
                                            "owned_by": "glyph"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await json_body(request, assistant.limits)
        reply = await run_in_threadpool(assistant.chat, body)
        events = await run_in_threadpool(reply.first)  # a refused prompt is a 4xx here, before any chunk is sent
        if body.get("stream"):
            return StreamingResponse(chunks(assistant.name, events, include_usage_of(body)),
                                     media_type="text/event-stream")
        return completion(assistant.name, await run_in_threadpool(list, events))

    @app.post("/v1/images/generations")
    async def images(request: Request):
        body = await json_body(request, assistant.limits)
        pictures = await run_in_threadpool(assistant.images, body)
        return {"created": int(time.time()), "data": pictures}

    return app


def _error(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def _guard(app: FastAPI, limits: Limits, api_key: str | None) -> None:
    """Refuse, before the body is read, a request without the API key (but /health) or one over the size limit."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if api_key is not None and request.url.path != "/health" \
                and request.headers.get("authorization") != f"Bearer {api_key}":
            return _error(APIError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' "
                                        "with the key this server was started with", code="invalid_api_key"))
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_request_bytes:
            return _error(APIError(413, f"the request is {int(length):,} bytes, over this server's "
                                        f"{limits.max_request_bytes:,}-byte limit; send smaller images"))
        return await call_next(request)


def _answer_errors(app: FastAPI) -> None:
    """Every error the client gets is an OpenAI error body: ours, Starlette's (404, 405) and FastAPI's."""

    @app.exception_handler(APIError)
    async def api_error(_request, err: APIError):
        return _error(err)

    @app.exception_handler(HTTPException)
    async def http_error(_request, err: HTTPException):
        return _error(APIError(err.status_code, str(err.detail)))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, err: RequestValidationError):
        return _error(APIError(400, f"the request is not valid: {err.errors()[:1]}"))


async def json_body(request: Request, limits: Limits) -> dict:
    """The request's body as a JSON object; anything else is one APIError that says what to send."""
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


def _chain(first: list, rest) -> Iterator:
    yield from first
    yield from rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glyph serve", description="Serve an assistant with OpenAI's HTTP API.")
    add_model_option(parser)
    parser.add_argument("--name", default="glyph", help="the model id clients pass as `model`")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default: none)")
    parser.add_argument("--max-images", type=int, default=Limits.max_images)
    parser.add_argument("--max-request-mb", type=float, default=Limits.max_request_bytes / 2**20)
    parser.add_argument("--allow-remote-images", action="store_true",
                        help="fetch http(s) image URLs (off: only inline data: URLs are read)")
    args = parser.parse_args(argv)
    model = load_for("glyph serve", args.model, args.int8)
    if model is None:
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
