"""Bad and unusual images, made here in memory, through every surface: the HTTP API (`glyph serve`), the terminal
chat (`glyph chat`), the Gradio UI (its chat and its Read-an-image tab, called in-process and over the wire with
gradio_client) and `glyph train` (a VQ-VAE's image folder, stage 1/2 chat data).

A bad image is refused with one line that names the input and says what is wrong, with no traceback, and the next
good request on the same surface is answered. A valid but unusual image (16-bit, CMYK, palette, LA, EXIF-rotated,
animated, 1×1, 4000×2) is accepted: decoded to RGB as assistant.images.load_image decodes it, and answered.
Damaged weight files are tested in test_ship.py; here only what the commands print for them.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import pickle
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from gradio_client import Client, handle_file
from PIL import Image

from assistant.config import AssistantConfig
from assistant.images import load_image
from assistant.model import GlyphModel
from assistant.pixels import to_uint8
from ui.server import Assistant, Limits, create_app
from glyph import cli
from tests.web import free_port
from training import train_align, train_vqvae
from training.chat_data import read_chats, tokenize_chats
from training.image_data import load_images
from ui import app, terminal
from ui.chat_tab import Responder

RED, BLUE = (255, 0, 0), (0, 0, 255)
SETTINGS = [False, 0.7, 1.0, 8, 3.0, 0]  # the UI chat's draw, temperature, top-p, max tokens, CFG scale, seed
VQ_SIZE = 32  # the image size of the tiny VQ-VAE trained below


# ---- the images --------------------------------------------------------------------------------------------

def encode(image: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_args)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 30_000) -> bytes:
    """A PNG of a few hundred bytes whose header declares side × side 1-bit pixels (900 M at 30000)."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale, no interlace
    rows = (b"\x00" + bytes((side + 7) // 8)) * 4  # only 4 of the declared rows
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows, 9))
            + png_chunk(b"IEND", b""))


def bad_images() -> dict[str, bytes]:
    """File name → bytes of an input no surface can use."""
    good = encode(noise(32, 32), "PNG")
    corrupt = bytearray(good)
    start = corrupt.index(b"IDAT") + 4
    corrupt[start:start + 40] = b"\xff" * 40  # the compressed pixel data, damaged
    return {
        "random-bytes.png": np.random.default_rng(1).integers(0, 256, 512, dtype=np.uint8).tobytes(),
        "corrupt-pixels.png": bytes(corrupt),
        "truncated.png": good[: len(good) // 2],
        "empty.png": b"",
        "web-page.png": b"<!DOCTYPE html><html><head><title>Not found</title></head><body>404</body></html>\n",
        "drawing-svg.png": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
                           b'<circle cx="8" cy="8" r="6" fill="red"/></svg>\n',
        "bomb-30000x30000.png": bomb_png(),
    }


def odd_images() -> dict[str, bytes]:
    """File name → bytes of a valid image in an unusual form, which every surface must accept."""
    grey16 = Image.fromarray((np.arange(256, dtype=np.uint16).reshape(16, 16) * 257))  # 0..65535
    assert grey16.mode == "I;16"
    cmyk = Image.new("CMYK", (16, 16), (0, 0, 0, 0))
    cmyk.paste((0, 255, 255, 0), (0, 0, 8, 16))  # red on the left
    two_colours = Image.new("RGB", (16, 16), RED)
    two_colours.paste(BLUE, (8, 0, 16, 16))
    palette = two_colours.convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    wide = Image.new("RGB", (24, 12), RED)  # stored on its side: orientation 6 turns it upright, 12 × 24
    wide.paste(BLUE, (12, 0, 24, 12))
    exif = wide.getexif()
    exif[0x0112] = 6
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, (0, 255, 0), BLUE)]
    animation = {"save_all": True, "append_images": frames[1:], "duration": 50, "loop": 0}
    return {
        "grey-16-bit.png": encode(grey16, "PNG"),
        "cmyk.jpg": encode(cmyk, "JPEG", quality=95),
        "palette.png": encode(palette, "PNG"),
        "palette-transparent.png": encode(palette, "PNG", transparency=0),
        "grey-alpha-la.png": encode(Image.new("LA", (16, 16), (40, 100)), "PNG"),
        "exif-rotated.jpg": encode(wide, "JPEG", exif=exif, quality=95),
        "animated.gif": encode(frames[0], "GIF", **animation),
        "animated-apng.png": encode(frames[0], "PNG", **animation),
        "one-pixel.png": encode(Image.new("RGB", (1, 1), RED), "PNG"),
        "wide-4000x2.png": encode(noise(4000, 2), "PNG"),
    }


BAD, ODD = bad_images(), odd_images()
# What each refusal must say (assistant.images' words for it).
WHY = {"random-bytes.png": "not an image file", "corrupt-pixels.png": "truncated or corrupt",
       "truncated.png": "truncated or corrupt", "empty.png": "empty", "web-page.png": "not an image file",
       "drawing-svg.png": "not an image file", "bomb-30000x30000.png": "decompression bomb"}
assert WHY.keys() == BAD.keys()
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif"}


def test_the_odd_images_are_what_they_claim_to_be():
    """The battery itself: each unusual image really has the mode, size and frames it is named for."""
    opened = {name: Image.open(io.BytesIO(data)) for name, data in ODD.items()}
    assert opened["grey-16-bit.png"].mode == "I;16" and opened["cmyk.jpg"].mode == "CMYK"
    assert opened["palette.png"].mode == opened["palette-transparent.png"].mode == "P"
    assert "transparency" in opened["palette-transparent.png"].info and opened["grey-alpha-la.png"].mode == "LA"
    assert opened["exif-rotated.jpg"].getexif()[0x0112] == 6 and opened["exif-rotated.jpg"].size == (24, 12)
    assert opened["animated.gif"].n_frames == opened["animated-apng.png"].n_frames == 3
    assert opened["one-pixel.png"].size == (1, 1) and opened["wide-4000x2.png"].size == (4000, 2)
    bomb = Image.open(io.BytesIO(bomb_png(100)))  # the same construction, at a size PIL opens
    assert bomb.size == (100, 100) and len(BAD["bomb-30000x30000.png"]) < 1000


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every image of the battery as a file, and a good one (good.png)."""
    folder = tmp_path_factory.mktemp("battery")
    for name, data in (BAD | ODD | {"good.png": encode(noise(16, 16, seed=5), "PNG")}).items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def model(tiny_assistant):
    return GlyphModel.from_pretrained(tiny_assistant)


def one_clear_line(message: str, names: str, why: str) -> None:
    """A refusal a person can act on: one line, naming the input, saying what is wrong, no traceback."""
    assert "\n" not in message.strip(), message
    assert names in message and why in message, (names, why, message)
    assert "Traceback" not in message, message


# ---- the HTTP API (glyph serve) ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def http(model):
    with TestClient(create_app(Assistant(model, "glyph-tiny", Limits(max_tokens=8))),
                    raise_server_exceptions=False) as client:
        yield client


def data_url(name: str, data: bytes) -> str:
    return f"data:{MIME[Path(name).suffix]};base64," + base64.b64encode(data).decode()


def ask(text: str, *urls: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": u}} for u in urls]
             + [{"type": "text", "text": text}]}]


def completion(http, messages: list[dict]):
    return http.post("/v1/chat/completions", json={"model": "glyph-tiny", "messages": messages, "max_tokens": 4,
                                                   "seed": 0})


def answered(response) -> str:
    assert response.status_code == 200, response.text[:500]
    choice = response.json()["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    return choice["message"]["content"]


@pytest.mark.parametrize("name", BAD)
def test_http_refuses_a_bad_image_in_one_line_and_answers_the_next_request(http, files, name):
    response = completion(http, ask("what is this?", data_url(name, BAD[name])))
    assert response.status_code == 400, response.text[:500]
    error = response.json()["error"]
    one_clear_line(error["message"], "messages[0].content[0]", WHY[name])
    assert error["message"].count("messages[0].content[0]") == 1
    assert error["code"] == "invalid_image" and error["param"] == "messages[0].content[0]"
    good = data_url("good.png", (files / "good.png").read_bytes())
    answered(completion(http, ask("what is this?", good)))


@pytest.mark.parametrize("name", ODD)
def test_http_answers_an_unusual_image_and_the_conversation_goes_on(http, name):
    question = ask("what is this?", data_url(name, ODD[name]))
    reply = answered(completion(http, question))
    answered(completion(http, question + [{"role": "assistant", "content": reply}] + ask("and its colour?")))


# ---- the terminal chat (glyph chat) ------------------------------------------------------------------------

def glyph_chat(model_dir: Path, lines: list[str], tmp_path: Path) -> str:
    out = io.StringIO()
    code = terminal.main(["--model", str(model_dir), "--save-dir", str(tmp_path / "drawn"), "--max-tokens", "4",
                          "--seed", "0"], stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out)
    assert code == 0
    return out.getvalue()


@pytest.mark.parametrize("name", BAD)
def test_terminal_refuses_a_bad_image_in_one_line_and_the_chat_goes_on(tiny_assistant, files, tmp_path, name):
    path, good = files / name, files / "good.png"
    text = glyph_chat(tiny_assistant, [f"/image {path}", f"/image {good}", "what is this?", "what is this?"],
                      tmp_path)
    assert "Traceback" not in text
    refusals = [line[line.index("[not attached]"):] for line in text.splitlines() if "[not attached]" in line]
    assert len(refusals) == 1, text
    one_clear_line(refusals[0], str(path), WHY[name])
    assert f"[attached] {good}" in text
    # The first question is held back (it is likely about the refused image); asked again, it is answered.
    assert text.count("[not sent]") == 1 and text.count("glyph> ") == 1 and "[not answered]" not in text
    assert text.index("[not sent]") < text.index("glyph> ")


@pytest.mark.parametrize("name", ODD)
def test_terminal_answers_an_unusual_image_and_the_chat_goes_on(tiny_assistant, files, tmp_path, name):
    path = files / name
    text = glyph_chat(tiny_assistant, [f"/image {path}", "what is this?", "and its colour?"], tmp_path)
    assert f"[attached] {path}" in text and "[not attached]" not in text, text
    assert text.count("glyph> ") == 2 and "[not answered]" not in text and "Traceback" not in text, text


# ---- the Gradio UI: the chat's handler, in-process ---------------------------------------------------------

def ui_history(path: Path, text: str, reply) -> list[dict]:
    """The conversation as Gradio's ChatInterface holds it after one turn with an upload."""
    replies = reply if isinstance(reply, list) else [{"role": "assistant", "content": reply}]
    return [{"role": "user", "content": [{"type": "file", "file": {"path": str(path)}}]},
            {"role": "user", "content": [{"type": "text", "text": text}]}, *replies]


def not_a_refusal(reply) -> None:
    assert reply and not str(reply).startswith("⚠️") and "Traceback" not in str(reply), reply


@pytest.mark.parametrize("name", BAD)
def test_ui_chat_refuses_a_bad_upload_in_one_line_and_the_chat_goes_on(model, files, tmp_path, name):
    respond = Responder(model, tmp_path)
    replies = list(respond({"text": "what is this?", "files": [str(files / name)]}, [], *SETTINGS))
    assert len(replies) == 1 and replies[0].startswith("⚠️"), replies
    one_clear_line(replies[0], name, WHY[name])
    history = ui_history(files / name, "what is this?", replies[0])
    not_a_refusal(list(respond({"text": "hello", "files": []}, history, *SETTINGS))[-1])


@pytest.mark.parametrize("name", ODD)
def test_ui_chat_answers_an_unusual_upload_and_the_chat_goes_on(model, files, tmp_path, name):
    respond = Responder(model, tmp_path)
    first = list(respond({"text": "what is this?", "files": [str(files / name)]}, [], *SETTINGS))[-1]
    not_a_refusal(first)
    history = ui_history(files / name, "what is this?", first)
    image = respond.session(history).messages[0]["content"][0]["image"]  # the upload, read again for turn 2
    assert image.mode == "RGB" and image.size == load_image(files / name).size
    not_a_refusal(list(respond({"text": "and its colour?", "files": []}, history, *SETTINGS))[-1])


# ---- the Gradio UI over the wire (gradio_client): the chat and the Read-an-image tab --------------------------

@pytest.fixture(scope="module")
def ui(model, tmp_path_factory):
    drawings = tmp_path_factory.mktemp("drawings")
    demo = app.build(None, model, drawings)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            allowed_paths=[str(drawings)])
    client = Client(url, verbose=False, analytics_enabled=False)
    yield client
    demo.close()


@pytest.fixture()
def wire(ui):
    """The client in a new browser session: the chat keeps one conversation per session, and the tiny model's
    context (256 tokens) holds only a few turns."""
    ui.reset_session()
    return ui


def wire_chat(ui, text: str, *paths: Path):
    return ui.predict({"text": text, "files": [handle_file(str(p)) for p in paths]}, *SETTINGS, api_name="/respond")


@pytest.mark.parametrize("name", BAD)
def test_ui_over_the_wire_refuses_a_bad_upload_and_the_chat_goes_on(wire, files, name):
    refusal = wire_chat(wire, "what is this?", files / name)
    assert isinstance(refusal, str) and refusal.startswith("⚠️"), refusal
    one_clear_line(refusal, name, WHY[name])
    not_a_refusal(wire_chat(wire, "what is this?", files / "good.png"))
    shown, _, note = wire.predict(handle_file(str(files / name)), api_name="/read_upload")
    assert shown is None
    one_clear_line(note, f"Could not read {name}", WHY[name])
    _, _, note = wire.predict(handle_file(str(files / "good.png")), api_name="/read_upload")
    assert not note.startswith("Could not read"), note


@pytest.mark.parametrize("name", ODD)
def test_ui_over_the_wire_answers_an_unusual_upload_and_the_chat_goes_on(wire, files, name):
    not_a_refusal(wire_chat(wire, "what is this?", files / name))
    not_a_refusal(wire_chat(wire, "and its colour?"))  # the upload is in the session's history now
    shown, _, note = wire.predict(handle_file(str(files / name)), api_name="/read_upload")
    assert "\n" not in note.strip() and "Traceback" not in note, note
    width, height = load_image(files / name).size
    if width == height:  # the parser reads square scenes: it reads this one
        assert shown and note.startswith(("Read ", "No objects found")), note
    else:  # it says why it does not, naming the image's real (upright) size
        assert note == f"The parser reads square scene images; this one is {width}×{height}.", note


# ---- glyph train: a VQ-VAE on a folder of images -------------------------------------------------------------

VQ_FLAGS = ["--image-size", str(VQ_SIZE), "--downsample", "8", "--stem", "2", "--channels", "16,32,32", "--groups",
            "8", "--codebook-size", "16", "--code-dim", "4", "--encoder-blocks", "1", "--decoder-blocks", "1",
            "--batch-size", "4", "--eval-images", "4", "--log-every", "1", "--sample-every", "100", "--steps", "1"]


def captured(main, argv: list[str]) -> tuple[int, str]:
    """(exit code, everything written to stderr) of a command's main."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def image_folder(files, tmp_path_factory) -> Path:
    """Good photos, every bad image and every unusual one in one folder."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(10):
        noise(40, 48, seed=10 + i).save(folder / f"zz-good-{i:02d}.png")  # sorted last: a tiny folder's validation
    for name in BAD | ODD:
        shutil.copy(files / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def vq_runs(image_folder, tmp_path_factory) -> dict:
    """`glyph train vqvae` on the folder: without --skip-bad (refused), then with it (trained)."""
    out = tmp_path_factory.mktemp("vq") / "run"
    argv = ["--data", str(image_folder), "--out", str(out), *VQ_FLAGS]
    strict = captured(train_vqvae.main, argv)
    assert not (out / "model.safetensors").exists()
    skipping = captured(train_vqvae.main, argv + ["--skip-bad"])
    return {"strict": strict, "skip": skipping, "trained": (out / "model.safetensors").is_file()}


@pytest.mark.parametrize("name", BAD)
def test_train_vqvae_names_a_bad_image_on_one_line_and_skip_bad_trains_on_the_rest(vq_runs, image_folder, name):
    path = str(image_folder / name)
    for run in ("strict", "skip"):
        code, err = vq_runs[run]
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if f"{path}:" in line]
        assert len(lines) == 1, (run, err)
        one_clear_line(lines[0], path, WHY[name])
    assert vq_runs["strict"][0] == 2 and f"{len(BAD)} image(s) could not be read" in vq_runs["strict"][1]
    assert vq_runs["skip"][0] == 0 and vq_runs["trained"]
    assert f"skipping {len(BAD)} unreadable image(s)" in vq_runs["skip"][1]


@pytest.fixture(scope="module")
def folder_pixels(image_folder) -> dict[str, torch.Tensor]:
    """File name → (3, H, W) uint8 as the VQ-VAE trains on it, from both splits of the folder."""
    pixels = {}
    for split in ("train", "validation"):
        images = load_images(image_folder, split, VQ_SIZE)
        pixels |= {path.name: images.pixels[i] for i, path in enumerate(images.paths)}
    return pixels


@pytest.mark.parametrize("name", ODD)
def test_train_vqvae_trains_on_an_unusual_image_as_the_assistant_sees_it(vq_runs, folder_pixels, image_folder, name):
    assert str(image_folder / name) not in vq_runs["strict"][1] + vq_runs["skip"][1]  # not refused, not skipped
    assert name in folder_pixels, "the image was left out of training"
    expected = to_uint8(load_image(image_folder / name), VQ_SIZE)  # what chat, UI and server decode
    np.testing.assert_array_equal(folder_pixels[name].numpy(), expected, err_msg=name)


# ---- glyph train: stage 1/2 chat data ------------------------------------------------------------------------

def chat_row(image: str, answer: str) -> str:
    return json.dumps({"messages": [
        {"role": "user", "content": [{"type": "image", "path": image},
                                     {"type": "text", "text": "what is in the picture?"}]},
        {"role": "assistant", "content": answer}]})


@pytest.fixture(scope="module")
def chats_file(files, image_folder) -> Path:
    """A messages JSONL file: one chat per battery image, and ten about good images (they come first)."""
    good = [f"zz-good-{i:02d}.png" for i in range(10)]
    rows = [chat_row(name, "a red circle") for name in good + list(BAD) + list(ODD)]
    path = image_folder / "chats.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def align_runs(tiny_assistant, chats_file, tmp_path_factory) -> dict:
    """`glyph train align` (stage 1) on the chats, with the tiny assistant's parts: refused, then with --skip-bad."""
    parts = AssistantConfig.load(tiny_assistant).located_in(tiny_assistant)
    root = tmp_path_factory.mktemp("align")
    argv = ["--data", str(chats_file), "--out", str(root / "run"), "--vision", parts.vision.model_name,
            "--llm", parts.llm.name_or_path, "--vq", parts.vq, "--batch-size", "2", "--holdout", "1",
            "--samples", "1", "--steps", "1", "--precision", "fp32", "--cache-dir", str(root / "cache")]
    strict = captured(train_align.main, argv)
    skipping = captured(train_align.main, argv + ["--skip-bad"])
    return {"strict": strict, "skip": skipping, "trained": (root / "run" / "model.safetensors").is_file()}


@pytest.mark.parametrize("name", BAD)
def test_train_align_names_a_bad_image_row_on_one_line_and_skip_bad_trains_on_the_rest(align_runs, chats_file,
                                                                                     image_folder, name):
    row = 10 + list(BAD).index(name) + 1
    for run in ("strict", "skip"):
        code, err = align_runs[run]
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if str(image_folder / name) in line]
        assert len(lines) == 1, (run, err)
        one_clear_line(lines[0], f"{chats_file} row {row}:", WHY[name])
    assert align_runs["strict"][0] == 2 and f"{len(BAD)} of {10 + len(BAD) + len(ODD)} chat rows are bad" in \
        align_runs["strict"][1]
    assert align_runs["skip"][0] == 0 and align_runs["trained"], align_runs["skip"][1][-2000:]


@pytest.fixture(scope="module")
def chat_features(model, chats_file) -> dict[str, torch.Tensor]:
    """Image name → (N, D) vision features as stages 1 and 2 train on them; the data's bad rows under "bad"."""
    chats = read_chats([chats_file])
    data = tokenize_chats(chats, model, max_length=512)
    features = {"bad": [str(b) for b in data.bad]}
    for example in data.examples:
        image = chats.chats[example.chat].messages[0]["content"][0]["path"]
        features[image.name] = data.features[example.image_rows[0]]
    return features


@pytest.mark.parametrize("name", ODD)
def test_train_align_trains_on_an_unusual_image_as_the_assistant_sees_it(align_runs, chat_features, model,
                                                                        image_folder, name):
    assert str(image_folder / name) not in align_runs["strict"][1] + align_runs["skip"][1]
    assert not [b for b in chat_features["bad"] if name in b] and name in chat_features, chat_features["bad"]
    with torch.no_grad():  # what the chat, the UI and the server feed the model for this file
        expected = model.vision_tower(model.vision_tower.preprocess(load_image(image_folder / name))[None])[0]
    torch.testing.assert_close(chat_features[name], expected.float(), msg=name)


# ---- damaged weights: what each command prints (load_assistant's errors are tested in test_ship.py) --------------

@pytest.mark.parametrize("damage", ["truncated", "empty", "pickle", "invalid json"])
@pytest.mark.parametrize("command", ["chat", "serve", "ui"])
def test_a_damaged_assistant_is_one_line_and_exit_2_from_every_command(tiny_assistant, tmp_path, capsys, damage,
                                                                       command):
    assistant = tmp_path / "assistant"
    shutil.copytree(tiny_assistant, assistant)
    damaged = assistant / ("config.json" if damage == "invalid json" else "model.safetensors")
    data = damaged.read_bytes()
    damaged.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "invalid json": b'{"vq": "vq",',
                         "pickle": pickle.dumps({"projector.weight": [1.0]})}[damage])
    assert cli.main([command, "--model", str(assistant)]) == 2
    captured_out = capsys.readouterr()
    assert "Traceback" not in captured_out.out + captured_out.err
    one_clear_line(captured_out.err, str(damaged), "cannot be read")
    assert captured_out.err.startswith(f"glyph {command}: "), captured_out.err


# ---- damaged weights reaching training and evaluation ----------------------------------------------------------

def damage_file(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b""}[how])


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_weights_in_glyph_train_and_glyph_eval_are_one_line(tiny_assistant, tmp_path, capsys, damage):
    """A damaged assistant given to `train instruct --init` and `eval assistant`, and a damaged VQ-VAE given to
    `eval vq`: each names the file, exit 2 (SafetensorError is no ValueError: these commands once let it out)."""
    from assistant.config import AssistantConfig
    from data_gen.scene_dataset import write_scene_dataset

    assistant = tmp_path / "assistant"
    shutil.copytree(tiny_assistant, assistant)
    damage_file(assistant / "model.safetensors", damage)
    vq = tmp_path / "vq"
    shutil.copytree(AssistantConfig.load(tiny_assistant).located_in(tiny_assistant).vq, vq)
    damage_file(vq / "model.safetensors", damage)
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": "hello"}]}) + "\n")
    runs = {
        "train instruct": (["train", "instruct", "--init", str(assistant), "--data", str(chats), "--out",
                            str(tmp_path / "run")], assistant / "model.safetensors"),
        "eval assistant": (["eval", "assistant", "--model", str(assistant), "--data",
                            str(write_scene_dataset(tmp_path / "scenes", n=40, seed=1))],
                           assistant / "model.safetensors"),
        "eval vq": (["eval", "vq", "--model", str(vq), "--data", str(tmp_path)], vq / "model.safetensors"),
    }
    for command, (argv, damaged) in runs.items():
        capsys.readouterr()
        assert cli.main(argv) == 2, command
        err = re.split(r"[\r\n]", capsys.readouterr().err.strip())[-1]  # after the LLM's loading progress bar
        assert err.startswith(f"glyph {command}: "), err
        one_clear_line(err, str(damaged), "cannot be read")


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_language_model_is_one_line_naming_its_file(tiny_assistant, tmp_path, capsys, damage):
    """The frozen LLM's own safetensors, named by the assistant's config.json, damaged: `glyph chat` names it."""
    llm_folder = Path(json.loads((tiny_assistant / "config.json").read_text())["llm"]["name_or_path"])
    llm = tmp_path / "llm"
    shutil.copytree(llm_folder, llm)
    damage_file(llm / "model.safetensors", damage)
    assistant = tmp_path / "assistant"
    shutil.copytree(tiny_assistant, assistant)
    config = json.loads((assistant / "config.json").read_text())
    config["llm"]["name_or_path"] = str(llm)
    (assistant / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert cli.main(["chat", "--model", str(assistant)]) == 2
    err = re.split(r"[\r\n]", capsys.readouterr().err.strip())[-1]
    assert err.startswith("glyph chat: "), err
    one_clear_line(err, str(llm / "model.safetensors"), "cannot be read")
