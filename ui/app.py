"""Glyph's Gradio UI, served on 127.0.0.1.

    glyph ui [--model runs/scenes-tiny/instruct] [--data runs/scenes-tiny/scenes] [--port 7860] [--host 127.0.0.1]

Tabs: Chat (a multimodal chat with the assistant: images in by upload or drag and drop, replies streamed,
drawings inline; see ui/chat_tab.py), Scene world (render a scene, its caption and what the scene parser
reads), Read an image (the parser on an upload) and, with --data, Dataset. Without --model it chats with
the assistant shipped in models/scenes-smollm2; with --no-model the page says how to start it with one.
No CDN, no analytics: nothing leaves the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

# Read by gradio at import time: no telemetry, no hub calls, nothing leaves the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from assistant.images import ImageError, load_image  # noqa: E402
from scenes.captions import describe  # noqa: E402
from scenes.render import render_scene  # noqa: E402
from scenes.parser import read_scene  # noqa: E402
from scenes.world import SceneConfig, sample_scene, scene_rng  # noqa: E402
from ui.loader import add_model_option, load_for  # noqa: E402

NO_MODEL = """\
**No assistant loaded, so there is no chat.** Start the UI with one: `glyph ui` chats with the assistant
shipped in `models/scenes-smollm2`, `glyph ui --model DIR` with another trained one (`glyph build scenes-tiny
--out runs/scenes-tiny` makes one in `runs/scenes-tiny`), and `make demo` opens the shipped one. Meanwhile
this page shows the scene world and the scene parser."""

# Drawings are the model's size (64-72 px for scene models): show them larger, crisp. For launch(css=).
CSS = ("#chatbot img { width: 192px !important; height: 192px !important; object-fit: contain; "
       "image-rendering: pixelated; }")
DISPLAY_SIZE = 256  # scenes are 64–72 px; show them larger, with crisp pixels
READING_HEADERS = ["shape", "color", "size", "row", "col"]


def render_example(seed: float, objects: float) -> tuple[Image.Image, str, list[list]]:
    """A random scene for `seed` with `objects` objects, its caption, and what the parser reads in it."""
    count = int(objects)
    rng = scene_rng(int(seed), 0)
    scene = sample_scene(rng, SceneConfig(min_objects=count, max_objects=count))
    image = render_scene(scene)
    return _enlarge(image), describe(scene, rng), _reading_rows(image)


def read_upload(path: str | None) -> tuple[Image.Image | None, list[list], str]:
    """The uploaded image (enlarged), what the parser reads in it, and a note for the person.

    The upload arrives as a file path and is decoded here (not by Gradio's Image component), so an empty file,
    a decompression bomb or a web page named .png gets a note instead of Gradio's generic error."""
    if not path:
        return None, [], "Upload a scene image to read it."
    try:
        image = load_image(path, name=Path(path).name)
    except (ImageError, OSError) as error:
        return None, [], f"Could not read {Path(path).name}: {error}"
    if image.width != image.height:
        return None, [], f"The parser reads square scene images; this one is {image.width}×{image.height}."
    rows = _reading_rows(image)
    return _enlarge(image), rows, f"Read {len(rows)} object(s)." if rows else "No objects found."


def _reading_rows(image: Image.Image) -> list[list]:
    reading = read_scene(image)
    rows = [[o.shape, o.color, o.size, o.row, o.col] for o in sorted(reading.objects, key=lambda o: (o.row, o.col))]
    return rows + [[f"unknown: {u.reason}", "", "", "", ""] for u in reading.unknown]


def _enlarge(image: Image.Image) -> Image.Image:
    return image.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.NEAREST)


def _dataset_examples(data_dir: Path, limit: int = 24) -> list[tuple[str, str]]:
    index = data_dir / "train.jsonl"
    if not index.exists():
        return []
    with index.open() as lines:
        rows = [json.loads(line) for _, line in zip(range(limit), lines)]
    return [(str(data_dir / row["image"]), row["caption"]) for row in rows]


def build(data_dir: str | Path | None = None, model=None, out_dir: str | Path | None = None) -> gr.Blocks:
    """The whole page; with a model (and a folder for its drawings) it opens on the chat."""
    with gr.Blocks(title="Glyph") as demo:
        gr.Markdown("# Glyph\nA multimodal chat assistant that sees and draws.")
        if model is None:
            gr.Markdown(NO_MODEL, elem_id="status")
        else:
            from ui.chat_tab import Responder, chat_examples, chat_interface

            with gr.Tab("Chat"):
                chat_interface(Responder(model, Path(out_dir)), chat_examples(Path(data_dir) if data_dir else None))
        with gr.Tab("Scene world"):
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed")
                objects = gr.Slider(1, 4, value=3, step=1, label="Objects")
            render_button = gr.Button("Render a scene", variant="primary")
            with gr.Row():
                scene_image = gr.Image(label="Scene", type="pil", height=DISPLAY_SIZE, elem_id="scene-image",
                                       interactive=False)
                with gr.Column():
                    caption = gr.Textbox(label="Caption", elem_id="caption")
                    reading = gr.Dataframe(headers=READING_HEADERS, label="What the parser reads",
                                           elem_id="reading", interactive=False)
            render_button.click(render_example, [seed, objects], [scene_image, caption, reading])
        with gr.Tab("Read an image"):
            upload = gr.File(label="A scene image", file_types=["image"], type="filepath", elem_id="upload")
            with gr.Row():
                uploaded = gr.Image(label="Uploaded", type="pil", height=DISPLAY_SIZE, interactive=False)
                with gr.Column():
                    note = gr.Markdown(elem_id="upload-note")
                    upload_reading = gr.Dataframe(headers=READING_HEADERS, label="What the parser reads",
                                                  interactive=False)
            upload.change(read_upload, upload, [uploaded, upload_reading, note])
        examples = _dataset_examples(Path(data_dir)) if data_dir else []
        if examples:
            with gr.Tab("Dataset"):
                gr.Gallery(examples, columns=6, label=f"Scenes from {data_dir}", allow_preview=True)
    return demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glyph ui", description="Start Glyph's Gradio UI.")
    add_model_option(parser)
    parser.add_argument("--no-model", action="store_true", help="start without an assistant (no Chat tab)")
    parser.add_argument("--data", help="a scene dataset directory to show examples from")
    parser.add_argument("--max-concurrency", type=int, default=2, help="requests served at once (others queue)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model, drawings = None, Path(os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir())) / "glyph-drawings"
    if not args.no_model:
        model = load_for("glyph ui", args.model, args.int8)
        if model is None:
            return 2
    demo = build(args.data, model, drawings)
    allowed = [str(drawings)] + ([str(Path(args.data).resolve())] if args.data else [])
    demo.queue(default_concurrency_limit=args.max_concurrency)
    print(f"Glyph UI: http://{args.host}:{args.port}  (Ctrl+C stops it)", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, quiet=True, allowed_paths=allowed, css=CSS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
