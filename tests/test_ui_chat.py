"""The UI's chat, driven for real: headless Chromium (Debian's, through Playwright) and gradio_client,
against the real app with a tiny random-weight assistant."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image
from playwright.sync_api import expect

from assistant.model import GlyphModel
from data_gen.scene_dataset import write_scene_dataset
from tests.web import ARTIFACTS, free_port
from ui import app
from ui.chat_tab import DRAWING, Responder, _turns

SETTINGS = [False, 0.7, 1.0, 8, 3.0, 0]  # draw, temperature, top-p, max tokens, CFG scale, seed


@pytest.fixture(scope="module")
def model(tiny_assistant):
    return GlyphModel.from_pretrained(tiny_assistant)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scene_dataset(tmp_path_factory.mktemp("chat-ui") / "scenes", 12, seed=2, workers=1)


@pytest.fixture(scope="module")
def drawings(tmp_path_factory):
    return tmp_path_factory.mktemp("drawings")


@pytest.fixture(scope="module")
def app_url(model, scenes, drawings):
    demo = app.build(scenes, model, drawings)
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            allowed_paths=[str(drawings), str(scenes)], css=app.CSS)
    yield url
    demo.close()


def scene_image(scenes: Path) -> Path:
    return sorted((scenes / "images").glob("*.png"))[0]


@pytest.mark.browser
def test_upload_ask_and_the_answer_streams_then_draw(page, scenes, model):
    box = page.get_by_test_id("textbox")
    box.fill("What do you see?")
    page.locator("input[type=file]").first.set_input_files(scene_image(scenes))
    expect(page.locator("img.thumbnail-image")).to_be_visible()
    page.evaluate("""() => { window.seen = [];
      new MutationObserver(() => { const b = document.querySelectorAll('[data-testid="bot"]');
        if (b.length) window.seen.push(b[b.length - 1].innerText); })
      .observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
    page.get_by_test_id("submit-button").click()
    bot = page.get_by_test_id("bot")
    expect(bot.first).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("submit-button")).to_be_visible(timeout=60_000)  # hidden while it generates
    final = bot.last.inner_text()
    partial = {t for t in page.evaluate("window.seen") if t and t != final}
    assert final.strip() and len(partial) >= 2, (final, partial)  # it grew in steps: streamed

    page.get_by_role("button", name="Clear").click()  # a new conversation: the tiny model's context is short
    expect(page.get_by_test_id("bot")).to_have_count(0)
    page.get_by_text("Draw and sampling settings").click()
    page.locator("#draw input[type=checkbox]").check()
    box.fill("a red circle in the top left corner")
    box.press("Enter")
    expect(page.get_by_test_id("user")).to_have_count(1)
    drawn = page.locator('[data-testid="bot"] img').last
    expect(drawn).to_be_visible(timeout=60_000)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=drawn.element_handle())
    served = Image.open(io.BytesIO(page.request.get(drawn.get_attribute("src")).body()))
    side = model.vq.config.image_size
    assert served.size == (side, side)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "ui_chat.png", full_page=True)


@pytest.mark.browser
def test_in_the_browser_a_broken_upload_is_refused_and_the_next_question_is_answered(page, tmp_path):
    broken = tmp_path / "holiday.png"
    broken.write_bytes(b"<html><body>not a picture</body></html>")  # a web page saved under an image's name
    box = page.get_by_test_id("textbox")
    box.fill("What is in this picture?")
    page.locator("input[type=file]").first.set_input_files(broken)
    expect(page.locator("img.thumbnail-image, .thumbnail-item").first).to_be_visible(timeout=30_000)
    page.get_by_test_id("submit-button").click()
    bot = page.get_by_test_id("bot")
    expect(bot.first).to_contain_text("⚠️", timeout=30_000)
    expect(bot.first).to_contain_text("holiday.png")
    expect(page.get_by_test_id("submit-button")).to_be_visible(timeout=60_000)
    box.fill("Hello, how are you?")  # the same chat goes on
    page.get_by_test_id("submit-button").click()
    expect(bot.nth(1)).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("submit-button")).to_be_visible(timeout=60_000)
    # The random-weight model may answer with text and drawings, one bubble each: judge every new bubble.
    answer = [(bubble.inner_text(), bubble.locator("img").count()) for bubble in bot.all()[1:]]
    assert any(text.strip() or images for text, images in answer), answer
    assert not any("⚠️" in text for text, _ in answer), answer
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "ui_chat_after_a_broken_upload.png", full_page=True)


def test_gradio_client_chats_and_draws(app_url, scenes, model):
    client = Client(app_url, verbose=False, analytics_enabled=False)
    job = client.submit({"text": "What do you see?", "files": [handle_file(str(scene_image(scenes)))]}, *SETTINGS,
                        api_name="/respond")
    steps = list(job)
    assert len(steps) >= 2 and isinstance(steps[-1], str) and steps[-1].strip()
    drawn = client.predict({"text": "a blue square", "files": []}, True, *SETTINGS[1:], api_name="/respond")
    images = [m["content"] for m in drawn if str(m["content"]).endswith(".png")]  # the client downloaded them
    assert images and Image.open(images[0]).size == (model.vq.config.image_size,) * 2


def test_bad_uploads_and_empty_messages_get_a_message_not_a_traceback(model, tmp_path):
    respond = Responder(model, tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    replies = list(respond({"text": "what is this?", "files": [str(broken)]}, [], *SETTINGS))
    assert replies == [replies[0]] and replies[0].startswith("⚠️") and "broken.png" in replies[0]
    assert list(respond({"text": "", "files": []}, [], *SETTINGS))[0].startswith("⚠️")
    bad_settings = list(respond({"text": "hi", "files": []}, [], False, -1, 1.0, 8, 3.0, 0))
    assert "temperature" in bad_settings[0]


def test_a_refused_upload_does_not_poison_the_turns_after_it(model, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    respond = Responder(model, tmp_path)
    refusal = list(respond({"text": "what is this?", "files": [str(broken)]}, [], *SETTINGS))[-1]
    history = [{"role": "user", "content": [{"type": "file", "file": {"path": str(broken)}}]},
               {"role": "user", "content": [{"type": "text", "text": "what is this?"}]},
               {"role": "assistant", "content": [{"type": "text", "text": refusal}]}]
    assert _turns(history) == []
    reply = list(respond({"text": "hello", "files": []}, history, *SETTINGS))[-1]
    assert not str(reply).startswith("⚠️"), reply


def test_history_in_the_ui_form_and_the_api_form_gives_the_same_turns(tmp_path):
    picture = str(tmp_path / "a.png")
    from_ui = [{"role": "user", "content": [{"type": "file", "file": {"path": picture}}]},
               {"role": "user", "content": [{"type": "text", "text": "what is it?"}]},
               {"role": "assistant", "content": [{"type": "text", "text": DRAWING}]},
               {"role": "assistant", "content": [{"type": "file", "file": {"path": "drawn.png"}}]}]
    from_api = [{"role": "user", "content": {"path": picture}}, {"role": "user", "content": "what is it?"},
                {"role": "assistant", "content": {"path": "drawn.png"}}]
    expected = [("user", "what is it?", [picture]), ("assistant", "", ["drawn.png"])]
    assert _turns(from_ui) == _turns(from_api) == expected


def test_a_drawing_in_the_history_is_seen_again_by_its_codes(model, tmp_path):
    respond = Responder(model, tmp_path)
    first = list(respond({"text": "a red circle", "files": []}, [], True, *SETTINGS[1:]))[-1]
    path = next(m["content"]["path"] for m in first if isinstance(m["content"], dict))
    history = [{"role": "user", "content": "a red circle"}, {"role": "assistant", "content": {"path": path}}]
    session = respond.session(history)
    assert session.messages[1]["content"][0]["codes"] is respond.codes[path]
    del respond.codes[path]  # a drawing from before a restart is encoded again, to the same grid shape
    assert respond.session(history).messages[1]["content"][0]["codes"].shape == respond.codes[path].shape
