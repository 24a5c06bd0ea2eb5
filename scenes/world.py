"""The scene world's vocabulary and scene specs: what a scene is, and how one is sampled.

A scene is a square image on a plain light background with 1–4 objects. Each
object sits in its own cell of a 3×3 grid, so objects never overlap; it has a
shape, a colour, a size (small/large) and a jittered position inside its cell.
The spec (a `Scene`) is the single source of truth: the renderer draws it, the
captioner describes it, and the parser must read it back from pixels.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "ring", "cross")


def plural(shape: str) -> str:
    """"circles", "crosses"."""
    return shape + ("es" if shape.endswith("s") else "s")

# Named colours, far apart in RGB and from the background, so that blur,
# JPEG and VQ reconstructions cannot move one into another.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "orange": (245, 135, 20),
    "yellow": (225, 200, 20),
    "green": (40, 160, 60),
    "blue": (40, 85, 215),
    "purple": (140, 60, 185),
}
BACKGROUND = (244, 241, 234)

SIZES = ("small", "large")
# Object side as a fraction of a grid cell's side.
SIZE_FRACTION = {"small": 0.5, "large": 0.8}
# Every object keeps at least this fraction of a cell from its cell's border,
# so neighbours stay apart (≥ 2·gap) even after blur.
CELL_GAP = 0.05
GRID = 3
# Renderer supersampling factor: shapes are drawn at SUPERSAMPLE× and box-filtered
# down, which antialiases curved and slanted edges.
SUPERSAMPLE = 4


class SceneError(ValueError):
    """A scene request that cannot be satisfied (unknown names, bad counts)."""


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    row: int  # grid row, 0 = top
    col: int  # grid column, 0 = left
    box: tuple[float, float, float, float]  # normalised [x1, y1, x2, y2]

    def key(self) -> tuple[str, str, str, int, int]:
        """What a reader of the image can know: everything but the jitter."""
        return (self.shape, self.color, self.size, self.row, self.col)


@dataclass(frozen=True)
class Scene:
    image_size: int
    objects: tuple[SceneObject, ...]

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "objects": [dataclasses.asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, record: dict) -> "Scene":
        objects = tuple(
            SceneObject(o["shape"], o["color"], o["size"], int(o["row"]), int(o["col"]), tuple(o["box"]))
            for o in record["objects"])
        return cls(int(record["image_size"]), objects)

    def keys(self) -> list[tuple]:
        return sorted(o.key() for o in self.objects)


@dataclass(frozen=True)
class SceneConfig:
    """What scenes may contain. Every field is checked by `validate()`."""
    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = tuple(COLORS)

    def validate(self) -> "SceneConfig":
        unknown_shapes = [s for s in self.shapes if s not in SHAPES]
        if unknown_shapes or not self.shapes:
            raise SceneError(f"unknown shape name(s) {unknown_shapes or '(none given)'}; "
                             f"choose from {', '.join(SHAPES)}")
        unknown_colors = [c for c in self.colors if c not in COLORS]
        if unknown_colors or not self.colors:
            raise SceneError(f"unknown color name(s) {unknown_colors or '(none given)'}; "
                             f"choose from {', '.join(COLORS)}")
        if not 1 <= self.min_objects <= self.max_objects <= GRID * GRID:
            raise SceneError(f"object counts must satisfy 1 <= min ({self.min_objects}) <= max "
                             f"({self.max_objects}) <= {GRID * GRID}")
        if self.image_size < 16:
            raise SceneError(f"image size {self.image_size} is too small; use 16 px or more (default 64)")
        return self


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """One independent stream per scene: scene i is the same whatever else is generated."""
    return np.random.default_rng([seed, index])


def sample_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> Scene:
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    cells = rng.choice(GRID * GRID, size=n, replace=False)
    objects = []
    for cell in cells:
        shape = config.shapes[int(rng.integers(len(config.shapes)))]
        color = config.colors[int(rng.integers(len(config.colors)))]
        size = SIZES[int(rng.integers(len(SIZES)))]
        row, col = divmod(int(cell), GRID)
        box = place_in_cell(rng, config.image_size, row, col, size)
        objects.append(SceneObject(shape, color, size, row, col, box))
    return Scene(config.image_size, tuple(objects))


def place_in_cell(rng: np.random.Generator, image_size: int, row: int, col: int,
                  size: str) -> tuple[float, float, float, float]:
    """A square box for an object of `size` in cell (row, col), jittered, normalised.

    Boxes lie on whole pixels, so a box is exactly the pixels its shape spans:
    a square's edges are crisp and every box matches the rendered pixels.
    """
    cell = image_size / GRID
    side = object_side(image_size, size)
    gap = CELL_GAP * cell
    x1 = _jittered_start(rng, col * cell + gap, (col + 1) * cell - gap - side)
    y1 = _jittered_start(rng, row * cell + gap, (row + 1) * cell - gap - side)
    return tuple(round(v / image_size, 6) for v in (x1, y1, x1 + side, y1 + side))


def centred(scene: Scene, image_size: int) -> Scene:
    """The same objects, each centred in its cell, at `image_size`: how the assistant draws a scene.

    A request never says where inside its cell an object sits, so a drawing target with random jitter would
    teach noise. Centred objects make every cell's content one of a few fixed pictures, and with an image
    tokenizer whose grid divides the cells, one of a few fixed token blocks.
    """
    objects = tuple(dataclasses.replace(o, box=centred_box(image_size, o.row, o.col, o.size)) for o in scene.objects)
    return Scene(image_size, objects)


def centred_box(image_size: int, row: int, col: int, size: str) -> tuple[float, float, float, float]:
    """The box of an object of `size` centred in cell (row, col), on whole pixels, normalised."""
    cell, side = image_size / GRID, object_side(image_size, size)
    x1, y1 = (math.floor(c * cell + (cell - side) / 2 + 0.5) for c in (col, row))
    return tuple(round(v / image_size, 6) for v in (x1, y1, x1 + side, y1 + side))


def object_side(image_size: int, size: str) -> int:
    """An object's side in whole pixels."""
    return round(SIZE_FRACTION[size] * image_size / GRID)


def _jittered_start(rng: np.random.Generator, lowest: float, highest: float) -> int:
    """A whole pixel in [lowest, highest], uniformly."""
    lo, hi = math.ceil(lowest), math.floor(highest)
    return int(rng.integers(lo, hi + 1)) if hi >= lo else round((lowest + highest) / 2)
