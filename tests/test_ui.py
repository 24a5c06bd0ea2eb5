"""The UI, driven for real: headless Chromium (Debian's, through Playwright) and gradio_client."""
import json

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image
from playwright.sync_api import expect

from data_gen.scene_dataset import write_scene_dataset
from tests.web import ARTIFACTS, free_port
from ui import app


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
    page.get_by_role("tabpanel").locator("#upload input[type=file]").set_input_files(scenes / row["image"])
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
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9_000, 9_000)).save(bomb)  # 81 megapixels in a few kilobytes
    for name, data in (("broken.png", b"\x89PNG not really"), ("empty.png", b""),
                       ("page.png", b"<!doctype html><html><body>hi</body></html>"), ("bomb.png", bomb.read_bytes())):
        upload = tmp_path / name
        upload.write_bytes(data)
        shown, rows, note = app.read_upload(str(upload))
        assert shown is None and rows == [] and f"Could not read {name}" in note, note
    wide = tmp_path / "wide.png"
    Image.new("RGB", (80, 40), "white").save(wide)
    shown, rows, note = app.read_upload(str(wide))
    assert rows == [] and "80×40" in note
