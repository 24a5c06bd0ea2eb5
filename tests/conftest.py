import os
import tempfile

# Read by gradio and huggingface_hub at import time: keep every test offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="glyph-gradio-"))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_assistant(tmp_path_factory):
    """A tiny random-weight assistant saved to disk, as `glyph train instruct` leaves one: its directory."""
    import torch

    from assistant.model import GlyphModel
    from tests.tiny_parts import assistant_config, build_parts

    root = tmp_path_factory.mktemp("tiny-assistant")
    torch.manual_seed(0)
    return GlyphModel.build(assistant_config(build_parts(root))).save_pretrained(root / "assistant")


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium through Playwright (Playwright's own browser download cannot work offline)."""
    from playwright.sync_api import sync_playwright

    from tests.web import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    """A page on the test module's `app_url`; the test fails if the page reached beyond this machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    pg = context.new_page()
    outside = []
    pg.on("request", lambda r: r.url.startswith((app_url, "data:", "blob:")) or outside.append(r.url))
    pg.goto(app_url)
    yield pg
    context.close()
    assert not outside, f"the page reached beyond this machine: {outside}"
