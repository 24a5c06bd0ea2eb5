"""glyph eval binding: the per-cell clean features are exact means, and a model that cannot take them is told so."""
import pytest
import torch

from assistant.config import ConfigError
from data_gen.scene_dataset import write_scene_dataset
from scenes.world import GRID, sample_scene, scene_rng
from training import eval_binding
from training.eval_assistant import load_scenes
from training.eval_binding import CONTENTS, cell_contents, prototypes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = write_scene_dataset(tmp_path_factory.mktemp("binding") / "scenes", n=3000, seed=3)
    return load_scenes(folder, "train", limit=2500)


def test_cell_contents_name_each_cells_object_or_empty():
    for i in range(50):
        scene = sample_scene(scene_rng(9, i))
        contents = cell_contents(scene)
        assert len(contents) == GRID * GRID and contents.count(0) == GRID * GRID - len(scene.objects)
        for obj in scene.objects:  # objects differing in colour or shape get different contents
            others = [o for o in scene.objects if (o.color, o.shape) != (obj.color, obj.shape)]
            assert all(contents[obj.row * GRID + obj.col] != contents[o.row * GRID + o.col] for o in others)


def test_prototypes_are_the_mean_feature_of_each_cell_content(scenes, monkeypatch):
    features = torch.randn(len(scenes), GRID * GRID, 6)
    monkeypatch.setattr(eval_binding, "projected", lambda model, items: features)
    protos = prototypes(None, scenes)
    labels = torch.tensor([cell_contents(item.scene) for item in scenes])
    for cell, content in ((0, 0), (4, 3), (8, CONTENTS - 1)):
        chosen = labels[:, cell] == content
        assert torch.allclose(protos[cell, content], features[chosen, cell].mean(0), atol=1e-6)


def test_too_few_training_scenes_or_slots_that_are_not_cells_are_refused(scenes, monkeypatch):
    monkeypatch.setattr(eval_binding, "projected", lambda model, items: torch.zeros(len(items), GRID * GRID, 4))
    with pytest.raises(ConfigError, match="--train"):
        prototypes(None, scenes[:20])
    monkeypatch.setattr(eval_binding, "projected", lambda model, items: torch.zeros(len(items), 4, 4))
    with pytest.raises(ConfigError, match="one per grid cell"):
        prototypes(None, scenes)


def test_the_command_explains_an_assistant_without_one_slot_per_cell(tiny_assistant, scenes, capsys):
    data = scenes[0].image.parent.parent
    assert eval_binding.main(["--model", str(tiny_assistant), "--data", str(data), "--train", "40"]) == 2
    assert "one per grid cell" in capsys.readouterr().err
