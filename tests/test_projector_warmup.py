"""The projector's warm-up from slot words: the grounding file, the fit, bad files, resume, the build step."""
from __future__ import annotations

import json

import pytest
import torch

from assistant.model import GlyphModel
from data_gen import slot_words
from data_gen.scene_chats import write_chats
from data_gen.scene_dataset import write_scene_dataset
from tests.tiny_parts import assistant_config, build_parts, stage1_args
from training import build, train_align
from training import assistant_stage
from training.chat_data import ChatDataError
from training.projector_warmup import nearest_share, read_slot_words, slot_targets, warm_up_projector


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("warmup")
    scenes = write_scene_dataset(root / "scenes", n=40, seed=3)
    return {"root": root, "scenes": scenes, "parts": build_parts(root),
            "align": write_chats(scenes, root / "chats" / "align.jsonl", "align", n=16, seed=1)}


def test_each_slot_gets_the_words_of_the_objects_whose_centres_lie_in_it(world, tmp_path):
    out = tmp_path / "chats" / "slot-words.jsonl"
    assert slot_words.write_slot_words(world["scenes"], out, grid=3) > 20
    scenes = [json.loads(line) for line in (world["scenes"] / "train.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(scenes)
    for scene, row in zip(scenes, rows):
        assert (out.parent / row["image"]).resolve() == (world["scenes"] / scene["image"]).resolve()
        expected = ["empty"] * 9
        for thing in scene["objects"]:  # the scene world's own grid cell of each object
            expected[thing["row"] * 3 + thing["col"]] = f"{thing['size']} {thing['color']} {thing['shape']}"
        assert row["slots"] == expected
    whole = slot_words.slot_texts(scenes[0]["objects"], grid=1)
    assert len(whole) == 1 and whole[0].count(" and ") == len(scenes[0]["objects"]) - 1
    with pytest.raises(ValueError, match="--grid"):
        slot_words.write_slot_words(world["scenes"], tmp_path / "bad.jsonl", grid=0)
    assert slot_words.main(["--scenes", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.jsonl")]) == 2


def test_the_warm_up_puts_each_slot_nearest_its_own_words(world, tmp_path):
    words = tmp_path / "slot-words.jsonl"
    slot_words.write_slot_words(world["scenes"], words, grid=2)  # the tiny CLIP: 2×2 patches, one slot each
    torch.manual_seed(0)
    model = GlyphModel.build(assistant_config(world["parts"]))
    features, bank, targets = slot_targets(model, words, cache_dir=None)
    before = nearest_share(model.projector, features, bank, targets)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not n.startswith("projector.")}
    warm_up_projector(model, words, steps=1000, cache_dir=tmp_path / "cache", seed=0)
    after = nearest_share(model.projector, features, bank, targets)  # 36 pictures; a tenth of them held out
    assert before < 0.3 and after > 0.75, (before, after)  # measured: 0.0 before, about 0.85 after
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)  # only the projector


def test_a_bad_slot_words_file_is_one_error_naming_its_line(world, tmp_path, capsys):
    slots = 4
    good = {"image": "../scenes/images/000000.png", "slots": ["empty"] * slots}
    cases = {"not-json.jsonl": "{oops", "no-slots.jsonl": json.dumps({"image": "a.png"}),
             "three-slots.jsonl": json.dumps(good | {"slots": ["empty"] * 3})}
    for name, line in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(ChatDataError, match=f"{name}:2"):
            read_slot_words(path, slots)
    with pytest.raises(ChatDataError, match="--grid"):
        read_slot_words(tmp_path / "three-slots.jsonl", slots)
    with pytest.raises(ChatDataError, match="glyph data slot-words"):
        read_slot_words(tmp_path / "missing.jsonl", slots)
    out = tmp_path / "align"
    assert train_align.main(stage1_args(world, out, "--steps", "1", "--slot-words",
                                        str(tmp_path / "three-slots.jsonl"))) == 2
    assert "three-slots.jsonl:2" in capsys.readouterr().err and not (out / "model.safetensors").exists()


def test_stage_1_warms_up_once_and_a_resumed_run_does_not_again(world, tmp_path, monkeypatch, capsys):
    words = tmp_path / "slot-words.jsonl"
    slot_words.write_slot_words(world["scenes"], words, grid=2)
    calls = []
    real = assistant_stage.warm_up_projector
    monkeypatch.setattr(assistant_stage, "warm_up_projector", lambda *a, **k: calls.append(a) or real(*a, **k))
    args = stage1_args(world, tmp_path / "align", "--steps", "2", "--slot-words", str(words), "--warmup-steps", "20")
    assert train_align.main(args + ["--stop-after", "1"]) == 0
    assert len(calls) == 1 and "projector warm-up:" in capsys.readouterr().out
    assert train_align.main(args) == 0 and len(calls) == 1  # resumed from its checkpoint: no second warm-up
    assert train_align.main(stage1_args(world, tmp_path / "zero", "--slot-words", str(words),
                                        "--warmup-steps", "0")) == 2
    assert "--warmup-steps 0" in capsys.readouterr().err


def test_the_build_writes_slot_words_and_hands_them_to_stage_1(tmp_path):
    (module, argv), = build.step_runs({"step": "slot_words", "grid": 3}, tmp_path, 1.0)
    assert module == "data_gen.slot_words"
    assert argv == ["--scenes", str(tmp_path / "scenes"), "--out", str(tmp_path / "chats" / "slot-words.jsonl"),
                    "--grid", "3"]
    assert not build.done({"step": "slot_words"}, tmp_path)
    (_, align), = build.step_runs({"step": "align", "slot_words": True, "steps": 10}, tmp_path, 1.0)
    assert align[align.index("--slot-words") + 1] == str(tmp_path / "chats" / "slot-words.jsonl")
    (_, plain), = build.step_runs({"step": "align", "slot_words": False, "steps": 10}, tmp_path, 1.0)
    assert "--slot-words" not in plain
