"""What the three surfaces share: one loader, one way from history to a ChatSession, Sampling's defaults, and
one place that decides guidance."""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from assistant.chat import ChatSession
from assistant.generation import ImageDone, Sampling, draw_all, is_guided
from assistant.model import GlyphModel
from assistant.pixels import to_tensor
from ui.api_requests import Limits, conversation_of, sampling_of
from ui.sampling_form import add_sampling_options, form_defaults, sampling_of_flags

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tiny_assistant):
    return GlyphModel.from_pretrained(tiny_assistant)


@pytest.fixture()
def picture(tmp_path) -> Path:
    path = tmp_path / "scene.png"
    Image.new("RGB", (20, 20), (0, 160, 60)).save(path)
    return path


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def same_messages(left: list[dict], right: list[dict]) -> bool:
    """Equal Hugging Face messages, comparing VQ codes as tensors and images by their pixels."""
    def plain(part):
        if not isinstance(part, dict):
            return part
        return {k: v.tolist() if isinstance(v, torch.Tensor) else v.tobytes() if isinstance(v, Image.Image) else v
                for k, v in part.items()}
    return [(m["role"], [plain(p) for p in m["content"]]) for m in left] == \
        [(m["role"], [plain(p) for p in m["content"]]) for m in right]


def test_from_messages_gives_back_a_sessions_own_conversation(model, picture):
    session = ChatSession(model, "be brief")
    list(session.send("what is this?", images=[picture], settings=Sampling(temperature=0, max_new_tokens=3)))
    list(session.send("a red circle", settings=Sampling(temperature=1.0, seed=0, max_new_tokens=2), draw=True))
    assert any(p["type"] == "image" and "codes" in p for p in session.messages[-1]["content"])
    again = ChatSession.from_messages(model, session.messages, session.system_prompt)
    assert same_messages(again.messages, session.messages) and again.system_prompt == "be brief"
    assert torch.equal(again.next_prompts(3.0)[0].input_ids, session.next_prompts(3.0)[0].input_ids)


def test_a_drawing_sent_back_as_pixels_is_read_back_into_its_codes(model):
    drawn = next(e for e in ChatSession(model).send("x", settings=Sampling(seed=1, max_new_tokens=1), draw=True)
                 if isinstance(e, ImageDone))
    restored = ChatSession.from_messages(model, [{"role": "user", "content": "draw"},
                                                 {"role": "assistant", "content": [{"type": "image",
                                                                                    "image": drawn.image}]}])
    part = restored.messages[1]["content"][0]
    assert part["image"] is drawn.image
    assert torch.equal(part["codes"], model.vq.encode(to_tensor([drawn.image], model.vq.config.image_size))[0])


def test_a_message_of_neither_the_user_nor_the_assistant_is_refused_by_name(model):
    with pytest.raises(ValueError, match="message 1 .* system_prompt"):
        ChatSession.from_messages(model, [{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}])


def test_the_ui_and_the_server_build_the_same_session_from_the_same_conversation(model, picture, tmp_path):
    """The UI's Gradio history and the server's OpenAI messages of one conversation (a question about an upload,
    a drawn reply) give the same prompt: the drawing the UI has not seen is read back from its pixels, as the
    server reads back the data URL it sent."""
    from ui.chat_tab import Responder

    drawing = tmp_path / "drawn.png"
    Image.new("RGB", (model.vq.config.image_size,) * 2, (200, 0, 0)).save(drawing)
    from_ui = Responder(model, tmp_path / "out").session(
        [{"role": "user", "content": {"path": str(picture)}}, {"role": "user", "content": "what is it?"},
         {"role": "assistant", "content": {"path": str(drawing)}}, {"role": "assistant", "content": "a scene"}])
    _, earlier, last = conversation_of(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(picture)}},
                                      {"type": "text", "text": "what is it?"}]},
         {"role": "assistant", "content": f"\n![image 1]({data_url(drawing)})\na scene"},  # a drawn reply
         {"role": "user", "content": "and now?"}], Limits())
    from_server = ChatSession.from_messages(model, earlier)
    ui_prompt, server_prompt = from_ui.next_prompts(1.0)[0], from_server.next_prompts(1.0)[0]
    assert torch.equal(ui_prompt.input_ids, server_prompt.input_ids)
    assert torch.equal(ui_prompt.image_features, server_prompt.image_features)
    assert last == {"role": "user", "text": "and now?", "images": []}


def test_every_surface_starts_from_samplings_defaults():
    parser = argparse.ArgumentParser()
    add_sampling_options(parser)
    library = Sampling()
    assert sampling_of_flags(parser.parse_args([])) == library
    assert sampling_of({}, Limits()) == library
    assert form_defaults() == (library.temperature, library.top_p, library.max_new_tokens, library.cfg_scale, None)
    assert form_defaults()[2] == 256  # the UI once started at 128 tokens against the library's 256


CHANGED_DEFAULTS = """
import dataclasses, json
import assistant.generation as generation

@dataclasses.dataclass(frozen=True)
class Changed(generation.Sampling):  # the library with other defaults, in place before any surface is imported
    temperature: float = 0.25
    top_p: float = 0.5
    max_new_tokens: int = 77
    cfg_scale: float = 1.5
    seed: int | None = 11

generation.Sampling, generation.DEFAULT_SAMPLING = Changed, Changed()

import argparse
from ui import chat_tab, sampling_form
from ui.api_requests import Limits, sampling_of

parser = argparse.ArgumentParser()
sampling_form.add_sampling_options(parser)
flags = parser.parse_args([])
api = sampling_of({}, Limits())
print(json.dumps({"cli": [flags.temperature, flags.top_p, flags.max_tokens, flags.cfg_scale, flags.seed],
                  "ui": [component.value for component in chat_tab.setting_inputs()],
                  "examples": list(chat_tab.panel_defaults()),
                  "api": [api.temperature, api.top_p, api.max_new_tokens, api.cfg_scale, api.seed]}))
"""


def test_a_default_changed_in_sampling_reaches_the_flags_the_sliders_and_the_api():
    done = subprocess.run([sys.executable, "-c", CHANGED_DEFAULTS], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {surface: [0.25, 0.5, 77, 1.5, 11] for surface in ("cli", "ui", "examples", "api")}


def test_guidance_is_decided_by_the_scale_alone(model):
    assert is_guided(3.0) and is_guided(0.0) and not is_guided(1.0)
    session = ChatSession(model)
    session.messages.append({"role": "user", "content": "draw a red circle"})
    assert session.next_prompts(1.0)[1] is None and session.next_prompts(3.0)[1] is not None
    prompt, unconditional = session.next_prompts(3.0)
    at_one = Sampling(temperature=1.0, cfg_scale=1.0)
    given = draw_all(model, [prompt], [unconditional], at_one, seeds=[4])[0].codes
    assert torch.equal(given, draw_all(model, [prompt], None, at_one, seeds=[4])[0].codes)


@pytest.mark.parametrize("module, command", [("ui.terminal", "glyph chat"), ("ui.app", "glyph ui"),
                                             ("ui.server", "glyph serve")])
def test_each_surface_says_in_one_line_why_its_model_did_not_load(module, command, tmp_path, capsys):
    main = __import__(module, fromlist=["main"]).main
    assert main(["--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{command}: ") and err.count("\n") == 1 and "holds no assistant" in err
