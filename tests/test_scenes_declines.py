"""Drawing requests outside the scene world, and the replies that decline them."""
from __future__ import annotations

import re

import numpy as np
import pytest

from scenes import declines as scene_declines
from scenes.declines import CAPABILITIES, PHRASINGS, REASONS, impossible_request
from scenes.world import COLORS, SHAPES


def requests(phrasing: str, n: int = 300):
    rng = np.random.default_rng(7)
    return [impossible_request(rng, phrasing) for _ in range(n)]


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_every_reason_comes_and_every_reply_says_what_can_be_drawn(phrasing):
    made = requests(phrasing)
    assert {r.reason for r in made} == set(REASONS)
    for request in made:
        assert request.reply.startswith("Sorry, I can't draw") and request.reply.endswith(CAPABILITIES)
        assert all(shape in CAPABILITIES for shape in SHAPES) and all(color in CAPABILITIES for color in COLORS)


def test_a_reply_names_what_it_cannot_draw():
    for request in requests("train"):
        if request.reason == "unknown_color":
            color = re.search(r"in (\w+):", request.reply).group(1)
            assert color in request.text and color not in COLORS
        if request.reason == "too_many":
            count = int(re.search(r"draw (\d+) shapes", request.reply).group(1))
            assert count > 9
        if request.reason == "contradiction":
            named = [s for s in SHAPES if s in request.text] + [c for c in COLORS if c in request.text]
            assert len(named) >= 2


def test_held_out_requests_use_things_and_wordings_training_never_does():
    for table in (scene_declines._OBJECTS, scene_declines._SHAPES, scene_declines._COLORS, scene_declines._COUNTS):
        assert not set(table["train"]) & set(table["held_out"])
    trained = {r.text for r in requests("train", 2000)}
    assert not trained & {r.text for r in requests("held_out")}


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="phrasing"):
        impossible_request(np.random.default_rng(0), "tests")
    with pytest.raises(ValueError, match="reason"):
        impossible_request(np.random.default_rng(0), "train", "too_few")
