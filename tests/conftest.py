import os
import tempfile

# Read by gradio and huggingface_hub at import time: keep every test offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="glyph-gradio-"))

import pytest


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


@pytest.fixture(scope="session")
def small_scenes(tmp_path_factory):
    """(n, seed, holdout) → a scene dataset of 32 px images, written once a session: what the trainers' tests
    train on."""
    from data_gen.scene_dataset import write_scene_dataset
    from scenes.world import SceneConfig

    written = {}

    def scenes(n: int, seed: int, holdout: float):
        if (n, seed, holdout) not in written:
            written[n, seed, holdout] = write_scene_dataset(tmp_path_factory.mktemp("scenes") / "scenes", n,
                                                            seed=seed, config=SceneConfig(image_size=32),
                                                            holdout=holdout, workers=1)
        return written[n, seed, holdout]

    return scenes


@pytest.fixture(scope="module")
def scenes(request, small_scenes):
    """The scene dataset the requesting test module names in SCENES = (n, seed, holdout)."""
    return small_scenes(*request.module.SCENES)
