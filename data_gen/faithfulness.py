"""Hold a teacher's chat against the scene spec: which of its claims contradict what the image shows.

    problems = contradictions(turns, scene)     # [] when faithful, else one line per contradicted claim

What is checked, in the assistant's turns and in the user's requests for a picture the assistant then draws
(the drawing is the scene, so the request must describe it):
- a "<colour> <shape>" that is named must be there, and one named after "no" must not be;
- a size given to it ("a small red circle") must be its size;
- a place given to it ("the red circle is in the top left corner") must be its cell;
- "the <shape> is <colour>", "the <colour> shape is a <shape>", "the shape <place> is <colour|shape>";
- counts ("there are two red shapes", "no circles");
- how two named objects stand ("the red circle is above the blue square");
- a request that opens the chat by asking for the picture must name each of its objects' colour and shape,
  or the assistant would learn to draw what nobody asked for.
Claims the checker cannot read are not judged: it flags contradictions, it does not prove truth.
"""
from __future__ import annotations

import re

from data_gen.instruct_prompts import DRAWN, Turn
from scenes.prompts import RELATIONS
from scenes.reading import CELL_OF, COLOR_WORD, NUMBER_OF, PLACE_PHRASE, SHAPE_WORD, SIZE_OF, SIZE_WORD, alternation
from scenes.world import COLORS, SHAPES, Scene

_NUMBER_OF = NUMBER_OF | {"no": 0}  # "no circles" counts zero

_SIZED = re.compile(rf"\b{SIZE_WORD} {COLOR_WORD} {SHAPE_WORD}\b")
_OBJECT = re.compile(rf"\b(no )?{COLOR_WORD} {SHAPE_WORD}\b")
_OBJECT_AT = re.compile(rf"\b{COLOR_WORD} {SHAPE_WORD}(?: is| sits| lies)? {PLACE_PHRASE}")
_SHAPE_IS_COLOR = re.compile(rf"\bthe {SHAPE_WORD} is {COLOR_WORD}\b")
_COLOR_IS_SHAPE = re.compile(rf"\bthe {COLOR_WORD} (?:shape|object) is an? {SHAPE_WORD}\b")
_AT_IS = re.compile(rf"\bthe (?:shape|object) {PLACE_PHRASE} is (?:an? )?(\w+)")
_COUNT = re.compile(rf"\b({'|'.join(_NUMBER_OF)}|\d+) (?:{COLOR_WORD} )?"
                    rf"(shapes?|objects?|{'|'.join(SHAPES)}(?:e?s)?)\b")
_RELATION = re.compile(rf"\bthe {COLOR_WORD} {SHAPE_WORD} is {alternation(RELATIONS)} the {COLOR_WORD} {SHAPE_WORD}\b")


def contradictions(turns: list[Turn], scene: Scene) -> list[str]:
    """Every claim in the checked turns that the scene contradicts, as readable lines."""
    problems = []
    for i, turn in enumerate(turns):
        requests_drawing = i + 1 < len(turns) and DRAWN in turns[i + 1].text
        if turn.role == "assistant" or requests_drawing:
            text = re.sub(r"\s+", " ", turn.text.replace(DRAWN, " ").lower())
            problems += [f"turn {i + 1}: {p}" for p in claims_against(text, scene)]
            if requests_drawing and i == 0:  # a request for an unseen picture must name all of it
                problems += [f"turn 1: asks for the picture without its {o.color} {o.shape}"
                             for o in scene.objects if f"{o.color} {o.shape}" not in text]
    return problems


def claims_against(text: str, scene: Scene) -> list[str]:
    objects = scene.objects
    found = []

    def having(color=None, shape=None, cell=None):
        return [o for o in objects if (color is None or o.color == color) and (shape is None or o.shape == shape)
                and (cell is None or (o.row, o.col) == cell)]

    for m in _OBJECT.finditer(text):
        there = bool(having(m[2], m[3]))
        if m[1] and there:
            found.append(f"says there is no {m[2]} {m[3]}, but there is one")
        elif not m[1] and not there:
            found.append(f"names a {m[2]} {m[3]}, which is not there")
    for m in _SIZED.finditer(text):
        if having(m[2], m[3]) and not any(o.size == SIZE_OF[m[1]] for o in having(m[2], m[3])):
            found.append(f"calls the {m[2]} {m[3]} {m[1]}")
    for m in _OBJECT_AT.finditer(text):
        if having(m[1], m[2]) and not having(m[1], m[2], CELL_OF[m[3]]):
            found.append(f"puts the {m[1]} {m[2]} {m[3]}")
    for m in _SHAPE_IS_COLOR.finditer(text):
        if having(shape=m[1]) and not having(m[2], m[1]):
            found.append(f"says the {m[1]} is {m[2]}")
    for m in _COLOR_IS_SHAPE.finditer(text):
        if having(color=m[1]) and not having(m[1], m[2]):
            found.append(f"says the {m[1]} shape is a {m[2]}")
    for m in _AT_IS.finditer(text):
        at = having(cell=CELL_OF[m[1]])
        if m[2] in COLORS or m[2] in SHAPES:
            if not at or not any(m[2] in (o.color, o.shape) for o in at):
                found.append(f"says the shape {m[1]} is {m[2]}")
    found += _counts(text, objects)
    for m in _RELATION.finditer(text):
        a, b = having(m[1], m[2]), having(m[4], m[5])
        if len(a) == 1 and len(b) == 1 and not _stands(a[0], m[3], b[0]):
            found.append(f"says the {m[1]} {m[2]} is {m[3]} the {m[4]} {m[5]}")
    return found


def _counts(text: str, objects) -> list[str]:
    found = []
    for m in _COUNT.finditer(text):
        said = int(m[1]) if m[1].isdigit() else _NUMBER_OF[m[1]]
        noun = m[3]
        shape = next((s for s in SHAPES if noun.startswith(s)), None)
        true = sum((m[2] is None or o.color == m[2]) and (shape is None or o.shape == shape) for o in objects)
        if said != true and not (m[1] == "no" and m[2] and shape):  # "no red circle" is the existence check's
            what = " ".join(w for w in (m[2], noun) if w)
            found.append(f"counts {m[1]} {what}, the image has {true}")
    return found


def _stands(a, relation: str, b) -> bool:
    d_row, d_col = RELATIONS[relation]
    return (a.row - b.row) * d_row > 0 if d_row else (a.col - b.col) * d_col > 0
