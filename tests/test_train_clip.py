"""train_clip end to end on tiny data: a smoke run that loads as a vision tower, resume after a kill, bad input."""
import json

import open_clip
import torch
from PIL import Image
from safetensors.torch import load_file

from assistant.config import VisionConfig
from assistant.vision import VisionTower
from training import train_clip
from training.image_data import load_images

TINY_FLAGS = ["--image-size", "32", "--patch-size", "8", "--vision-width", "32", "--vision-layers", "2",
              "--vision-head-width", "16", "--text-width", "32", "--text-heads", "2", "--text-layers", "1",
              "--embed-dim", "16", "--batch-size", "4", "--eval-images", "8", "--log-every", "1",
              "--eval-every", "1", "--save-every", "100", "--precision", "fp32"]
SCENES = (24, 0, 0.25)  # the scene dataset (n, seed, holdout) of conftest's `scenes` fixture


def run(scenes, out, *extra):
    return train_clip.main(["--data", str(scenes), "--out", str(out), *TINY_FLAGS, *extra])


def test_two_steps_end_to_end_and_the_result_loads_as_an_open_clip_model(scenes, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(scenes, out, "--steps", "2") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == 2 and report["held_out"]["candidates"] == 5
    assert 0 <= report["held_out"]["i2t_top1"] <= report["held_out"]["i2t_top5"] <= 1
    assert report["parameters"]["token_embedding"] == 49408 * 32
    for picture in ("curves.png", "retrieval.png", "held_out.png"):
        assert Image.open(out / picture).width > 100, picture
    assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard log"

    tower = VisionTower(VisionConfig(f"local-dir:{out}", None))
    image = Image.open(scenes / "images" / "000000.png")
    pixels = tower.preprocess(image)  # open_clip's own preprocessing, from the saved config
    assert tower(torch.stack([pixels, pixels])).shape == (2, 16, 32)  # (B, (32/8)², vision width)
    saved = load_file(out / "open_clip_model.safetensors")
    for name, value in tower.encoder.state_dict().items():
        torch.testing.assert_close(value, saved["visual." + name], rtol=0, atol=0, msg=name)
    # Training fed the model what open_clip's preprocessing gives.
    torch.testing.assert_close(train_clip.normalize(load_images(scenes, "train", 32).pixels[:1])[0],
                               tower.preprocess(Image.open(load_images(scenes, "train", 32).paths[0])))
    # The whole CLIP loads strictly, and its tokenizer too, as for a downloaded model.
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}")
    tokens = open_clip.get_tokenizer(f"local-dir:{out}")(["a small red circle in the center"])
    assert model.encode_text(tokens).shape == (1, 16)

    assert run(scenes, out, "--steps", "2") == 0  # a finished run is not trained again
    assert "already trained" in capsys.readouterr().out
    assert run(scenes, out, "--steps", "2", "--vision-width", "64") == 2
    assert "another model config" in capsys.readouterr().err


def test_a_killed_run_resumes_and_ends_where_an_unbroken_run_ends(scenes, tmp_path, monkeypatch):
    assert run(scenes, tmp_path / "unbroken", "--steps", "4", "--eval-every", "0") == 0
    real_batch = train_clip.training_batch

    def killed_at_step_2(pairs, step, *rest):
        if step == 2:
            raise KeyboardInterrupt  # what Ctrl+C does
        return real_batch(pairs, step, *rest)

    monkeypatch.setattr(train_clip, "training_batch", killed_at_step_2)
    assert run(scenes, tmp_path / "broken", "--steps", "4", "--eval-every", "0") == 130  # Ctrl+C's exit status
    state = json.loads((tmp_path / "broken" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2 and not (tmp_path / "broken" / "open_clip_model.safetensors").exists()
    monkeypatch.setattr(train_clip, "training_batch", real_batch)
    assert run(scenes, tmp_path / "broken", "--steps", "4", "--eval-every", "0") == 0
    resumed = load_file(tmp_path / "broken" / "open_clip_model.safetensors")
    unbroken = load_file(tmp_path / "unbroken" / "open_clip_model.safetensors")
    for name in unbroken:
        torch.testing.assert_close(resumed[name], unbroken[name], rtol=0, atol=1e-6, msg=name)
    history = json.loads((tmp_path / "broken" / "checkpoint" / "state.json").read_text())["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4]


def test_bad_data_is_refused_with_one_clear_message(tmp_path, capsys):
    assert run(tmp_path / "nothing", tmp_path / "run", "--steps", "1") == 2
    assert "nothing does not exist" in capsys.readouterr().err
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "photos" / "a.png")
    assert run(tmp_path / "photos", tmp_path / "run", "--steps", "1") == 2
    err = capsys.readouterr().err
    assert "not a scene dataset" in err and "glyph data scenes" in err and "Traceback" not in err
