"""The README's chat screenshot: the shipped assistant in the real UI, driven by headless Chromium.

    .venv/bin/python docs/screenshot_chat.py [--model DIR] [--out docs/chat.png]

It renders a few held-out scenes, starts the UI on the assistant (the shipped one unless --model), uploads
a scene, asks a question, waits for the streamed answer, asks a follow-up about the same scene, and saves
the page. It prints the scene's contents and both replies, so the picture can be checked against them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="glyph-gradio-"))

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUESTIONS = ("What colour is the square?", "And where is it?")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "chat.png")
    p.add_argument("--scene", type=int, default=0, help="which held-out scene with a square to show")
    args = p.parse_args(argv)
    from playwright.sync_api import expect, sync_playwright

    from assistant.model import load_assistant
    from data_gen.scene_dataset import write_scene_dataset
    from tests.web import CHROMIUM, CHROMIUM_ARGS, free_port
    from training.eval_assistant import load_scenes
    from ui import app

    root = Path(tempfile.mkdtemp(prefix="glyph-shot-"))
    scenes = write_scene_dataset(root / "scenes", n=400, seed=2027)
    with_square = [s for s in load_scenes(scenes, "test", 20)
                   if sum(o.shape == "square" for o in s.scene.objects) == 1]
    item = with_square[args.scene]
    print("scene:", "; ".join(f"{o.size} {o.color} {o.shape} at row {o.row}, col {o.col}"
                               for o in item.scene.objects))
    demo = app.build(scenes, load_assistant(args.model), root / "drawings")
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            allowed_paths=[str(root)], css=app.CSS)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            for turn, question in enumerate(QUESTIONS):
                page.get_by_test_id("textbox").fill(question)
                if turn == 0:
                    page.locator("input[type=file]").first.set_input_files(str(item.image))
                    expect(page.locator("img.thumbnail-image").first).to_be_visible(timeout=30_000)
                page.get_by_test_id("submit-button").click()
                expect(page.get_by_test_id("bot")).to_have_count(turn + 1, timeout=120_000)
                expect(page.get_by_test_id("submit-button")).to_be_visible(timeout=120_000)
                print(f"Q: {question}\nA: {page.get_by_test_id('bot').nth(turn).inner_text()}")
            page.screenshot(path=str(args.out), full_page=False)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
