"""User-supplied images → clean RGB PIL images, or one clear `ImageError`.

    image = load_image("photo.jpg")                   # or bytes, a binary file, a PIL image
    image = load_image(decode_data_url(url, max_bytes=20_000_000), name="the pasted image")

Results have mode "RGB", are fully decoded (not lazy, not tied to a file) and have
their EXIF orientation applied. Transparent pixels are composited on white, as a
chat page shows them. Multi-frame files give their first frame (a PIL image passed
in: its current frame). 16-bit greyscale is scaled 0..65535 → 0..255. Only common
formats are opened, so uploads never reach PIL's rarer decoders (EPS runs Ghostscript).
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import struct

import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 64_000_000  # width × height; larger images are refused from the header alone
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa")
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_UPLOAD = "the uploaded image"


class ImageError(ValueError):
    """An input image that cannot be used; the message names the input and the fix."""


def load_image(source, *, name: str | None = None) -> Image.Image:
    """A path (str | os.PathLike), raw bytes, a binary file object or a PIL image → RGB image.

    `name` is what an error message calls the input: by default the path, the
    file object's name, or "the uploaded image".
    """
    if isinstance(source, Image.Image):
        return _clean(source, name or _UPLOAD)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(source, name or os.fspath(source))
    if hasattr(source, "read"):
        file_name = getattr(source, "name", None)
        name = name or (file_name if isinstance(file_name, str) else _UPLOAD)
        source = source.read()
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or _UPLOAD
        if not len(source):
            raise _error(name, "it is empty (0 bytes)", "Upload the image again.")
        return _decode(io.BytesIO(source), name)
    raise TypeError(f"load_image takes a path, bytes, a file opened 'rb' or a PIL image, not {type(source)}.")


def decode_data_url(url: str, *, max_bytes: int) -> bytes:
    """'data:image/png;base64,iVBOR…' → the image's bytes (at most `max_bytes`)."""
    if not isinstance(url, str) or not url[:5].lower() == "data:":
        raise ImageError(f"Expected an image data URL ('data:image/png;base64,…'), got {_short(url)}. "
                         "Send the image inline as a base64 data URL.")
    header, comma, payload = url[5:].partition(",")
    params = [p.strip().lower() for p in header.split(";")]
    if not comma or params[-1] != "base64":
        raise ImageError(f"The image data URL {_short(url)} is not base64-encoded; "
                         "use the form 'data:image/png;base64,<data>'.")
    if not params[0].startswith("image/"):
        raise ImageError(f"The data URL holds {params[0] or 'text/plain'}, not an image; "
                         "send a PNG, JPEG, GIF or WebP image.")
    payload = "".join(payload.split())  # line-wrapped base64 is common
    payload += "=" * (-len(payload) % 4)
    size = len(payload) // 4 * 3 - payload[-2:].count("=")  # exact for valid base64
    if size > max_bytes:
        raise ImageError(f"The image data URL holds {size:,} bytes, over the {max_bytes:,}-byte limit; "
                         "send a smaller or more compressed image.")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as error:
        raise ImageError(f"The image data URL has broken base64 ({error}); encode the image again.") from None
    if not data:
        raise ImageError("The image data URL is empty; attach the image again.")
    return data


def _load_path(path, name: str) -> Image.Image:
    """Open a file path, with a message for each way a path can be wrong."""
    if str(path)[:5] == "data:":
        raise _error(_short(name), "it is a data URL, not a path", "Decode it with decode_data_url first.")
    if os.path.isdir(path):
        raise _error(name, "it is a directory", "Pass the path of an image file inside it.")
    if not os.path.exists(path):
        raise _error(name, "no such file", "Check the path.")
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                raise _error(name, "the file is empty (0 bytes)", "Save or download it again.")
            return _decode(file, name)
    except OSError as error:  # permission denied, I/O error, removed meanwhile
        raise _error(name, error.strerror or str(error), "Check the file.") from None


def _decode(file, name: str) -> Image.Image:
    """Identify and decode an image file object; PIL errors become ImageError."""
    try:
        image = Image.open(file, formats=FORMATS)
        image.seek(0)
    except Image.UnidentifiedImageError:
        fix = f"Convert it to one of {', '.join(FORMATS)}."
        raise _error(name, "it is not an image file Glyph reads", fix) from None
    except _BOMB_ERRORS:  # PIL's own, larger limit (an error, or a warning turned into one)
        raise _too_large(name) from None
    except _DECODE_ERRORS as error:
        raise _corrupt(name, error) from None
    with image:
        return _clean(image, name)


def _clean(image: Image.Image, name: str) -> Image.Image:
    """Check the declared size, then decode, orient and convert to RGB."""
    if image.width * image.height > MAX_PIXELS:
        raise _too_large(name)
    try:
        image.load()  # decoding is lazy: truncated data only fails here
        return _to_rgb(ImageOps.exif_transpose(image), name)
    except ImageError:
        raise
    except _DECODE_ERRORS as error:
        raise _corrupt(name, error) from None


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """Any mode → RGB; transparency is composited on white, high bit depths are scaled."""
    if image.mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_to_uint8(np.asarray(image)), "L").convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:
        problem = f"its colour mode {image.mode} has no RGB conversion"
        raise _error(name, problem, "Save it as an RGB PNG.") from None


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """(H, W) 16-bit, 32-bit int or float greyscale → (H, W) uint8.

    uint16 data is 0..65535. Int and float data have no fixed range: values
    already in 0..255 are kept (floats in 0..1 are taken as 0..1), values in
    0..65535 are taken as 16-bit, anything else is stretched from its min..max.
    """
    values = np.nan_to_num(pixels.astype(np.float64))
    low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
    if pixels.dtype.kind == "f" and low >= 0 and high <= 1:
        top = 1.0
    elif pixels.dtype.kind != "u" and low >= 0 and high <= 255:
        top = 255.0
    elif low >= 0 and high <= 65535:
        top = 65535.0
    else:
        values, top = values - low, max(high - low, 1e-12)
    return np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)


def _error(name: str, problem: str, fix: str) -> ImageError:
    return ImageError(f"Cannot use {name}: {problem}. {fix}")


def _too_large(name: str) -> ImageError:
    problem = f"it declares more than {MAX_PIXELS:,} pixels (a huge scan or a decompression bomb)"
    return _error(name, problem, "Resize it to at most about 8000×8000 and try again.")


def _corrupt(name: str, error: Exception) -> ImageError:
    return _error(name, f"the image data is truncated or corrupt ({error})", "Save or download it again.")


def _short(text, limit: int = 60) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 1] + "…'"
