"""Scene specs: sampling invariants, validation of names and counts, JSON round trip."""
import itertools

import pytest

from scenes.world import (CELL_GAP, GRID, SIZE_FRACTION, Scene, SceneConfig, SceneError, sample_scene,
                                  scene_rng)


def scenes(n=300, seed=7, **config):
    return [sample_scene(scene_rng(seed, i), SceneConfig(**config)) for i in range(n)]


def test_object_counts_cells_and_vocabulary_cover_the_config():
    sampled = scenes()
    counts = {len(s.objects) for s in sampled}
    assert counts == {1, 2, 3, 4}
    objects = [o for s in sampled for o in s.objects]
    assert {o.shape for o in objects} == set(SceneConfig().shapes)
    assert {o.color for o in objects} == set(SceneConfig().colors)
    assert {(o.row, o.col) for o in objects} == set(itertools.product(range(GRID), range(GRID)))
    for scene in sampled:
        cells = [(o.row, o.col) for o in scene.objects]
        assert len(cells) == len(set(cells)), "two objects share a cell"


def test_boxes_are_square_sized_and_inside_their_cell_with_a_gap():
    for scene in scenes():
        for o in scene.objects:
            x1, y1, x2, y2 = o.box
            side = SIZE_FRACTION[o.size] / GRID
            assert x2 - x1 == pytest.approx(y2 - y1) == pytest.approx(side, abs=0.5 / 64)
            assert all((v * 64).is_integer() for v in o.box), "boxes lie on whole pixels"
            gap = CELL_GAP / GRID
            assert o.col / GRID + gap <= x1 and x2 <= (o.col + 1) / GRID - gap
            assert o.row / GRID + gap <= y1 and y2 <= (o.row + 1) / GRID - gap


def test_restricted_config_is_respected():
    sampled = scenes(shapes=("ring",), colors=("blue", "red"), min_objects=2, max_objects=2)
    assert all(len(s.objects) == 2 for s in sampled)
    assert {o.shape for s in sampled for o in s.objects} == {"ring"}
    assert {o.color for s in sampled for o in s.objects} == {"blue", "red"}


def test_same_seed_and_index_give_the_same_scene():
    assert scenes(50, seed=3) == scenes(50, seed=3)
    assert scenes(50, seed=3) != scenes(50, seed=4)


def test_dict_round_trip():
    for scene in scenes(50):
        assert Scene.from_dict(scene.to_dict()) == scene


@pytest.mark.parametrize("config, message", [
    (dict(shapes=("circle", "star")), "unknown shape name(s) ['star']"),
    (dict(colors=("pink",)), "unknown color name(s) ['pink']"),
    (dict(shapes=()), "unknown shape name(s)"),
    (dict(min_objects=0), "object counts"),
    (dict(min_objects=3, max_objects=2), "object counts"),
    (dict(max_objects=10), "object counts"),
    (dict(image_size=8), "too small"),
])
def test_bad_configs_are_refused_with_a_message_naming_the_problem(config, message):
    with pytest.raises(SceneError) as error:
        SceneConfig(**config).validate()
    assert message in str(error.value)


def test_centred_scenes_keep_what_a_reader_knows_and_put_each_object_in_the_middle_of_its_cell():
    from scenes.world import centred

    for index in range(40):
        scene = sample_scene(scene_rng(4, index))
        drawn = centred(scene, 72)
        assert drawn.image_size == 72 and drawn.keys() == scene.keys()
        for obj in drawn.objects:
            x1, y1, x2, y2 = (round(v * 72) for v in obj.box)
            # 24 px cells: an object sits at the same offset in every cell, so its pixels are one fixed block
            offset = {"small": 6, "large": 3}[obj.size]  # (24 - 12) / 2, and (24 - 19) / 2 rounded half up
            assert (x1 - 24 * obj.col, y1 - 24 * obj.row) == (offset, offset)
            assert x2 - x1 == y2 - y1 == {"small": 12, "large": 19}[obj.size]
