"""An OpenAI request to the server (ui/server.py), read and checked: its sampling settings, its conversation and
its flags, each bad field refused with an APIError (an OpenAI error body) that names it.

    settings = sampling_of(body, Limits())                         # Sampling; absent fields take its defaults
    system, earlier, last = conversation_of(body["messages"], Limits())
    session = ChatSession.from_messages(model, earlier, system)   # then session.send(last["text"], last["images"])
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from assistant.chat import user_message
from assistant.generation import Sampling
from assistant.images import ImageError, decode_data_url, load_image

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

# Each sampling parameter of a request: (its Sampling field, JSON type, lowest, highest). OpenAI's own ranges where
# it has them; a seed fits torch's generator; guidance beyond 50 only saturates the drawing.
PARAMETERS = {"temperature": ("temperature", float, 0.0, 2.0), "top_p": ("top_p", float, 0.0, 1.0),
              "seed": ("seed", int, 0, 2 ** 63 - 1), "glyph_cfg_scale": ("cfg_scale", float, 0.0, 50.0)}


def sampling_of(body: dict, limits: Limits) -> Sampling:
    """The request's sampling settings; every parameter is type- and range-checked and named in its error. What
    the request leaves out is Sampling's own default."""
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise APIError(400, "stop must be a string or a list of at most 4 strings", "stop")
    default = Sampling()
    token_key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    values = {"max_new_tokens": _number(body, token_key, int, 1, limits.max_tokens, default.max_new_tokens)}
    values |= {field: _number(body, name, kind, low, high, getattr(default, field))
               for name, (field, kind, low, high) in PARAMETERS.items()}
    if values["top_p"] == 0:
        raise APIError(400, "top_p must be above 0 (0.01 keeps only the likeliest tokens)", "top_p")
    try:
        return Sampling(**values, stop=tuple(stop)).validate()
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
            turns.append({"role": "user", "text": text, "images": images})  # made a message below, unless last
        if images_seen > limits.max_images:
            raise APIError(400, f"the request holds more than {limits.max_images} images; send at most "
                                f"{limits.max_images}", where)
    if turns and turns[-1]["role"] == "user":
        earlier = [user_message(t["text"], t["images"]) if t["role"] == "user" else t for t in turns[:-1]]
        return system, earlier, turns[-1]
    raise APIError(400, "the last message must be the user's", "messages")


def _content(content, where: str, limits: Limits) -> tuple[str, list]:
    if isinstance(content, str):
        return encodable(content, f"{where}.content"), []
    if not isinstance(content, list):
        raise APIError(400, f"{where}.content must be a string or a list of content parts", where)
    texts, images = [], []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(encodable(part["text"], f"{where}.content[{number}].text"))
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
            text = encodable(part["text"], f"{where}.content[{number}].text")
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


def encodable(text: str, where: str) -> str:
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


def count_of(body: dict, name: str, most: int) -> int:
    value = body.get(name)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise APIError(400, f"{name} must be an integer from 1 to {most}, not {json.dumps(value)}", name)
    return value


def check_text_format(response_format) -> None:
    """Replies are text: response_format may ask for text, nothing else (JSON modes need constrained decoding)."""
    if response_format is None or response_format == {"type": "text"}:
        return
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    raise APIError(400, f"response_format {json.dumps(kind if kind is not None else response_format)} is not "
                        "supported: this server writes text; leave it out or send {\"type\": \"text\"}",
                   "response_format")


def include_usage_of(body: dict) -> bool:
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise APIError(400, "stream_options must be {\"include_usage\": true or false}", "stream_options")
    return options.get("include_usage", False)

