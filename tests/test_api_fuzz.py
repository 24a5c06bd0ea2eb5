"""Random JSON bodies, inside the OpenAI schema and far outside it, against `glyph serve`'s routes (hypothesis).

Whatever arrives, the server answers: never a 500, never a hang, and every refusal is an OpenAI error body that a
client can read (`{"error": {"message", "type", "param", "code"}}`).
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from assistant.model import GlyphModel
from ui.server import Assistant, Limits, create_app

ROUTES = ["/v1/chat/completions", "/v1/images/generations"]
# A deadline catches a request that takes far longer than the tiny model needs (a hang would never end).
FUZZ = settings(max_examples=100, deadline=timedelta(seconds=20), suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
any_json = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
# Values a client might put in a sampling parameter: right, wrong type, out of range, huge, tiny.
odd_values = (st.integers(-5, 5) | st.integers(-2 ** 65, 2 ** 65) | st.floats(-1e12, 1e12)
              | st.sampled_from([0, 1, 0.5, 2.7, 1e308, -0.0, "1", "yes", True, None, [], {}]))
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=40)}),
    st.fixed_dictionaries({"type": st.just("image_url"),
                           "image_url": st.fixed_dictionaries({"url": st.sampled_from(
                               ["data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,@@@", "http://x/a.png",
                                "file:///etc/passwd", "", "data:text/html;base64,PGI+"])})}),
    any_json)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user"] * 6 + ["assistant", "system", "tool", "", "USER"]),
     "content": st.text(max_size=60) | st.lists(parts, max_size=3) | any_json})
# Mostly the served model and a list of messages, so that most bodies reach the sampling parameters and the model.
model_name = st.sampled_from(["glyph-tiny"] * 8 + ["gpt-4o", ""])
chat_body = st.fixed_dictionaries(
    {"model": model_name, "messages": st.lists(message, min_size=1, max_size=3)},
    optional={name: odd_values for name in ("max_tokens", "max_completion_tokens", "temperature", "top_p", "seed",
                                            "n", "stream", "glyph_draw", "glyph_cfg_scale", "stop")})
image_body = st.fixed_dictionaries({"prompt": st.text(max_size=40) | any_json},
                                   optional={name: odd_values for name in ("n", "size", "seed", "response_format",
                                                                          "model", "glyph_cfg_scale")})


@pytest.fixture(scope="module")
def http(tiny_assistant):
    # Small limits keep every accepted request quick; the checks are about the answer's form, not its content.
    assistant = Assistant(GlyphModel.from_pretrained(tiny_assistant), "glyph-tiny",
                          Limits(max_images=2, max_request_bytes=200_000, max_tokens=8))
    with TestClient(create_app(assistant), raise_server_exceptions=False) as client:
        yield client


def check_answer(response) -> None:
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics: how many were answered, how many refused
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"] and {"type", "param", "code"} <= set(error)
    elif response.headers["content-type"].startswith("text/event-stream"):
        events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and all("choices" in json.loads(e) or "error" in json.loads(e)
                                               for e in events[:-1])
    else:
        assert "choices" in response.json() or "data" in response.json()


@FUZZ
@given(body=chat_body)
def test_chat_bodies_in_and_out_of_the_schema_get_an_answer_or_a_clear_error(http, body):
    check_answer(http.post(ROUTES[0], json=body))


@FUZZ
@given(body=image_body)
def test_image_bodies_in_and_out_of_the_schema_get_pictures_or_a_clear_error(http, body):
    check_answer(http.post(ROUTES[1], json=body))


@FUZZ
@given(route=st.sampled_from(ROUTES), body=any_json)
def test_any_json_at_all_is_refused_clearly(http, route, body):
    check_answer(http.post(route, json=body))


@FUZZ
@given(route=st.sampled_from(ROUTES), raw=st.binary(max_size=200)
       | st.sampled_from([b'{"messages": NaN}', b'{"temperature": Infinity, "messages": []}', b"[" * 50_000,
                          b'{"messages": [{"role": "user", "content": "\\ud800"}]}', b"\xff\xfe{}", b""]))
def test_raw_bytes_are_refused_clearly(http, route, raw):
    check_answer(http.post(route, content=raw, headers={"content-type": "application/json"}))
