"""Drawing requests the scene world cannot satisfy, and the short reply that says what the assistant can draw.

    request = impossible_request(rng)             # DeclinedRequest("unknown_object", "Can you draw a dog?", reply)
    request = impossible_request(rng, "held_out")  # other things and other wordings, for evaluation only

The assistant draws only the world's shapes, colours and up to nine objects on its 3×3 grid. Asked for an
elephant, a pink circle, forty squares or a circle that is also a square, it should say so instead of drawing a
blob. Training on these chats teaches that as behaviour (there is no keyword filter). Requests are worded like
any drawing request (scenes.prompts.FRAMES), so the wording never gives a decline away; the `held_out` set uses
things and wordings that training never sees, so the evaluation measures whether it generalises.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes.captions import NUMBER_WORDS, with_article
from scenes.prompts import FRAMES, PHRASINGS
from scenes.world import COLORS, GRID, SHAPES, plural

REASONS = ("unknown_object", "unknown_shape", "unknown_color", "too_many", "contradiction")
CAPABILITIES = (f"I can draw circles, squares, triangles, rings and crosses, in red, orange, yellow, green, blue "
                f"or purple, small or large, up to {GRID * GRID} of them on a {GRID}×{GRID} grid.")

# Things outside the world, split so that evaluation asks for things training never named.
_OBJECTS = {
    "train": ("a dog", "a cat", "a house", "a tree", "a car", "a bicycle", "a person", "a flower", "a horse",
              "a boat", "a bird", "a mountain", "a fish", "a chair", "a cup of coffee", "a robot", "a castle",
              "a banana", "an airplane", "a purple elephant riding a bicycle", "a sunset over the sea",
              "a portrait of my mother", "a dragon", "the Eiffel Tower", "a smiling face", "a guitar"),
    "held_out": ("a giraffe", "a lighthouse", "a red bus", "a penguin on ice", "a bowl of soup", "a spaceship",
                 "a city skyline at night", "a green frog", "an umbrella", "a teddy bear", "a blue whale",
                 "a clock tower", "a pizza", "a snowman"),
}
_SHAPES = {
    "train": ("star", "heart", "hexagon", "oval", "diamond", "pentagon", "arrow", "crescent moon", "spiral"),
    "held_out": ("octagon", "trapezoid", "lightning bolt", "rectangle with rounded corners", "cloud shape"),
}
_COLORS = {
    "train": ("pink", "black", "white", "brown", "grey", "gold", "turquoise", "magenta", "beige"),
    "held_out": ("silver", "cyan", "maroon", "navy", "lavender"),
}
_COUNTS = {"train": (10, 11, 12, 15, 20, 25, 30, 40, 50, 100), "held_out": (13, 16, 24, 60, 1000)}


@dataclass(frozen=True)
class DeclinedRequest:
    reason: str  # one of REASONS
    text: str  # the user's request
    reply: str  # what the assistant answers instead of drawing


def impossible_request(rng: np.random.Generator, phrasing: str = "train", reason: str | None = None) -> DeclinedRequest:
    """A request outside the scene world (of `reason`, or one drawn at random) with its reply."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing {phrasing!r} is unknown; choose from {', '.join(PHRASINGS)}")
    reason = reason or REASONS[int(rng.integers(len(REASONS)))]
    if reason not in REASONS:
        raise ValueError(f"reason {reason!r} is unknown; choose from {', '.join(REASONS)}")
    thing, why = _MAKERS[reason](rng, phrasing)
    return DeclinedRequest(reason, _pick(rng, FRAMES[phrasing]).format(thing), f"{why} {CAPABILITIES}")


def _unknown_object(rng, phrasing):
    thing = _pick(rng, _OBJECTS[phrasing])
    return thing, f"Sorry, I can't draw {thing}."


def _unknown_shape(rng, phrasing):
    shape = _pick(rng, _SHAPES[phrasing])
    color = _pick(rng, tuple(COLORS)) if rng.random() < 0.6 else ""
    thing = with_article(f"{color} {shape}".strip())
    return thing, f"Sorry, I can't draw {with_article(shape)}: it is not one of my shapes."


def _unknown_color(rng, phrasing):
    color, shape = _pick(rng, _COLORS[phrasing]), _pick(rng, SHAPES)
    return with_article(f"{color} {shape}"), f"Sorry, I can't draw in {color}: it is not one of my colours."


def _too_many(rng, phrasing):
    n = _pick(rng, _COUNTS[phrasing])
    count = NUMBER_WORDS.get(n, str(n)) if rng.random() < 0.5 else str(n)
    words = [w for w in (_pick(rng, tuple(COLORS)) if rng.random() < 0.5 else "", plural(_pick(rng, SHAPES))) if w]
    return f"{count} {' '.join(words)}", f"Sorry, I can't draw {n} shapes: a picture holds at most {GRID * GRID}."


def _contradiction(rng, phrasing):
    if rng.random() < 0.5:
        first, second = rng.choice(len(SHAPES), size=2, replace=False).tolist()
        color = _pick(rng, tuple(COLORS))
        wording = ("{c} {a} that is also a {b}", "{c} {a} that is a {b} at the same time") if phrasing == "train" \
            else ("{c} {a} which is really a {b}",)
        thing = with_article(_pick(rng, wording).format(c=color, a=SHAPES[first], b=SHAPES[second]))
        return thing, f"Sorry, I can't draw that: one shape cannot be both a {SHAPES[first]} and a {SHAPES[second]}."
    first, second = rng.choice(len(COLORS), size=2, replace=False).tolist()
    names, shape = tuple(COLORS), _pick(rng, SHAPES)
    wording = ("a {s} that is completely {a} and completely {b}", "a {s} that is all {a} and all {b}") \
        if phrasing == "train" else ("a {s} coloured only {a} and only {b}",)
    thing = _pick(rng, wording).format(s=shape, a=names[first], b=names[second])
    return thing, f"Sorry, I can't draw that: one {shape} cannot be all {names[first]} and all {names[second]}."


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


_MAKERS = {"unknown_object": _unknown_object, "unknown_shape": _unknown_shape, "unknown_color": _unknown_color,
           "too_many": _too_many, "contradiction": _contradiction}
