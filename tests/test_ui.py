"""The UI, driven for real: headless Chromium (Debian's, through Playwright) and gradio_client."""
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from data_gen.scene_dataset import write_scene_dataset
from ui import app

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("GLYPH_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scene_dataset(tmp_path_factory.mktemp("ui") / "scenes", 40, seed=1, workers=1)


@pytest.fixture(scope="module")
def app_url(scenes):
    demo = app.build(scenes)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, allowed_paths=[str(scenes)])
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        # The resolver rule keeps Chromium fully offline; any non-loopback request would fail loudly.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--disable-gpu", "--disable-quic",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost"])
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    outside = []
    pg.on("request", lambda r: r.url.startswith((app_url, "data:", "blob:")) or outside.append(r.url))
    pg.goto(app_url)
    yield pg
    context.close()
    assert not outside, f"the page reached beyond this machine: {outside}"


@pytest.mark.browser
def test_without_a_model_the_page_says_how_to_chat_and_renders_a_scene(page):
    expect(page.locator("#status")).to_contain_text("glyph ui --model DIR")
    page.get_by_role("button", name="Render a scene").click()
    _, expected_caption, expected_rows = app.render_example(0, 3)
    expect(page.locator("#caption textarea")).to_have_value(expected_caption, timeout=20_000)
    image = page.locator("#scene-image img")
    expect(image).to_be_visible()
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=image.element_handle())
    for row in expected_rows:  # the parser's reading is shown, one row per object
        expect(page.locator("#reading")).to_contain_text(row[0])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "ui_scene_world.png", full_page=True)


@pytest.mark.browser
def test_uploaded_scene_is_read(page, scenes):
    page.get_by_role("tab", name="Read an image").click()
    row = json.loads((scenes / "train.jsonl").read_text().splitlines()[0])
    page.get_by_role("tabpanel").locator("input[type=file][accept='image/*']").set_input_files(scenes / row["image"])
    expect(page.locator("#upload-note")).to_contain_text(f"Read {len(row['objects'])} object(s)", timeout=20_000)
    for obj in row["objects"]:
        expect(page.get_by_role("tabpanel")).to_contain_text(obj["shape"])


def test_gradio_client_drives_the_same_app(app_url):
    client = Client(app_url, verbose=False, analytics_enabled=False)
    image_path, caption, table = client.predict(7, 2, api_name="/render_example")
    image = np.asarray(Image.open(image_path).convert("RGB"))
    assert image.shape == (app.DISPLAY_SIZE, app.DISPLAY_SIZE, 3)
    _, expected_caption, expected_rows = app.render_example(7, 2)
    assert caption == expected_caption and len(table["data"]) == len(expected_rows) == 2


def test_bad_uploads_get_a_message_not_a_traceback(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG not really")
    rows, note = app.read_upload(str(corrupt))
    assert rows == [] and "Could not read broken.png" in note
    wide = tmp_path / "wide.png"
    Image.new("RGB", (80, 40), "white").save(wide)
    rows, note = app.read_upload(str(wide))
    assert rows == [] and "80×40" in note
