"""Draw scene specs as pixels.

Shapes are drawn at SUPERSAMPLE× resolution and box-filtered down, which gives
antialiased edges and is deterministic for a given Pillow version. The same
`draw_shape` also draws the parser's templates, so reader and writer agree on
what each shape looks like.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from scenes.world import BACKGROUND, COLORS, SUPERSAMPLE, Scene

CROSS_ARM = 0.36  # the cross's arm thickness as a fraction of its side
RING_HOLE = 0.5  # the ring's hole diameter as a fraction of its side


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill,
               background) -> None:
    """Draw `shape` filling `box` (pixel coordinates of the image being drawn on).

    Shapes with holes paint the hole with `background`, which is safe because
    objects never share a cell.
    """
    x1, y1, x2, y2 = box
    # Pillow fills the pixel at x2/y2 inclusively; the box's far edge is exclusive.
    x2, y2 = x2 - 1, y2 - 1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if shape == "circle":
        draw.ellipse((x1, y1, x2, y2), fill=fill)
    elif shape == "square":
        draw.rectangle((x1, y1, x2, y2), fill=fill)
    elif shape == "triangle":  # pointing up, base at the bottom
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=fill)
    elif shape == "ring":  # a disc with a hole half its diameter
        draw.ellipse((x1, y1, x2, y2), fill=fill)
        hole = RING_HOLE * (x2 - x1) / 2
        draw.ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=background)
    elif shape == "cross":  # an upright plus sign
        half_arm = CROSS_ARM * (x2 - x1) / 2
        draw.rectangle((x1, cy - half_arm, x2, cy + half_arm), fill=fill)
        draw.rectangle((cx - half_arm, y1, cx + half_arm, y2), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_scene(scene: Scene) -> Image.Image:
    """The scene as an RGB image of scene.image_size² pixels."""
    big = scene.image_size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        draw_shape(draw, obj.shape, [round(v * big) for v in obj.box], COLORS[obj.color], BACKGROUND)
    return canvas.reduce(SUPERSAMPLE)


def shape_coverage(shape: str, box: tuple[float, float, float, float], image_size: int) -> np.ndarray:
    """Fraction of each pixel that `shape` in `box` (pixel coordinates) covers: (H, W) float32 in [0, 1]."""
    big = image_size * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw_shape(ImageDraw.Draw(mask), shape, [round(v * SUPERSAMPLE) for v in box], 255, 0)
    return np.asarray(mask.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
