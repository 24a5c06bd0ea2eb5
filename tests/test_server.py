"""`glyph serve`, driven by the official openai client over real HTTP, on a tiny random assistant."""
from __future__ import annotations

import base64
import io
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from PIL import Image

from assistant.model import GlyphModel
from assistant.chat import one_turn_prompts
from assistant.generation import reply_all
from ui.server import DECLINE_SAMPLING, NO_REASON, Assistant, Limits, create_app
from tests.web import serving

KEY = "test-key"


@pytest.fixture(scope="module")
def model_dir(tiny_assistant):
    return tiny_assistant


@pytest.fixture(scope="module")
def base_url(model_dir):
    model = GlyphModel.from_pretrained(model_dir)
    app = create_app(Assistant(model, "glyph-tiny", Limits(max_images=2, max_request_bytes=200_000)), api_key=KEY)
    with serving(app) as url:
        yield url + "/v1"


@pytest.fixture()
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=60)


def data_url(image: Image.Image, kind: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return f"data:image/{kind.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def ask(text: str, *images: str) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return [{"role": "user", "content": parts + [{"type": "text", "text": text}]}]


RED = data_url(Image.new("RGB", (16, 16), (255, 0, 0)))


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list()] == ["glyph-tiny"]


def test_chat_with_an_image_answers_and_a_seed_repeats_it(client):
    first = client.chat.completions.create(model="glyph-tiny", messages=ask("what is this?", RED), max_tokens=6,
                                           seed=3, temperature=1.0)
    again = client.chat.completions.create(model="glyph-tiny", messages=ask("what is this?", RED), max_tokens=6,
                                           seed=3, temperature=1.0)
    choice = first.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert choice.message.content == again.choices[0].message.content


def test_streaming_sends_chunks_that_add_up_to_the_reply(client):
    settings = {"model": "glyph-tiny", "messages": ask("hello"), "max_tokens": 8, "temperature": 0}
    whole = client.chat.completions.create(**settings).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **settings))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole
    assert len(chunks) >= 3  # role, text as it came, the finish


def test_a_drawing_comes_back_as_markdown_and_as_b64_json(client, model_dir):
    reply = client.chat.completions.create(model="glyph-tiny", messages=ask("draw a red square"), max_tokens=4,
                                           seed=0, extra_body={"glyph_draw": True})
    message = reply.choices[0].message
    images = message.model_extra["images"]
    assert len(images) >= 1 and "![image 1](data:image/png;base64," in message.content
    picture = Image.open(io.BytesIO(base64.b64decode(images[0]["b64_json"])))
    side = GlyphModel.from_pretrained(model_dir).vq.config.image_size
    assert picture.size == (side, side)
    # Sent back in the next request's history, in any of the three forms a client may keep it, the drawing is
    # seen again: its codes fill tokens_per_image slots between <boi> and <eoi> in the prompt.
    text_only, url = "Here it is:", "data:image/png;base64," + images[0]["b64_json"]
    forms = {"as this server wrote it": {"content": message.content},
             "markdown": {"content": f"{text_only}\n![image 1]({url})\n"},
             "image_url part": {"content": [{"type": "text", "text": text_only},
                                            {"type": "image_url", "image_url": {"url": url}}]},
             "images[].b64_json": {"content": text_only, "images": images[:1]},
             "text alone": {"content": text_only}}
    prompt_tokens = {}
    for form, fields in forms.items():
        history = ask("draw a red square") + [{"role": "assistant"} | fields] + ask("thanks")
        answer = client.chat.completions.create(model="glyph-tiny", messages=history, max_tokens=2)
        prompt_tokens[form] = answer.usage.prompt_tokens
    per_image = GlyphModel.from_pretrained(model_dir).layout.tokens_per_image + 2
    assert prompt_tokens["markdown"] == prompt_tokens["image_url part"] == prompt_tokens["images[].b64_json"] \
        == prompt_tokens["text alone"] + per_image, prompt_tokens


def test_usage_counts_the_prompt_and_the_reply_and_comes_last_in_a_stream(client):
    reply = client.chat.completions.create(model="glyph-tiny", messages=ask("what is this?", RED), max_tokens=5,
                                           temperature=0)
    used = reply.usage
    assert used.prompt_tokens > 5 and 1 <= used.completion_tokens <= 6  # the reply's tokens and its end of turn
    assert used.total_tokens == used.prompt_tokens + used.completion_tokens
    chunks = list(client.chat.completions.create(model="glyph-tiny", messages=ask("what is this?", RED),
                                                 max_tokens=5, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage == used  # the same reply, the same counts


def test_n_choices_each_use_their_own_seed(client):
    settings = {"model": "glyph-tiny", "messages": ask("tell me a story"), "max_tokens": 6, "temperature": 1.0}
    both = client.chat.completions.create(n=2, seed=7, **settings)  # this server's --max-images is 2
    assert [c.index for c in both.choices] == [0, 1]
    alone = [client.chat.completions.create(seed=7 + i, **settings) for i in range(2)]
    assert [c.message.content for c in both.choices] == [a.choices[0].message.content for a in alone]
    assert both.usage.completion_tokens == sum(a.usage.completion_tokens for a in alone)
    streamed = list(client.chat.completions.create(n=2, seed=7, stream=True, **settings))
    text = {0: "", 1: ""}
    for chunk in streamed:
        for choice in chunk.choices:
            text[choice.index] += choice.delta.content or ""
    assert [text[0], text[1]] == [a.choices[0].message.content for a in alone]


def test_response_format_text_is_accepted_and_json_modes_are_refused_by_name(client):
    assert client.chat.completions.create(model="glyph-tiny", messages=ask("hi"), max_tokens=2,
                                          response_format={"type": "text"}).choices
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="glyph-tiny", messages=ask("hi"), max_tokens=2,
                                       response_format={"type": "json_object"})
    assert caught.value.body["param"] == "response_format" and "json_object" in caught.value.body["message"]


def test_health_answers_without_the_api_key(base_url):
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/health", timeout=10) as response:
        assert response.status == 200 and json.loads(response.read()) == {"status": "ok"}


@pytest.fixture()
def draws(monkeypatch):
    """The tiny random model opens a reply with <boi> or a word by chance; these tests take it as drawing."""
    monkeypatch.setattr("ui.server.would_draw", lambda model, prompts: [True] * len(prompts))


def test_images_generate_gives_n_pngs(client, draws):
    result = client.images.generate(model="glyph-tiny", prompt="a blue circle", n=2, response_format="b64_json")
    pictures = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in result.data]
    assert len(pictures) == 2 and all(p.format == "PNG" for p in pictures)
    assert all(d.revised_prompt is None for d in result.data)  # this assistant draws without a description
    for bad, param in (({"n": 9}, "n must"), ({"extra_body": {"seed": "x"}}, "seed"),
                       ({"extra_body": {"glyph_cfg_scale": "high"}}, "glyph_cfg_scale")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.generate(model="glyph-tiny", prompt="a blue circle", **bad)
        assert param in caught.value.body["message"]


def test_a_prompt_the_model_will_not_draw_is_a_400_with_the_models_own_words(client, model_dir, monkeypatch):
    monkeypatch.setattr("ui.server.would_draw", lambda model, prompts: [False] * len(prompts))
    prompt = "a purple elephant riding a bicycle"
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="glyph-tiny", prompt=prompt, n=2)
    body = caught.value.body
    assert body["code"] == "prompt_declined" and body["param"] == "prompt"
    model = GlyphModel.from_pretrained(model_dir)
    said = reply_all(model, [one_turn_prompts(model, prompt)[0]], DECLINE_SAMPLING)[0].text.strip()
    assert body["message"] == f"the model declined to draw this prompt: {said or NO_REASON}"


@pytest.mark.parametrize(("request_kwargs", "status", "words"), [
    ({"messages": ask("what?", "data:image/png;base64,bm90IGFuIGltYWdl")}, 400, "image"),
    ({"messages": ask("what?", RED, RED, RED)}, 400, "at most 2"),
    ({"messages": ask("what?", "https://example.com/cat.png")}, 400, "data URL"),
    ({"messages": ask("word " * 400)}, 400, "context"),
    ({"messages": ask("hi"), "model": "gpt-4o"}, 404, "does not exist"),
    ({"messages": ask("hi"), "n": 9}, 400, "n must be an integer from 1 to 2"),
    ({"messages": ask("hi"), "temperature": -1}, 400, "temperature"),
    ({"messages": ask("hi"), "temperature": 1e308}, 400, "temperature"),
    ({"messages": ask("hi"), "max_tokens": 0}, 400, "max_tokens"),
    ({"messages": ask("hi"), "max_tokens": 2.7}, 400, "max_tokens must be an integer"),
    ({"messages": ask("hi"), "seed": 1.5}, 400, "seed must be an integer"),
    ({"messages": ask("hi"), "seed": 2 ** 64}, 400, "seed"),
    ({"messages": ask("hi"), "extra_body": {"glyph_draw": "yes"}}, 400, "glyph_draw must be true or false"),
    ({"messages": ask("hi"), "extra_body": {"glyph_cfg_scale": 1e300}}, 400, "glyph_cfg_scale"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
])
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(client, request_kwargs, status, words):
    settings = {"model": "glyph-tiny", "max_tokens": 4} | request_kwargs
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**settings)
    assert caught.value.status_code == status
    assert words in caught.value.body["message"], caught.value.body
    named = next(iter(k for k in ("temperature", "max_tokens", "seed", "glyph_draw", "glyph_cfg_scale")
                      if k in caught.value.body["message"]), None)
    assert named is None or caught.value.body["param"] == named  # each error names its own parameter
    assert (caught.value.body["code"] == "context_length_exceeded") == (words == "context")  # only when it is so
    assert client.chat.completions.create(model="glyph-tiny", messages=ask("hi"), max_tokens=2).choices


def test_non_finite_numbers_and_deep_nesting_in_raw_json_are_400s(base_url):
    """What the openai client cannot send: JSON's Infinity and NaN, numbers beyond a double, 90,000 brackets,
    a lone UTF-16 surrogate, an integer of 5,000 digits (json.loads refuses it with a plain ValueError)."""
    bodies = ['{"model": "glyph-tiny", "messages": [{"role": "user", "content": "hi"}], "glyph_cfg_scale": %s}' % v
              for v in ("Infinity", "NaN", "1e309")] + ['{"messages": ' + "[" * 90_000 + "]" * 90_000 + "}"]
    bodies.append('{"model": "glyph-tiny", "messages": [{"role": "user", "content": "hi \\ud800"}]}')  # a lone surrogate
    bodies.append('{"model": "glyph-tiny", "messages": [{"role": "user", "content": "hi"}], "seed": %s}' % ("9" * 5000))
    images = ['{"prompt": "a red circle", "glyph_cfg_scale": %s}' % v for v in ("Infinity", "NaN", "1e309")]
    for body in bodies + images:
        path = "images/generations" if "prompt" in body else "chat/completions"
        request = urllib.request.Request(f"{base_url}/{path}", data=body.encode(), method="POST", headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        assert caught.value.code == 400, body[:80]
        assert json.loads(caught.value.read())["error"]["message"]


def test_a_tiny_temperature_samples_like_greedy_instead_of_failing(client):
    """1e-300 passes the range check; dividing logits by it once overflowed to inf - inf and a 500."""
    tiny = client.chat.completions.create(model="glyph-tiny", messages=ask("hello"), temperature=1e-300,
                                          max_tokens=8, seed=1)
    greedy = client.chat.completions.create(model="glyph-tiny", messages=ask("hello"), temperature=0, max_tokens=8)
    assert tiny.choices[0].message.content == greedy.choices[0].message.content


def test_a_wrong_key_and_an_oversized_request_are_refused(base_url):
    wrong = openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    huge = json.dumps({"model": "glyph-tiny", "messages": ask("x" * 300_000)}).encode()
    request = urllib.request.Request(f"{base_url}/chat/completions", data=huge, method="POST",
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 413 and "limit" in json.loads(caught.value.read())["error"]["message"]


def test_sixteen_clients_at_once_each_get_their_own_conversation(client):
    """Each conversation's seeded reply, asked alone, is what that client gets when all 16 ask at once."""
    prompts = [ask(f"what is shape {i}?", RED) if i % 2 else ask(f"say {i}") for i in range(16)]

    def reply(number):
        return client.chat.completions.create(model="glyph-tiny", messages=prompts[number], max_tokens=6,
                                              temperature=1.0, seed=number).choices[0].message.content

    alone = [reply(i) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(reply, range(16)))
    assert together == alone
    assert len(set(alone)) > 1  # the replies differ, so a mix-up would show
