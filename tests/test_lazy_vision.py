"""A lazy vision tower (assistant/vision.py): sizes from the folder at once, the encoder on first use, the same
features as a tower built at once, casts made before kept; a folder that does not agree is built (and fails) at
load."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_decoder import build
from tiny_parts import build_clip

from assistant.config import ConfigError, VisionConfig
from assistant.model import GlyphModel
from assistant.vision import VisionTower

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return build_clip(tmp_path_factory.mktemp("clip"))


def picture() -> Image.Image:
    return Image.new("RGB", (20, 20), (200, 40, 90))


def test_a_lazy_tower_knows_its_sizes_and_gives_the_same_features(clip):
    config = VisionConfig(f"local-dir:{clip}", None)
    eager, lazy = VisionTower(config), VisionTower(config, lazy=True)
    assert not lazy.built and eager.built
    assert (lazy.image_size, lazy.num_patches, lazy.hidden_size, lazy.layer) == \
        (eager.image_size, eager.num_patches, eager.hidden_size, eager.layer)
    pixels = lazy.preprocess(picture())[None]  # the first use builds it
    assert lazy.built
    torch.testing.assert_close(lazy(pixels), eager(eager.preprocess(picture())[None]))


def test_a_cast_before_the_first_picture_is_kept(clip):
    config = VisionConfig(f"local-dir:{clip}", None)
    lazy = VisionTower(config, lazy=True).to(torch.bfloat16)
    eager = VisionTower(config).to(torch.bfloat16)
    pixels = eager.preprocess(picture())[None]
    assert lazy(pixels).dtype == torch.bfloat16
    torch.testing.assert_close(lazy(pixels), eager(pixels))


def test_a_folder_that_does_not_agree_with_its_config_fails_at_load(clip, tmp_path):
    wrong = tmp_path / "clip"
    wrong.mkdir()
    (wrong / "open_clip_model.safetensors").write_bytes((clip / "open_clip_model.safetensors").read_bytes())
    config = json.loads((clip / "open_clip_config.json").read_text())
    config["model_cfg"]["vision_cfg"]["width"] *= 2  # the weights are half as wide
    (wrong / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="could not load the open_clip vision model"):
        VisionTower(VisionConfig(f"local-dir:{wrong}", None), lazy=True)


def test_a_feature_layer_outside_the_tower_fails_at_load(clip):
    with pytest.raises(ConfigError, match="feature_layer 9 is outside"):
        VisionTower(VisionConfig(f"local-dir:{clip}", None, feature_layer=9), lazy=True)


CHAT = """
import sys, torch
from assistant.model import GlyphModel
model = GlyphModel.from_pretrained(sys.argv[1], merge_lora=True)
with torch.no_grad():
    model(torch.tensor([[5, 6, 7]]))
print("open_clip" in sys.modules)
"""


def test_an_assistant_loaded_to_chat_does_not_import_open_clip_before_a_picture(tmp_path):
    directory = build(tmp_path / "parts", "llama", lora=True).save_pretrained(tmp_path / "assistant")
    done = subprocess.run([sys.executable, "-c", CHAT, str(directory)], capture_output=True, text=True, cwd=REPO,
                          check=True)
    assert done.stdout.split()[-1] == "False"
    model = GlyphModel.from_pretrained(directory, merge_lora=True)
    with torch.no_grad():
        features = model.image_features(model.vision_tower.preprocess(picture())[None])
    assert model.vision_tower.built and features.shape[1] == model.layout.slots_per_image

