"""The renderer: boxes match pixels, colours are the palette's, specs re-render byte for byte."""
import numpy as np
import pytest

from scenes.render import render_scene
from scenes.world import BACKGROUND, COLORS, GRID, Scene, SceneConfig, sample_scene, scene_rng


def pixel_box(image: np.ndarray, row: int, col: int):
    """Bounding box [x1, y1, x2, y2) of the pixels that differ from the background in one grid cell."""
    size = image.shape[0]
    cell = slice(row * size // GRID, (row + 1) * size // GRID), slice(col * size // GRID, (col + 1) * size // GRID)
    covered = np.abs(image[cell].astype(int) - BACKGROUND).sum(-1) > 3 * 40
    ys, xs = np.nonzero(covered)
    return (xs.min() + cell[1].start, ys.min() + cell[0].start, xs.max() + 1 + cell[1].start,
            ys.max() + 1 + cell[0].start)


def iou(a, b):
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("image_size", [64, 128])
def test_boxes_match_rendered_pixels(image_size):
    worst = 1.0
    for i in range(200):
        scene = sample_scene(scene_rng(11, i), SceneConfig(image_size=image_size))
        image = np.asarray(render_scene(scene))
        assert image.shape == (image_size, image_size, 3)
        for o in scene.objects:
            worst = min(worst, iou(pixel_box(image, o.row, o.col), [v * image_size for v in o.box]))
    assert worst >= 0.9


def test_objects_are_drawn_in_their_palette_colour_on_a_plain_background():
    for i in range(100):
        scene = sample_scene(scene_rng(12, i))
        image = np.asarray(render_scene(scene)).reshape(-1, 3)
        colours = {tuple(c) for c in np.unique(image, axis=0)}
        assert BACKGROUND in colours
        for o in scene.objects:
            assert COLORS[o.color] in colours


def test_empty_cells_are_pure_background():
    for i in range(100):
        scene = sample_scene(scene_rng(13, i))
        image = np.asarray(render_scene(scene))
        occupied = {(o.row, o.col) for o in scene.objects}
        for row in range(GRID):
            for col in range(GRID):
                if (row, col) not in occupied:
                    cell = image[row * 64 // GRID:(row + 1) * 64 // GRID, col * 64 // GRID:(col + 1) * 64 // GRID]
                    assert (cell == BACKGROUND).all()


def test_spec_round_trip_re_renders_identical_bytes():
    for i in range(30):
        scene = sample_scene(scene_rng(14, i))
        again = Scene.from_dict(scene.to_dict())
        assert render_scene(again).tobytes() == render_scene(scene).tobytes()
