"""Natural captions for scene specs, with varied phrasing and order.

Every caption names each object as "<size> <color> <shape>" with its grid
position, so a caption determines the scene up to jitter: a caption→image
model can be judged exactly by the scene parser. Colour and shape words are
always the canonical names; size, position, order and sentence frame vary.
"""
from __future__ import annotations

import numpy as np

from scenes.world import Scene, SceneObject

SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                9: "nine"}

_ROW = {0: ("top", "upper"), 2: ("bottom", "lower")}
_COL = {0: "left", 2: "right"}


def with_article(words: str) -> str:
    """'a red circle', 'an orange ring': the indefinite article the words' first sound takes."""
    return ("an " if words[:1] in tuple("aeiou") else "a ") + words


def position_phrases(row: int, col: int) -> tuple[str, ...]:
    """Ways to say where cell (row, col) of the 3×3 grid is."""
    if row != 1 and col != 1:
        vert = _ROW[row]
        return (f"in the {vert[0]} {_COL[col]} corner", f"in the {vert[1]} {_COL[col]}",
                f"at the {vert[0]} {_COL[col]}", f"in the {vert[0]}-{_COL[col]} corner")
    if row != 1:
        vert = _ROW[row][0]
        return (f"at the {vert}", f"at the {vert} center", f"in the {vert} middle",
                f"along the {vert} edge")
    if col != 1:
        side = _COL[col]
        return (f"on the {side}", f"on the {side} side", f"at the middle of the {side} edge",
                f"in the middle {side}")
    return ("in the center", "in the middle", "at the center of the image")


def object_phrase(obj: SceneObject, rng: np.random.Generator) -> str:
    size = _pick(rng, SIZE_WORDS[obj.size])
    return f"a {size} {obj.color} {obj.shape}"


def describe(scene: Scene, rng: np.random.Generator) -> str:
    """One caption for `scene`; `rng` picks the phrasing."""
    objects = list(scene.objects)
    if rng.random() < 0.5:
        objects = [objects[i] for i in rng.permutation(len(objects))]
    else:  # reading order, top left to bottom right
        objects.sort(key=lambda o: (o.row, o.col))
    if len(objects) == 2 and rng.random() < 0.5 and _relation(*objects):
        return _capitalise(_relational(objects[0], objects[1], rng))
    if rng.random() < 0.25:  # clauses: "in the center there is a small red circle, and ..."
        clauses = [f"{_pick(rng, position_phrases(o.row, o.col))} {_there_is(rng)} {object_phrase(o, rng)}"
                   for o in objects]
        return _capitalise(_join(clauses, ", and ") + ".")
    items = [f"{object_phrase(o, rng)} {_pick(rng, position_phrases(o.row, o.col))}" for o in objects]
    frame = _pick(rng, _FRAMES)
    return _capitalise(frame(len(objects), _join(items, " and ")))


_FRAMES = (
    lambda n, items: f"{items}.",
    lambda n, items: f"{items} on a light background.",
    lambda n, items: f"A picture of {items}.",
    lambda n, items: f"There {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} "
                     f"{'shape' if n == 1 else 'shapes'}: {items}.",
    lambda n, items: f"{NUMBER_WORDS[n]} {'object' if n == 1 else 'objects'} on a plain background: {items}.",
    lambda n, items: f"This image shows {items}.",
)


def _there_is(rng: np.random.Generator) -> str:
    return _pick(rng, ("there is", "sits", "you can see"))


def _relation(a: SceneObject, b: SceneObject) -> str | None:
    """How `a` stands to `b` when they share a row or a column, else None."""
    if a.col == b.col:
        return "above" if a.row < b.row else "below"
    if a.row == b.row:
        return "to the left of" if a.col < b.col else "to the right of"
    return None


def _relational(a: SceneObject, b: SceneObject, rng: np.random.Generator) -> str:
    pos_a = _pick(rng, position_phrases(a.row, a.col))
    pos_b = _pick(rng, position_phrases(b.row, b.col))
    return f"{object_phrase(a, rng)} {pos_a}, {_relation(a, b)} {object_phrase(b, rng)} {pos_b}."


def listing(items: list[str]) -> str:
    """'a, b and c': items in one phrase."""
    return _join(items, " and ")


def _join(items: list[str], last: str) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + last + items[-1]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _capitalise(text: str) -> str:
    return text[0].upper() + text[1:]
