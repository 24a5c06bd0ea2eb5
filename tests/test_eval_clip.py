"""`glyph eval clip`: linear probes on a CLIP's patch features."""
from __future__ import annotations

import json

import torch

from data_gen.scene_dataset import write_scene_dataset
from tests.tiny_parts import build_clip
from training import eval_clip
from training.eval_clip import cell_patches, linear_probe


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


def test_the_command_writes_every_probe(tmp_path, capsys):
    scenes = write_scene_dataset(tmp_path / "scenes", n=120, seed=2)
    clip = build_clip(tmp_path / "clip")
    assert eval_clip.main(["--model", str(clip), "--data", str(scenes), "--train", "60", "--test", "20"]) == 0
    report = json.loads((clip / "probes.json").read_text())
    probes = {"color_centre_patch", "color_3x3_patches", "shape_centre_patch", "shape_3x3_patches",
              "color_centre_patch_mlp", "shape_centre_patch_mlp", "patch_index", "grid_cell"}
    assert probes <= set(report) and all(0.0 <= report[k] <= 1.0 for k in probes)
    assert "shape_3x3_patches" in capsys.readouterr().out
    assert eval_clip.main(["--model", str(tmp_path / "missing"), "--data", str(scenes)]) == 2
    assert "glyph eval clip:" in capsys.readouterr().err
