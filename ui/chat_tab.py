"""The UI's chat: a Gradio multimodal ChatInterface over assistant.chat.ChatSession.

    responder = Responder(model, out_dir)     # the ChatInterface's fn (Gradio calls it with the whole history)
    chat_interface(responder, examples)       # inside a gr.Blocks; the API endpoint is /respond

Gradio keeps each browser session's history and hands it over with every message, so every call rebuilds
a ChatSession from that history: retry, undo and clear (Gradio's own buttons) need no state of ours, and
sessions never see each other's turns. Images the assistant drew are PNG files in `out_dir`; their VQ
codes are remembered by path so later turns see exactly what was drawn (an unknown picture in an
assistant turn is encoded again with the VQ-VAE).
"""
from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import torch

from assistant.chat import ChatSession
from assistant.generation import Finished, ImageDone, TextDelta
from assistant.images import ImageError, load_image
from assistant.pixels import to_tensor
from scenes.questions import ask, drawing_request
from scenes.world import Scene, scene_rng
from ui.sampling_form import form_defaults, sampling_of_form

DRAWING = "Drawing…"
RANDOM_SEED = -1  # the seed box's way of saying "none": a new draw each reply
EXAMPLE_KINDS = ("color", "count", "position")  # questions about dataset scenes, after "Describe this image."


class Responder:
    """ChatInterface's fn: (message, history, draw, temperature, top_p, max_tokens, cfg_scale, seed) → replies."""

    def __init__(self, model, out_dir: Path, system_prompt: str | None = None):
        self.model, self.out_dir, self.system_prompt = model, Path(out_dir), system_prompt
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.codes: dict[str, torch.Tensor] = {}  # drawn image path → its (h, w) VQ codes
        self.lock = threading.Lock()  # one generation at a time: the model is shared by every session

    def __call__(self, message, history, draw, temperature, top_p, max_tokens, cfg_scale,
                 seed) -> Iterator[str | list[dict]]:
        text, files = _message_parts(message)
        try:
            settings = sampling_of_form(temperature, top_p, max_tokens, cfg_scale,
                                        None if seed is None or seed < 0 else seed)
            images = [load_image(path, name=Path(path).name) for path in files]
            session = self.session(history)
        except (ImageError, ValueError, OSError) as error:
            yield f"⚠️ {error}"
            return
        if not text and not images and not draw:
            yield "⚠️ Type a message, attach an image, or tick Draw."
            return
        yield from self.stream(session.send(text, images=images, settings=settings, draw=bool(draw)), bool(draw))

    def stream(self, events, draw: bool) -> Iterator[str | list[dict]]:
        parts: list[str | dict] = [DRAWING] if draw else []
        with self.lock:
            try:
                for event in events:
                    if isinstance(event, TextDelta):
                        _add_text(parts, event.text)
                    elif isinstance(event, ImageDone):
                        parts = [p for p in parts if p != DRAWING] + [{"path": self.save(event)}]
                    elif isinstance(event, Finished) and event.reason == "length":
                        _add_text(parts, " …(cut off at the max tokens setting)")
                    yield _bubbles(parts)
            except ValueError as error:  # the conversation outgrew the model's context, or a bad image
                parts = [p for p in parts if p != DRAWING] + [f"⚠️ {error}"]
        yield _bubbles(parts or ["(no reply)"])

    def save(self, drawn: ImageDone) -> str:
        path = self.out_dir / f"drawn-{uuid.uuid4().hex[:12]}.png"
        drawn.image.save(path)
        self.codes[str(path)] = drawn.codes
        return str(path)

    def session(self, history: list) -> ChatSession:
        """A ChatSession holding the conversation Gradio shows (normalised from the UI's or the API's form)."""
        messages = []
        for role, text, paths in _turns(history):
            if role == "user":
                content = [{"type": "image", "image": load_image(p, name=Path(p).name)} for p in paths]
            else:
                content = [{"type": "image", "codes": self.codes_of(p)} for p in paths]
            messages.append({"role": role, "content": content + ([{"type": "text", "text": text}] if text else [])})
        return ChatSession.from_messages(self.model, messages, self.system_prompt)

    def codes_of(self, path: str) -> torch.Tensor:
        if path not in self.codes:  # a picture this process did not draw (e.g. after a restart): encode it
            image = load_image(path, name=Path(path).name)
            self.codes[path] = self.model.vq.encode(to_tensor([image], self.model.vq.config.image_size))[0]
        return self.codes[path]


def chat_interface(responder: Responder, examples: list[list] | None = None) -> gr.ChatInterface:
    # render=False: the ChatInterface places them, inside its settings accordion
    draw = gr.Checkbox(False, label="Draw: the reply is a picture", elem_id="draw", render=False)

    def respond(message, history, *options):  # the API endpoint is named after this function: /respond
        yield from responder(message, history, *options)

    return gr.ChatInterface(
        fn=respond, multimodal=True, additional_inputs=[draw, *setting_inputs()],
        additional_inputs_accordion=gr.Accordion("Draw and sampling settings", open=False, render=False),
        textbox=gr.MultimodalTextbox(file_types=["image"], file_count="multiple", sources=["upload"],
                                     placeholder="Ask about a scene (attach or drop images), or ask for a drawing",
                                     render=False),
        chatbot=gr.Chatbot(height=520, label="Glyph", elem_id="chatbot", render=False),
        examples=examples or None, example_labels=[_label(e) for e in examples] if examples else None,
        cache_examples=False, save_history=False, fill_height=False)


def setting_inputs() -> list:
    """The settings panel, in the order of Responder's parameters after `draw`; each starts at Sampling's default."""
    temperature, top_p, max_tokens, cfg_scale, seed = panel_defaults()
    return [
        gr.Slider(0, 2, value=temperature, step=0.05, label="Temperature (0 = greedy)", render=False),
        gr.Slider(0.05, 1, value=top_p, step=0.05, label="Top-p", render=False),
        gr.Slider(1, 512, value=max_tokens, step=1, label="Max tokens", render=False),
        gr.Slider(1, 8, value=cfg_scale, step=0.5, label="CFG scale (drawings; 1 = none)", render=False),
        gr.Number(seed, precision=0, label=f"Seed ({RANDOM_SEED} = random)", render=False),
    ]


def panel_defaults() -> tuple:
    """(temperature, top-p, max tokens, CFG scale, seed) as the settings panel shows them: Sampling's defaults."""
    *values, seed = form_defaults()
    return (*values, RANDOM_SEED if seed is None else seed)


def chat_examples(data_dir: Path | None) -> list[list]:
    """One-click examples: questions the scene oracle asks about dataset scenes, and drawing requests."""
    index = data_dir / "train.jsonl" if data_dir else None
    if index is None or not index.is_file():
        return []
    rows = [json.loads(line) for line in index.read_text().splitlines()[:len(EXAMPLE_KINDS) + 3]]
    rng = scene_rng(0, 0)
    questions = ["Describe this image."]
    questions += [ask(Scene.from_dict(row), rng, kind).question for row, kind in zip(rows[1:], EXAMPLE_KINDS)]
    asked = [[{"text": q, "files": [str(data_dir / r["image"])]}, False, *panel_defaults()]
             for q, r in zip(questions, rows)]
    requests = [drawing_request(Scene.from_dict(r), rng) for r in rows[len(questions):][:2]]
    return asked + [[{"text": text, "files": []}, True, *panel_defaults()] for text in requests]


# ---- Gradio's message forms -------------------------------------------------------------------------------

def _message_parts(message) -> tuple[str, list[str]]:
    if isinstance(message, str):
        return message.strip(), []
    files = [_path(f) for f in (message or {}).get("files", [])]
    return str((message or {}).get("text") or "").strip(), [f for f in files if f]


def _turns(history: list) -> list[tuple[str, str, list[str]]]:
    """(role, text, file paths) per turn; Gradio splits a turn into several messages (files, then text)."""
    turns: list[tuple[str, str, list[str]]] = []
    for message in history or []:
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            continue
        texts, paths = _content_parts(message.get("content"))
        if role == "assistant" and texts and not paths and all(t.startswith("⚠️") for t in texts):
            if turns and turns[-1][0] == "user":
                turns.pop()  # a refused turn (a bad upload, a bad setting) is not part of the conversation
            continue
        texts = [t for t in texts if t != DRAWING and not t.startswith("⚠️")]
        if turns and turns[-1][0] == role:
            _, text, earlier = turns.pop()
            texts, paths = [text, *texts] if text else texts, earlier + paths
        turns.append((role, "".join(texts).strip(), paths))
    return [t for t in turns if t[1] or t[2]]


def _content_parts(content) -> tuple[list[str], list[str]]:
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if isinstance(content, (list, tuple)):
        texts, paths = [], []
        for part in content:
            more_texts, more_paths = _content_parts(part)
            texts, paths = texts + more_texts, paths + more_paths
        return texts, paths
    if isinstance(content, dict):
        if content.get("type") == "text":
            return [str(content.get("text", ""))], []
        path = _path(content)
        return ([], [path]) if path else ([], [])
    path = _path(content)  # a gr.Image / gr.File component or a FileData object
    return ([], [path]) if path else ([], [])


def _path(item) -> str | None:
    """The file path in a path string, a {"path"}/{"file": {"path"}} dict, or a component/FileData object."""
    if item is None or isinstance(item, str):
        return item
    if isinstance(item, dict):
        inner = item.get("file") or item.get("value") or item
        if isinstance(inner, str):
            return inner
        return inner.get("path") if isinstance(inner, dict) else None
    return getattr(item, "path", None) or _path(getattr(item, "value", None))


def _label(example: list) -> str:
    message, draw = example[0], example[1]
    return ("🎨 " if draw else "🖼️ " if message.get("files") else "") + message["text"]


def _add_text(parts: list, text: str) -> None:
    if parts and isinstance(parts[-1], str) and parts[-1] != DRAWING:
        parts[-1] += text
    else:
        parts.append(text)


def _bubbles(parts: list) -> str | list[dict]:
    """One text part streams as a plain string; text and images become several assistant bubbles."""
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    return [{"role": "assistant", "content": p} for p in parts if p != ""]
