"""`glyph eval clip`: linear probes on a CLIP's patch features."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from data_gen.scene_dataset import write_scene_dataset
from scenes.world import COLORS, SHAPES
from tests.tiny_parts import build_clip
from training import eval_clip
from training.eval_assistant import load_scenes
from training.eval_clip import GRID, cell_labels, cell_patches, linear_probe, probe_all

OBJECT_PROBES = ("color_centre_patch", "color_3x3_patches", "shape_centre_patch", "shape_3x3_patches",
                 "color_centre_patch_mlp", "shape_centre_patch_mlp")
SIDE = 9  # patches per side of the stand-in tower: 3 × 3 per grid cell, so a 3×3 window stays in its cell


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scene_dataset(tmp_path_factory.mktemp("probes") / "scenes", n=120, seed=2)


def telling_features(items) -> torch.Tensor:
    """(N, P, D) patch features that spell out each patch's index and its cell's object's colour and shape.

    Each class is a fixed dense random code (not a one-hot column, which a class rare in the training rows would
    leave with no spread for the probe's standardising to divide by).
    """
    cell_of = [(p // SIDE) * GRID // SIDE * GRID + (p % SIDE) * GRID // SIDE for p in range(SIDE * SIDE)]
    generator = torch.Generator().manual_seed(0)
    color_code, shape_code = (torch.randn(1 + len(names), 8, generator=generator) for names in (COLORS, SHAPES))
    colors, shapes = cell_labels(items, "color")[:, cell_of], cell_labels(items, "shape")[:, cell_of]
    index = torch.eye(SIDE * SIDE).expand(len(items), -1, -1)
    return torch.cat([index, color_code[colors], shape_code[shapes]], -1)


@pytest.fixture
def one_thread():
    """The probes here are tiny matrices: one thread runs them several times faster than a shared pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def probes_on(features, scenes, monkeypatch) -> dict:
    monkeypatch.setattr(eval_clip, "patch_features", lambda tower, items: features(items))
    tower = SimpleNamespace(config=SimpleNamespace(feature_layer=-2))
    return probe_all(tower, load_scenes(scenes, "train", 60), load_scenes(scenes, "test", 20))


def test_features_that_carry_the_labels_score_full_marks(scenes, monkeypatch, one_thread):
    report = probes_on(telling_features, scenes, monkeypatch)
    assert {k: report[k] for k in (*OBJECT_PROBES, "patch_index", "grid_cell")} == dict.fromkeys(
        (*OBJECT_PROBES, "patch_index", "grid_cell"), 1.0)
    tested = len(load_scenes(scenes, "test", 20))  # the split may hold fewer than 20
    assert (report["train_scenes"], report["test_scenes"], report["feature_layer"]) == (60, tested, -2)


def test_constant_features_score_at_chance(scenes, monkeypatch, one_thread):
    """A probe that sees nothing names one class for all: it scores that class's share of the test labels."""
    report = probes_on(lambda items: torch.ones(len(items), SIDE * SIDE, 8), scenes, monkeypatch)
    assert report["patch_index"] == round(1 / SIDE ** 2, 4) and report["grid_cell"] == round(1 / GRID ** 2, 4)
    for attribute in ("color", "shape"):
        labels = cell_labels(load_scenes(scenes, "test", 20), attribute).flatten()
        labels = labels[labels > 0]
        shares = {round(float((labels == c).float().mean()), 4) for c in labels.unique()}
        for probe in (k for k in OBJECT_PROBES if k.startswith(attribute)):
            assert report[probe] in shares and report[probe] <= max(shares), probe


def test_a_probe_reads_separable_classes_and_not_shuffled_ones():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=generator) * 3
    labels = torch.randint(0, 4, (400,), generator=generator)
    x = centres[labels] + torch.randn(400, 16, generator=generator)
    assert linear_probe(x[:300], labels[:300], x[300:], labels[300:]) > 0.95
    shuffled = labels[torch.randperm(400, generator=generator)]
    assert linear_probe(x[:300], shuffled[:300], x[300:], shuffled[300:]) < 0.5  # chance is 0.25


def test_the_hidden_layer_probe_reads_what_a_linear_one_cannot():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(800, 2, generator=generator)
    labels = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()  # XOR of the signs: no line separates the classes
    assert linear_probe(x[:600], labels[:600], x[600:], labels[600:]) < 0.7
    assert linear_probe(x[:600], labels[:600], x[600:], labels[600:], epochs=400, hidden=64) > 0.9


def test_cells_take_the_patches_around_their_centres():
    cells = cell_patches(side=8, radius=1)
    assert len(cells) == 9 and all(len(c) == 9 for c in cells)
    assert cells[0][4] == 1 * 8 + 1 and cells[8][4] == 6 * 8 + 6  # centres of the top-left and bottom-right cells
    assert all(0 <= p < 64 for c in cells for p in c)
    assert cell_patches(side=8, radius=0)[4] == [4 * 8 + 4]


def test_the_command_writes_every_probe(tmp_path, scenes, capsys):
    clip = build_clip(tmp_path / "clip")
    assert eval_clip.main(["--model", str(clip), "--data", str(scenes), "--train", "60", "--test", "20"]) == 0
    report = json.loads((clip / "probes.json").read_text())
    probes = {*OBJECT_PROBES, "patch_index", "grid_cell"}
    assert probes <= set(report) and all(0.0 <= report[k] <= 1.0 for k in probes)
    assert "shape_3x3_patches" in capsys.readouterr().out
    assert eval_clip.main(["--model", str(tmp_path / "missing"), "--data", str(scenes)]) == 2
    assert "glyph eval clip:" in capsys.readouterr().err
