"""Read the assistant's text answers back into scene facts, so the evaluation can score them.

    keys = read_caption("A small red circle in the center and a big blue ring at the top.")
    # [("circle", "red", "small", 1, 1), ("ring", "blue", "large", 0, 1)], or None when unreadable
    keys == scene.keys()                                       # a caption that is exactly right
    short_answer("color", "The shape at the top is red.")      # "red", compared with QA.short
    short_answer("count", "There are no circles.")             # "0"

A caption names each object as "<size> <color> <shape>" with a grid position
phrase (the vocabulary of `captions.py`). The position follows its object
("a small red circle in the center") or, in clauses, precedes it ("in the
center there is a small red circle"); each object takes the nearest unused
phrase between it and its neighbours, and anything that does not pair up
exactly makes the caption unreadable (None) rather than guessed.
"""
from __future__ import annotations

import re

from scenes.captions import NUMBER_WORDS, SIZE_WORDS, position_phrases
from scenes.questions import COMPARE, POSITION_NAMES
from scenes.world import COLORS, SHAPES

Key = tuple[str, str, str, int, int]

SIZE_OF = {word: size for size, words in SIZE_WORDS.items() for word in words}
CELL_OF = {phrase: cell for cell in POSITION_NAMES for phrase in position_phrases(*cell)}
# Bare names and their spellings, for short answers ("Top left.", "upper-left", "centre").
_BARE = {name: cell for cell, name in POSITION_NAMES.items()}
_BARE |= {name.replace(" ", "-"): cell for name, cell in _BARE.items()}
_BARE |= {name.replace("top", "upper").replace("bottom", "lower"): cell for name, cell in _BARE.items()}
_BARE |= {"middle": (1, 1), "centre": (1, 1)}


def alternation(words) -> str:
    """A regex group matching any of `words`, longest first so 'at the top center' beats 'at the top'."""
    return "(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


# The scene's words as regex groups; the faithfulness check (data_gen.faithfulness) reads teachers' claims with them.
SIZE_WORD, COLOR_WORD, SHAPE_WORD, PLACE_PHRASE = (alternation(words) for words in (SIZE_OF, COLORS, SHAPES, CELL_OF))
NUMBER_OF = {word: n for n, word in NUMBER_WORDS.items()} | {"zero": 0}

_OBJECT = re.compile(rf"\b{SIZE_WORD} {COLOR_WORD} {SHAPE_WORD}\b")
_BARE_OBJECT = re.compile(rf"\b{COLOR_WORD} {SHAPE_WORD}\b")
_PLACE = re.compile(rf"\b{PLACE_PHRASE}\b")
_ANY_PLACE = re.compile(rf"\b{alternation(CELL_OF | _BARE)}\b")
_COLOR = re.compile(rf"\b{COLOR_WORD}\b")
_SHAPE = re.compile(rf"\b{SHAPE_WORD}(?:es|s)?\b")
_NUMBER = re.compile(rf"\b(\d+|zero|{'|'.join(NUMBER_WORDS.values())})\b")
_NONE = re.compile(r"\b(no|none)\b")


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def read_caption(text: str) -> list[Key] | None:
    """The sorted object keys (shape, color, size, row, col) a caption describes, or None if unreadable."""
    text = _normal(text)
    objects = list(_OBJECT.finditer(text))
    places = list(_PLACE.finditer(text))
    if not objects or len(_BARE_OBJECT.findall(text)) != len(objects) or len(places) != len(objects):
        return None  # nothing named, an object without a size, or a stray position phrase
    cells = _pair(objects, places)
    if cells is None or len(set(cells)) != len(cells):
        return None  # an object without its own position, or two objects in one cell
    keys = [(m[3], m[2], SIZE_OF[m[1]], *cell) for m, cell in zip(objects, cells)]
    return sorted(keys)


def _pair(objects: list[re.Match], places: list[re.Match]) -> list[tuple[int, int]] | None:
    """Each object's cell: the unused phrase just before it (after the previous object), else the one after it."""
    used: set[int] = set()
    cells = []
    for i, obj in enumerate(objects):
        start = objects[i - 1].end() if i else 0
        end = objects[i + 1].start() if i + 1 < len(objects) else None
        before = [j for j, p in enumerate(places) if start <= p.start() and p.end() <= obj.start()]
        after = [j for j, p in enumerate(places) if p.start() >= obj.end() and (end is None or p.end() <= end)]
        before = [j for j in before if j not in used]
        choice = before if before else after
        if len(choice) != 1:
            return None
        used.add(choice[0])
        cells.append(CELL_OF[places[choice[0]][1]])
    return cells


def short_answer(kind: str, text: str) -> str | None:
    """The canonical short answer (QA.short's vocabulary) in a free-text answer, or None when none is found."""
    if kind not in _SHORT:
        raise ValueError(f"unknown question kind {kind!r}; choose from {', '.join(_SHORT)}")
    return _SHORT[kind](_normal(text))


def _last(pattern: re.Pattern, text: str) -> re.Match | None:
    """The last match: an answer's predicate follows its subject ("The red shape is a ring." -> ring).

    This is also the last match after the first ' is '/' are ' whenever one follows it.
    """
    found = list(pattern.finditer(text))
    return found[-1] if found else None


def _color(text: str) -> str | None:
    found = _last(_COLOR, text)
    return found[1] if found else None


def _shape(text: str) -> str | None:
    found = _last(_SHAPE, text)
    return found[1] if found else None


def _position(text: str) -> str | None:
    found = _last(_ANY_PLACE, text)
    if found is None:
        return None
    phrase = found[1]
    return POSITION_NAMES[CELL_OF[phrase] if phrase in CELL_OF else _BARE[phrase]]


def _count(text: str) -> str | None:
    found = _NUMBER.search(text)
    if found:
        word = found[1]
        return str(int(word)) if word.isdigit() else str(NUMBER_OF[word])
    return "0" if _NONE.search(text) else None


def _existence(text: str) -> str | None:
    first = re.match(r"\W*(\w+)", text)
    word = first[1] if first else ""
    return {"yes": "yes", "yeah": "yes", "yep": "yes", "no": "no", "nope": "no"}.get(word)


def _compare(text: str) -> str | None:
    """The first picture named ("The first one has more."), or "same" for a tie ("Both have two.")."""
    found = re.search(r"\b(first|second|same|equal|both|neither|as many)\b", text)
    if not found:
        return None
    return found[1] if found[1] in ("first", "second") else "same"


_SIZE = re.compile(rf"\b{SIZE_WORD}\b")
_NOTHING = re.compile(r"\b(nothing|empty|no shape|no object|no shapes|no objects)\b")


def _size(text: str) -> str | None:
    found = _last(_SIZE, text)
    return SIZE_OF[found[1]] if found else None


def _cell(text: str) -> str | None:
    """The first object named ("There is a large red circle there."), or "nothing" when that comes first."""
    found, nothing = _BARE_OBJECT.search(text), _NOTHING.search(text)
    if nothing and (found is None or nothing.start() < found.start()):
        return "nothing"
    return f"{found[1]} {found[2]}" if found else None


def _every(pattern: re.Pattern, text: str) -> str | None:
    """Every name the pattern finds, each once, sorted and joined by commas; None when there is none."""
    names = sorted({match[1] for match in pattern.finditer(text)})
    return ",".join(names) or None


_SHORT = {"color": _color, "shape": _shape, "count": _count, "position": _position, "existence": _existence,
          COMPARE: _compare, "size": _size, "cell": _cell, "shapes": lambda text: _every(_SHAPE, text),
          "colors": lambda text: _every(_COLOR, text), "any": _existence}
