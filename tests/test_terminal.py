"""`glyph chat`: the terminal chat, fed lines as a person would type them."""
from __future__ import annotations

import io

import pytest

from PIL import Image

from ui import terminal
from ui.loader import load_for


def chat(model_dir, lines: list[str], tmp_path, *extra: str) -> str:
    out = io.StringIO()
    code = terminal.main(["--model", str(model_dir), "--save-dir", str(tmp_path / "drawn"), "--max-tokens", "4",
                          "--seed", "0", *extra], stdin=io.StringIO("".join(f"{line}\n" for line in lines)),
                         stdout=out)
    assert code == 0
    return out.getvalue()


def test_a_conversation_with_an_image_a_drawing_and_the_commands(tiny_assistant, tmp_path):
    scene = tmp_path / "scene.png"
    Image.new("RGB", (16, 16), (0, 0, 255)).save(scene)
    text = chat(tiny_assistant, ["/image " + str(scene), "what is this?", "/draw a red circle", "/undo", "/reset",
                                 "/help", "/nonsense", "hello", "/quit", "never read"], tmp_path)
    assert f"[attached] {scene}" in text
    assert text.count("glyph> ") == 3  # three replies: the question, the drawing, hello
    drawn = sorted((tmp_path / "drawn").glob("*.png"))
    assert drawn and f"[image: {drawn[0]}]" in text
    assert Image.open(drawn[0]).size[0] == Image.open(drawn[0]).size[1]
    assert "[undone]" in text and "[reset]" in text and "/draw TEXT" in text and "[unknown command] /nonsense" in text


def test_bad_images_are_refused_and_the_chat_goes_on(tiny_assistant, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    text = chat(tiny_assistant, ["how many shapes?", "how many shapes?"], tmp_path, "--image", str(broken),
                "--image", str(tmp_path / "gone.png"))
    assert text.count("[not attached]") == 2 and "broken.png" in text and "gone.png" in text
    # The first question is held (it is about the missing image); sent again, it is answered without one.
    assert text.count("[not sent]") == 1 and text.count("glyph> ") == 1
    assert text.index("[not sent]") < text.index("glyph> ")


def test_an_unclosed_quote_in_image_is_one_line_and_the_chat_goes_on(tiny_assistant, tmp_path):
    text = chat(tiny_assistant, ['/image "unterminated.png', "hello", "hello"], tmp_path)
    assert "[not attached]" in text and "close the quote" in text and "Traceback" not in text
    assert "[not sent]" in text  # like any image that could not be attached: the question may be about it
    assert text.count("glyph> ") == 1  # asked again, it is answered without the image


def test_a_missing_model_is_one_clear_line(tmp_path, capsys):
    assert terminal.main(["--model", str(tmp_path)], stdin=io.StringIO(""), stdout=io.StringIO()) == 2
    assert "holds no assistant" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--cfg-scale", "inf"), ("--temperature", "nan"), ("--temperature", "inf")])
def test_a_non_finite_sampling_flag_is_one_clear_line(tmp_path, capsys, flag, value):
    code = terminal.main(["--model", str(tmp_path), flag, value], stdin=io.StringIO(""), stdout=io.StringIO())
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "must be a finite number" in err and "Traceback" not in err


def test_int8_chats_with_the_weights_read_as_int8(tiny_assistant, tmp_path, monkeypatch):
    loaded = []

    def keep(*args):
        loaded.append(load_for(*args))
        return loaded[-1]

    monkeypatch.setattr(terminal, "load_for", keep)
    text = chat(tiny_assistant, ["hello", "/quit"], tmp_path, "--int8")
    assert text.count("glyph> ") == 1 and loaded[0].int8_decoding
    assert "weight" in vars(loaded[0].causal_lm.model.layers[0].mlp.down_proj)["_glyph_int8"]  # it was used
    chat(tiny_assistant, ["hello", "/quit"], tmp_path)
    assert not loaded[1].int8_decoding
