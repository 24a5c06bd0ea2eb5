"""train_vqvae end to end on tiny data: a smoke run, resume after a kill, bad input, and `glyph eval vq`."""
import json
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from assistant.vq import VQModel
from training import train_vqvae
from training.eval_vq import main as eval_main
from training.image_data import FOLDER_HOLDOUT, _hash_fraction

TINY_FLAGS = ["--image-size", "32", "--downsample", "8", "--stem", "2", "--channels", "16,32,32", "--groups", "8",
              "--codebook-size", "16", "--code-dim", "4", "--encoder-blocks", "1", "--decoder-blocks", "1",
              "--batch-size", "4", "--eval-images", "6", "--log-every", "1", "--sample-every", "2"]
SCENES = (60, 3, 0.2)  # the scene dataset (n, seed, holdout) of conftest's `scenes` fixture


def run(scenes, out, *extra):
    return train_vqvae.main(["--data", str(scenes), "--out", str(out), *TINY_FLAGS, *extra])


def test_two_steps_end_to_end(scenes, tmp_path, capsys):
    assert run(scenes, tmp_path / "run", "--steps", "2") == 0
    run_dir = tmp_path / "run"
    model = VQModel.from_pretrained(run_dir)
    assert model.config.grid == 4 and model.config.codebook_size == 16
    report = json.loads((run_dir / "report.json").read_text())
    assert report["steps"] == 2 and report["held_out"]["images"] == 6
    assert 0 <= report["held_out"]["parser_agreement"] <= 1 and report["held_out"]["psnr_db"] > 0
    # The 6 held-out originals above their reconstructions: one row of 8 tiles of 32 px + 2 px gaps, 3× enlarged.
    for picture in ("report.png", "samples/step_000002.png"):
        assert Image.open(run_dir / picture).size == (3 * (8 * 34 + 2), 3 * (2 * 34 + 2)), picture
    assert Image.open(run_dir / "curves.png").width > 100
    assert list((run_dir / "logs").rglob("events.out.tfevents.*")), "no TensorBoard log"
    # A finished run is not trained again.
    assert run(scenes, tmp_path / "run", "--steps", "2") == 0
    assert "already trained" in capsys.readouterr().out


def test_kmeans_after_a_warm_up_starts_the_codebook_on_the_encoder_outputs(scenes, tmp_path, capsys):
    assert run(scenes, tmp_path / "run", "--steps", "6", "--kmeans-after", "3") == 0
    assert "step 3: codebook started on k-means centres of" in capsys.readouterr().out
    history = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["history"]
    assert [row["commitment"] == 0 for row in history] == [True] * 3 + [False] * 3  # quantised from step 3 on
    assert history[3]["restarts"] == 0  # k-means left no code dead


def test_more_training_reconstructs_the_held_out_images_better(scenes, tmp_path):
    reports = {}
    for steps in (2, 50):
        assert run(scenes, tmp_path / str(steps), "--steps", str(steps), "--warmup", "5", "--sample-every", "50",
                   "--log-every", "10") == 0
        reports[steps] = json.loads((tmp_path / str(steps) / "report.json").read_text())["held_out"]
    assert reports[50]["psnr_db"] > reports[2]["psnr_db"] + 3, reports  # on images it never trained on
    history = json.loads((tmp_path / "50" / "checkpoint" / "state.json").read_text())["history"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"], history


def test_a_killed_run_resumes_and_ends_where_an_unbroken_run_ends(scenes, tmp_path, monkeypatch):
    assert run(scenes, tmp_path / "unbroken", "--steps", "5") == 0
    real_batch = train_vqvae.training_batch

    def killed_at_step_3(images, step, args, device):
        if step == 3:
            raise KeyboardInterrupt  # what Ctrl+C does
        return real_batch(images, step, args, device)

    monkeypatch.setattr(train_vqvae, "training_batch", killed_at_step_3)
    assert run(scenes, tmp_path / "broken", "--steps", "5") == 130  # Ctrl+C's exit status
    state = json.loads((tmp_path / "broken" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 3 and not (tmp_path / "broken" / "model.safetensors").exists()
    monkeypatch.setattr(train_vqvae, "training_batch", real_batch)
    assert run(scenes, tmp_path / "broken", "--steps", "5") == 0
    resumed = load_file(tmp_path / "broken" / "model.safetensors")
    unbroken = load_file(tmp_path / "unbroken" / "model.safetensors")
    for name in unbroken:
        torch.testing.assert_close(resumed[name], unbroken[name], rtol=0, atol=1e-6, msg=name)
    history = json.loads((tmp_path / "broken" / "checkpoint" / "state.json").read_text())["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("damage", ["truncated weights", "a pickle of a class"])
def test_a_damaged_checkpoint_is_one_clear_error_and_overwrite_recovers(scenes, tmp_path, capsys, monkeypatch,
                                                                        damage):
    real_batch = train_vqvae.training_batch

    def killed_at_step_2(images, step, args, device):
        if step == 2:
            raise KeyboardInterrupt
        return real_batch(images, step, args, device)

    monkeypatch.setattr(train_vqvae, "training_batch", killed_at_step_2)
    assert run(scenes, tmp_path / "run", "--steps", "3") == 130
    monkeypatch.setattr(train_vqvae, "training_batch", real_batch)
    checkpoint = tmp_path / "run" / "checkpoint"
    if damage == "truncated weights":
        weights = checkpoint / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    else:  # weights_only refuses to unpickle a class: it must be refused by name, not as a traceback
        (checkpoint / "optimizer.pt").write_bytes(pickle.dumps(Path("anything")))
    assert run(scenes, tmp_path / "run", "--steps", "3") == 2
    assert "the checkpoint" in (err := capsys.readouterr().err) and "--overwrite" in err and "Traceback" not in err
    assert run(scenes, tmp_path / "run", "--steps", "3", "--overwrite") == 0


def test_resuming_with_another_config_is_refused(scenes, tmp_path, capsys):
    assert run(scenes, tmp_path / "run", "--steps", "1") == 0
    assert run(scenes, tmp_path / "run", "--steps", "1", "--codebook-size", "32") == 2
    assert "another model config" in capsys.readouterr().err


def test_an_empty_folder_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run(tmp_path / "empty", tmp_path / "run", "--steps", "1") == 2
    assert "holds no images" in capsys.readouterr().err


def test_a_corrupt_image_fails_clearly_or_is_skipped_and_counted(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        Image.new("RGB", (48, 40), (20 * i, 100, 200)).save(folder / f"{i:02d}.png")  # not square, not 32 px
    broken = folder / "00-broken.png"  # its name hashes into the training split
    assert _hash_fraction(broken.relative_to(folder)) >= FOLDER_HOLDOUT
    broken.write_bytes(b"\x89PNG, but not really")
    assert run(folder, tmp_path / "run", "--steps", "1") == 2
    err = capsys.readouterr().err
    assert "00-broken.png" in err and "--skip-bad" in err
    assert run(folder, tmp_path / "run", "--steps", "2", "--skip-bad") == 0
    assert "skipping 1 unreadable image" in capsys.readouterr().err
    assert "parser_agreement" not in json.loads((tmp_path / "run" / "report.json").read_text())["held_out"]


def test_an_unknown_recipe_key_is_refused(scenes, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("steps: 1\nlearning_rate: 0.1\n")
    assert run(scenes, tmp_path / "run", "--config", str(recipe)) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_glyph_eval_vq_reports_on_held_out_scenes(scenes, tmp_path, capsys):
    assert run(scenes, tmp_path / "run", "--steps", "2") == 0
    capsys.readouterr()
    assert eval_main(["--model", str(tmp_path / "run"), "--data", str(scenes), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "psnr_db" in out and "codebook_usage" in out and "parser_agreement" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0 < metrics["codebook_usage"] <= 1
    assert eval_main(["--model", str(tmp_path / "nothing"), "--data", str(scenes)]) == 2


def test_centred_objects_train_on_the_pictures_the_assistant_draws(scenes, tmp_path, capsys):
    from assistant.pixels import to_uint8
    from scenes.render import render_scene
    from scenes.world import centred
    from training.image_data import ImageDataError, load_images

    drawn = load_images(scenes, "validation", 48, limit=3, centred_objects=True)
    as_files = load_images(scenes, "validation", 48, limit=3)
    for pixels, scene in zip(drawn.pixels, as_files.scenes):
        expected = torch.from_numpy(to_uint8(render_scene(centred(scene, 48)), 48))
        assert torch.equal(pixels, expected)
    assert not torch.equal(drawn.pixels, as_files.pixels)  # the dataset's own scenes are jittered
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    with pytest.raises(ImageDataError, match="not a scene dataset"):
        load_images(folder, "train", 32, centred_objects=True)
    # A one-token-per-cell tokenizer (a 3×3 grid) trains on them, and eval vq reads them the same way.
    grid_flags = ["--image-size", "48", "--downsample", "16", "--stem", "4", "--centred-objects", "--steps", "2"]
    assert run(scenes, tmp_path / "cells", *grid_flags) == 0
    assert VQModel.from_pretrained(tmp_path / "cells").config.grid == 3
    assert eval_main(["--model", str(tmp_path / "cells"), "--data", str(scenes), "--centred-objects",
                      "--limit", "4"]) == 0
    assert "psnr" in capsys.readouterr().out
