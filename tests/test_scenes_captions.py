"""Captions: every object named with its size and position, and varied phrasing."""
import re

import numpy as np

from scenes.captions import SIZE_WORDS, describe, position_phrases
from scenes.world import sample_scene, scene_rng


def sampled(n=400, seed=21):
    for i in range(n):
        rng = scene_rng(seed, i)
        scene = sample_scene(rng)
        yield scene, describe(scene, rng)


def test_every_object_is_named_once_with_its_colour_and_shape():
    for scene, caption in sampled():
        for obj in scene.objects:
            same = sum(1 for o in scene.objects if (o.color, o.shape) == (obj.color, obj.shape))
            assert len(re.findall(rf"\b{obj.color} {obj.shape}\b", caption)) == same, caption


def test_every_object_has_a_size_word_and_its_position():
    for scene, caption in sampled():
        for obj in scene.objects:
            sizes = "|".join(SIZE_WORDS[obj.size])
            assert re.search(rf"\b({sizes}) {obj.color} {obj.shape}\b", caption), caption
            assert any(p in caption.lower() for p in position_phrases(obj.row, obj.col)), caption


def test_phrasing_and_order_vary():
    captions = [caption for _, caption in sampled()]
    openings = {" ".join(c.split()[:2]) for c in captions}
    assert len(openings) >= 15
    scene, _ = next(sampled(1))
    rngs = [np.random.default_rng(s) for s in range(30)]
    assert len({describe(scene, rng) for rng in rngs}) >= 10


def test_captions_read_as_sentences():
    for _, caption in sampled(100):
        assert caption[0].isupper() and caption.endswith(".")
        assert "  " not in caption and " ," not in caption
