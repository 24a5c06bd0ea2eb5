"""Drawing prompts by category, scenes that satisfy them, and the check that a drawing does: GenEval for scenes.

    prompt = drawing_prompt("position", rng)   # text "Draw a red circle above a blue square." and its constraints
    scene = prompt.example(rng)                # a scene that satisfies it: a training target, or the perfect drawer
    prompt.satisfied_by(read_scene(drawing).objects)   # what the scene parser read from a drawing → bool

The categories follow GenEval (Ghosh et al., 2023), in the scene world:

- single:   one object, by colour and shape, sometimes also its size and place ("Draw a big red circle on the left.")
- two:      two objects named by shape alone ("Draw a circle and a square.")
- counting: two to four objects of one colour and shape ("Draw three red circles.")
- colors:   two objects whose colours are bound to their shapes ("Draw a red circle and a blue square.")
- position: two objects and how they stand to each other ("Draw a red circle above a blue square.")

A drawing satisfies a prompt when the parser reads exactly the prompted number
of objects, each with the attributes the prompt gives it, in the prompted
relation, and nothing it cannot explain.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from scenes.captions import NUMBER_WORDS, SIZE_WORDS, position_phrases, with_article
from scenes.world import COLORS, GRID, SHAPES, SIZES, Scene, SceneObject, place_in_cell, plural

CATEGORIES = ("single", "two", "counting", "colors", "position")
RELATIONS = {"above": (-1, 0), "below": (1, 0), "to the left of": (0, -1), "to the right of": (0, 1)}
PHRASINGS = ("train", "held_out")  # held_out: wordings no training chat uses, for evaluation only
FRAMES = {  # how a drawing request is worded, by phrasing; the declines use the same ones
    "train": ("Draw {}.", "Please draw {}.", "Can you draw {}?", "Make a picture of {}.", "Paint {}.", "Show me {}.",
              "I'd like a picture of {}.", "Could you make an image of {}?", "Draw me {}, please.",
              "Create a picture with {}.", "Sketch {}.", "Generate an image of {}.", "draw {}",
              "Can I get a drawing of {}?", "Make me an image showing {}."),
    "held_out": ("Would you mind drawing {}?", "I need an illustration of {}.", "Render {} for me.",
                 "How about a drawing of {}?", "Could you sketch {} for me?", "Produce a picture containing {}."),
}


@dataclass(frozen=True)
class ObjectSpec:
    """What a prompt says of one object; None = anything goes."""
    color: str | None = None
    shape: str | None = None
    size: str | None = None
    cell: tuple[int, int] | None = None  # (row, col)

    def accepts(self, obj) -> bool:
        return all(want is None or want == have for want, have in [
            (self.color, obj.color), (self.shape, obj.shape), (self.size, obj.size),
            (self.cell, (obj.row, obj.col))])


@dataclass(frozen=True)
class DrawingPrompt:
    category: str
    text: str
    objects: tuple[ObjectSpec, ...]
    relation: str | None = None  # objects[0] <relation> objects[1], a key of RELATIONS

    def satisfied_by(self, objects) -> bool:
        """True when `objects` (anything with shape, color, size, row, col) are exactly what was asked for."""
        objects = list(objects)
        if len(objects) != len(self.objects):
            return False
        return any(all(spec.accepts(obj) for spec, obj in zip(self.objects, order)) and self._related(order)
                   for order in itertools.permutations(objects))

    def _related(self, order) -> bool:
        if self.relation is None:
            return True
        return _stands(order[0], self.relation, order[1])

    def example(self, rng: np.random.Generator, image_size: int = 64) -> Scene:
        """A scene that satisfies the prompt, the unspecified attributes and places drawn at random."""
        while True:  # rejection sampling over places; a relation holds for 1/4 or more of them
            cells = [spec.cell for spec in self.objects]
            free = [c for c in range(GRID * GRID) if divmod(c, GRID) not in cells]
            picked = iter(rng.choice(free, size=sum(c is None for c in cells), replace=False).tolist())
            cells = [cell if cell is not None else divmod(next(picked), GRID) for cell in cells]
            objects = [_concrete(spec, cell, rng, image_size) for spec, cell in zip(self.objects, cells)]
            if self._related(objects):
                return Scene(image_size, tuple(objects))


def _stands(a, relation: str, b) -> bool:
    """Does `a` stand in `relation` to `b`? 'above' means in a higher row, whatever the columns."""
    d_row, d_col = RELATIONS[relation]
    if d_row:
        return (a.row - b.row) * d_row > 0
    return (a.col - b.col) * d_col > 0


def _concrete(spec: ObjectSpec, cell: tuple[int, int], rng: np.random.Generator, image_size: int) -> SceneObject:
    shape = spec.shape or _pick(rng, SHAPES)
    color = spec.color or _pick(rng, tuple(COLORS))
    size = spec.size or _pick(rng, SIZES)
    box = place_in_cell(rng, image_size, cell[0], cell[1], size)
    return SceneObject(shape, color, size, cell[0], cell[1], box)


def drawing_prompt(category: str, rng: np.random.Generator, phrasing: str = "train") -> DrawingPrompt:
    if category not in CATEGORIES:
        raise ValueError(f"unknown prompt category {category!r}; choose from {', '.join(CATEGORIES)}")
    if phrasing not in PHRASINGS:
        raise ValueError(f"unknown phrasing {phrasing!r}; choose from {', '.join(PHRASINGS)}")
    return _MAKERS[category](rng, phrasing)


def _single(rng: np.random.Generator, phrasing: str) -> DrawingPrompt:
    spec = ObjectSpec(_pick(rng, tuple(COLORS)), _pick(rng, SHAPES),
                      _pick(rng, SIZES) if rng.random() < 0.5 else None,
                      divmod(int(rng.integers(GRID * GRID)), GRID) if rng.random() < 0.5 else None)
    return DrawingPrompt("single", _frame(rng, phrasing, _phrase(spec, rng)), (spec,))


def _two(rng: np.random.Generator, phrasing: str) -> DrawingPrompt:
    shapes = rng.choice(len(SHAPES), size=2, replace=rng.random() < 0.2).tolist()
    specs = tuple(ObjectSpec(shape=SHAPES[s]) for s in shapes)
    if specs[0].shape == specs[1].shape:
        return DrawingPrompt("two", _frame(rng, phrasing, f"two {plural(specs[0].shape)}"), specs)
    body = f"{_phrase(specs[0], rng)} and {_phrase(specs[1], rng)}"
    return DrawingPrompt("two", _frame(rng, phrasing, body), specs)


def _counting(rng: np.random.Generator, phrasing: str) -> DrawingPrompt:
    n = int(rng.integers(2, 5))
    spec = ObjectSpec(_pick(rng, tuple(COLORS)), _pick(rng, SHAPES))
    body = f"{NUMBER_WORDS[n]} {spec.color} {plural(spec.shape)}"
    return DrawingPrompt("counting", _frame(rng, phrasing, body), (spec,) * n)


def _colors(rng: np.random.Generator, phrasing: str) -> DrawingPrompt:
    colors = rng.choice(len(COLORS), size=2, replace=False).tolist()
    shapes = rng.choice(len(SHAPES), size=2, replace=False).tolist()
    specs = tuple(ObjectSpec(tuple(COLORS)[c], SHAPES[s]) for c, s in zip(colors, shapes))
    body = f"{_phrase(specs[0], rng)} and {_phrase(specs[1], rng)}"
    return DrawingPrompt("colors", _frame(rng, phrasing, body), specs)


def _position(rng: np.random.Generator, phrasing: str) -> DrawingPrompt:
    first, second = _colors(rng, phrasing).objects
    relation = _pick(rng, tuple(RELATIONS))
    text = f"{_phrase(first, rng)} {relation} {_phrase(second, rng)}"
    return DrawingPrompt("position", _frame(rng, phrasing, text), (first, second), relation)


def _phrase(spec: ObjectSpec, rng: np.random.Generator) -> str:
    words = [_pick(rng, SIZE_WORDS[spec.size])] if spec.size else []
    words += [w for w in (spec.color, spec.shape or "shape") if w]
    place = f" {_pick(rng, position_phrases(*spec.cell))}" if spec.cell else ""
    return with_article(f"{' '.join(words)}{place}")


def _frame(rng: np.random.Generator, phrasing: str, body: str) -> str:
    return _pick(rng, FRAMES[phrasing]).format(body)


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


_MAKERS = {"single": _single, "two": _two, "counting": _counting, "colors": _colors, "position": _position}
