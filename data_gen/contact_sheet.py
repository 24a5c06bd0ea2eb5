"""A grid of images with their captions, for a person to look at."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TILE = 160  # each image is shown at this side, upscaled without smoothing
CAPTION_LINES = 9
FONT_SIZE = 11
COLUMNS = 8


def contact_sheet(images: list, captions: list[str], columns: int = COLUMNS) -> Image.Image:
    """Images (PIL images or paths) in a grid, each with its caption wrapped underneath."""
    font = ImageFont.load_default(size=FONT_SIZE)
    line_height = FONT_SIZE + 2
    cell_w, cell_h = TILE + 8, TILE + 6 + CAPTION_LINES * line_height
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = (i % columns) * cell_w + 4, (i // columns) * cell_h + 4
        if isinstance(image, (str, Path)):
            image = Image.open(image)
        sheet.paste(image.convert("RGB").resize((TILE, TILE), Image.NEAREST), (x, y))
        lines = _wrap(caption, font, TILE)
        if len(lines) > CAPTION_LINES:
            lines = lines[:CAPTION_LINES - 1] + [lines[CAPTION_LINES - 1] + "…"]
        for j, line in enumerate(lines):
            draw.text((x, y + TILE + 2 + j * line_height), line, fill="black", font=font)
    return sheet


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap to lines at most `width` pixels wide in `font`."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines
