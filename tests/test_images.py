"""assistant.images: every input becomes an RGB image with the right pixels, or one clear ImageError."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from assistant import images
from assistant.images import ImageError, decode_data_url, load_image

WHITE, BLACK, RED, BLUE = (255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 0, 255)


def png_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save_args)
    return buffer.getvalue()


def pixels(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8, after checking the result is a clean RGB image."""
    assert image.mode == "RGB"
    return np.asarray(image)


def with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """`png` with its IHDR claiming width × height (pixel data untouched, CRC fixed)."""
    assert png[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def random_rgb(size: int = 32) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


# --- sources ---------------------------------------------------------------------------

def test_path_bytes_file_and_pil_give_the_same_fully_loaded_rgb_image(tmp_path):
    source = random_rgb(16)
    path = tmp_path / "photo.png"
    source.save(path)
    expected = np.asarray(source)
    with open(path, "rb") as file:
        from_file = load_image(file)
    results = [load_image(path), load_image(str(path)), load_image(path.read_bytes()), from_file,
               load_image(source)]
    path.unlink()  # the results must not depend on the file any more
    for result in results:
        assert result.size == (16, 16)
        np.testing.assert_array_equal(pixels(result), expected)


def test_pil_input_is_not_modified():
    source = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    load_image(source)
    assert source.mode == "RGBA" and source.getpixel((0, 0)) == (255, 0, 0, 0)


def test_a_wrong_source_type_is_a_type_error():
    with pytest.raises(TypeError, match="path, bytes"):
        load_image(12)
    with pytest.raises(TypeError, match="'rb'.*str"):
        load_image(io.StringIO("text"))


# --- modes -----------------------------------------------------------------------------

def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    source = Image.fromarray(np.array([[0, 257, 32768, 65535]], dtype=np.uint16))
    assert source.mode == "I;16"
    assert source.convert("RGB").getpixel((1, 0)) == WHITE  # what the plain way gets wrong
    path = tmp_path / "depth.png"
    source.save(path)
    for result in (load_image(source), load_image(path)):
        assert result.size == (4, 1)
        np.testing.assert_array_equal(pixels(result)[0, :, 0], [0, 1, 128, 255])
        assert (pixels(result) == pixels(result)[..., :1]).all()  # grey stays grey


@pytest.mark.parametrize("values, expected", [
    ([0, 100, 255], [0, 100, 255]),              # 8-bit values in a 32-bit image: kept
    ([0, 32768, 65535], [0, 128, 255]),          # 16-bit values: scaled
    ([-1000, 0, 1000], [0, 128, 255]),           # anything else: stretched from min..max
])
def test_32_bit_integer_greyscale(values, expected):
    source = Image.fromarray(np.array([values], dtype=np.int32))
    assert source.mode == "I"
    np.testing.assert_array_equal(pixels(load_image(source))[0, :, 1], expected)


@pytest.mark.parametrize("values, expected", [
    ([0.0, 0.5, 1.0], [0, 128, 255]),
    ([0.0, 100.0, 255.0], [0, 100, 255]),
    ([-1.0, 0.0, 1.0], [0, 128, 255]),
])
def test_float_greyscale(values, expected):
    source = Image.fromarray(np.array([values], dtype=np.float32))
    assert source.mode == "F"
    np.testing.assert_array_equal(pixels(load_image(source))[0, :, 2], expected)


def test_rgba_transparency_is_composited_on_white(tmp_path):
    source = Image.new("RGBA", (3, 1))
    source.putpixel((0, 0), (255, 0, 0, 0))      # fully transparent red
    source.putpixel((1, 0), (255, 0, 0, 255))    # opaque red
    source.putpixel((2, 0), (0, 0, 0, 128))      # half-transparent black
    path = tmp_path / "alpha.png"
    source.save(path)
    result = pixels(load_image(path))
    assert tuple(result[0, 0]) == WHITE
    assert tuple(result[0, 1]) == RED
    assert all(abs(int(v) - 127) <= 1 for v in result[0, 2])


def test_greyscale_with_alpha_is_composited_on_white():
    source = Image.new("LA", (2, 1))
    source.putpixel((0, 0), (0, 0))
    source.putpixel((1, 0), (0, 255))
    result = pixels(load_image(png_bytes(source)))
    assert tuple(result[0, 0]) == WHITE and tuple(result[0, 1]) == BLACK


def palette_image() -> Image.Image:
    """2×1 P image: index 0 is black, index 1 is red."""
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    return image


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "palette.png"
    palette_image().save(path)
    result = pixels(load_image(path))
    assert tuple(result[0, 0]) == BLACK and tuple(result[0, 1]) == RED


@pytest.mark.parametrize("suffix", ["png", "gif"])
def test_palette_with_a_transparent_index_turns_white_not_black(tmp_path, suffix):
    path = tmp_path / f"palette.{suffix}"
    palette_image().save(path, transparency=0)
    assert Image.open(path).mode == "P"
    result = pixels(load_image(path))
    assert tuple(result[0, 0]) == WHITE and tuple(result[0, 1]) == RED


def test_cmyk(tmp_path):
    source = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    source.putpixel((1, 0), (0, 255, 255, 0))
    path = tmp_path / "print.tif"
    source.save(path)
    result = pixels(load_image(path))
    assert tuple(result[0, 0]) == WHITE and tuple(result[0, 1]) == RED


@pytest.mark.parametrize("mode, value, expected", [("1", 1, WHITE), ("1", 0, BLACK), ("L", 77, (77, 77, 77))])
def test_one_bit_and_greyscale(mode, value, expected):
    result = load_image(png_bytes(Image.new(mode, (8, 8), value)))
    assert result.size == (8, 8) and tuple(pixels(result)[3, 3]) == expected


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, (0, 255, 0), BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    result = load_image(path)
    assert result.size == (8, 8) and tuple(pixels(result)[4, 4]) == RED


# --- EXIF orientation ------------------------------------------------------------------

def with_orientation(image: Image.Image, orientation: int) -> Image.Exif:
    exif = image.getexif()
    exif[0x0112] = orientation
    return exif


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    source = Image.new("RGB", (2, 1))
    source.putpixel((0, 0), RED)
    source.putpixel((1, 0), BLUE)
    path = tmp_path / "phone.png"
    source.save(path, exif=with_orientation(source, 6))
    result = load_image(path)
    assert result.size == (1, 2)
    assert tuple(pixels(result)[0, 0]) == RED and tuple(pixels(result)[1, 0]) == BLUE
    assert 0x0112 not in result.getexif()


def test_exif_orientation_in_a_jpeg(tmp_path):
    source = Image.new("RGB", (16, 8), RED)
    source.paste(BLUE, (8, 0, 16, 8))
    path = tmp_path / "phone.jpg"
    source.save(path, exif=with_orientation(source, 6), quality=95)
    result = pixels(load_image(path))
    assert result.shape == (16, 8, 3)
    assert np.abs(result[2, 4].astype(int) - RED).max() < 20
    assert np.abs(result[13, 4].astype(int) - BLUE).max() < 20


# --- bad inputs: one ImageError naming the input ---------------------------------------

def refused(source, shown: str, *words: str, **kwargs) -> str:
    with pytest.raises(ImageError) as caught:
        load_image(source, **kwargs)
    message = str(caught.value)
    assert shown in message
    for word in words:
        assert word in message, message
    assert caught.value.__suppress_context__ or caught.value.__context__ is None  # no PIL traceback
    return message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused_when_decoded(tmp_path, fmt):
    buffer = io.BytesIO()
    random_rgb().save(buffer, fmt)
    path = tmp_path / f"half.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert Image.open(path).size == (32, 32)  # the header alone looks fine
    refused(path, str(path), "truncated or corrupt")
    refused(path.read_bytes(), "the uploaded image", "truncated or corrupt")


def test_corrupt_pixel_data_is_refused():
    data = bytearray(png_bytes(random_rgb()))
    start = data.index(b"IDAT") + 4
    data[start:start + 40] = b"\xff" * 40
    refused(bytes(data), "chat upload #3", "corrupt", name="chat upload #3")


def test_empty_inputs_are_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    refused(path, str(path), "empty")
    refused(b"", "the uploaded image", "empty")


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"  # PIL would hand this to Ghostscript


@pytest.mark.parametrize("content", [b"just some notes\n", EPS], ids=["text", "eps"])
def test_files_that_are_not_images_we_read_are_refused(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    refused(path, str(path), "not an image", "PNG")
    with open(path, "rb") as file:
        refused(file, str(path), "not an image")  # a file object is named by its .name


def test_missing_paths_and_directories_are_refused(tmp_path):
    refused(tmp_path / "nope.png", str(tmp_path / "nope.png"), "no such file")
    refused(tmp_path, str(tmp_path), "directory")
    refused("data:image/png;base64,iVBOR", "data:image/png", "decode_data_url")


def test_name_overrides_the_path_in_messages(tmp_path):
    refused(tmp_path / "nope.png", "the avatar", "no such file", name="the avatar")


def test_an_unconvertible_mode_is_refused():
    refused(Image.new("La", (2, 2)), "the uploaded image", "La")


# --- decompression bombs ---------------------------------------------------------------

SMALL_PNG = png_bytes(Image.new("1", (8, 8)))


@pytest.mark.parametrize("side", [
    9_000,    # 81 M: over our limit, under PIL's (~89 M): only our check sees it
    20_000,   # 400 M: PIL raises DecompressionBombError while opening
])
def test_huge_declared_sizes_are_refused_from_the_header(tmp_path, side):
    # The pixel data is 8×8: decoding it at the declared size would fail as "truncated".
    path = tmp_path / "bomb.png"
    path.write_bytes(with_declared_size(SMALL_PNG, side, side))
    message = refused(path, str(path), "pixels", "decompression bomb")
    assert "corrupt" not in message


@pytest.mark.parametrize("action", ["error", "ignore", "default"])
def test_bomb_refusal_does_not_depend_on_the_warnings_filter(action, recwarn):
    # 100 M pixels: PIL only warns. Whatever the filter does with that warning, we refuse.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        refused(with_declared_size(SMALL_PNG, 10_000, 10_000), "the uploaded image", "pixels")


def test_the_limit_is_width_times_height(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 64)
    assert load_image(Image.new("L", (8, 8))).size == (8, 8)
    refused(Image.new("L", (8, 9)), "the uploaded image", "64 pixels")
    refused(png_bytes(Image.new("L", (65, 1))), "the uploaded image", "64 pixels")


# --- data URLs -------------------------------------------------------------------------

def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def test_data_url_round_trip():
    data = png_bytes(random_rgb(8))
    assert decode_data_url(data_url(data), max_bytes=len(data)) == data
    np.testing.assert_array_equal(pixels(load_image(decode_data_url(data_url(data), max_bytes=10**6))),
                                  np.asarray(random_rgb(8)))


def test_data_url_tolerates_case_parameters_line_breaks_and_missing_padding():
    data = b"\x89PNG\r\n\x1a\n12345"  # 13 bytes: base64 ends in "=="
    encoded = base64.b64encode(data).decode()
    assert encoded.endswith("=")
    wrapped = encoded[:8] + "\n" + encoded[8:].rstrip("=")
    assert decode_data_url(f"DATA:Image/PNG;name=x.png;BASE64,{wrapped}", max_bytes=100) == data


@pytest.mark.parametrize("url, words", [
    ("https://example.com/cat.png", ["data URL", "https://example.com"]),
    ("data:image/png,%89PNG", ["not base64"]),
    ("data:image/png;base64", ["not base64"]),
    ("data:text/plain;base64,aGVsbG8=", ["text/plain", "not an image"]),
    ("data:;base64,aGVsbG8=", ["text/plain"]),
    ("data:image/png;base64,@@@@", ["base64"]),
    ("data:image/png;base64,abcde", ["base64"]),
    ("data:image/png;base64,", ["empty"]),
])
def test_bad_data_urls_are_refused(url, words):
    with pytest.raises(ImageError) as caught:
        decode_data_url(url, max_bytes=1000)
    for word in words:
        assert word in str(caught.value), str(caught.value)


def test_data_url_over_the_byte_limit_is_refused_before_decoding(monkeypatch):
    data = bytes(300)
    assert decode_data_url(data_url(data), max_bytes=300) == data
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: pytest.fail("decoded an oversized payload"))
    with pytest.raises(ImageError, match="300 bytes, over the 299-byte limit"):
        decode_data_url(data_url(data), max_bytes=299)
