"""Shipping a build's parts (glyph ship, glyph build --ship) and loading the shipped assistant, on tiny parts."""
from __future__ import annotations

import dataclasses
import json
import pickle
import re
import shutil

import pytest
import torch
from peft import LoraConfig
from tiny_parts import VQ_CONFIG, Parts, assistant_config, build_clip, build_llm, build_vq

from assistant import model as model_module
from assistant.config import ConfigError
from assistant.llm import load_language_model
from assistant.model import GlyphModel, load_assistant
from assistant.vq import VQModel
from training import build as build_module
from training import ship

STEPS = {"vq": {"step": "vq", "steps": 3}, "clip": {"step": "clip", "steps": 2},
         "instruct": {"step": "instruct", "steps": 5, "lora_r": 4}}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A build directory laid out as glyph build lays it out: vq/, clip/, instruct/ (with a LoRA adapter)."""
    out = tmp_path_factory.mktemp("build")
    parts = Parts(build_llm(out / "llm", "llama"), build_clip(out / "clip"), build_vq(out / "vq"))
    torch.manual_seed(0)
    model = GlyphModel.build(assistant_config(parts))
    model.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, parameter in model.language_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)  # as if trained: a zero adapter would hide a lost one
    model.save_pretrained(out / "instruct")
    return out


def logits(model: GlyphModel) -> torch.Tensor:
    ids = torch.tensor([[5, 6, 7, 8, model.vocab.boi_id, model.vocab.code_start + 3]])
    with torch.no_grad():
        return model(ids).logits


def ship_all(build, into):
    for kind in STEPS:
        ship.ship_part(kind, build, into, STEPS[kind])


def test_a_shipped_assistant_is_self_contained_small_and_answers_as_the_build(build, tmp_path):
    into = tmp_path / "repo" / "models" / "assistant"
    ship_all(build, into)
    moved = tmp_path / "elsewhere"  # a clone in another place: nothing may point back into the build
    shutil.copytree(into, moved)
    shutil.rmtree(tmp_path / "repo")
    shipped = load_assistant(moved)
    original = GlyphModel.from_pretrained(build / "instruct", merge_lora=True)
    assert torch.allclose(logits(shipped), logits(original), atol=0.05, rtol=0.02)  # bf16 weights, fp32 compute
    base, _ = load_language_model(str(build / "llm"))
    merged = shipped.causal_lm.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(merged, base.model.layers[0].self_attn.q_proj.weight, atol=1e-3)  # the adapter is in
    assert sorted(p.name for p in moved.iterdir()) == ["adapter", "clip", "config.json", "model.safetensors",
                                                        "recipe_step.json", "vq"]
    stored = sum(f.stat().st_size for f in moved.rglob("*.safetensors"))
    built = sum(f.stat().st_size for d in ("instruct", "vq", "clip") for f in (build / d).rglob("*.safetensors"))
    assert stored < 0.6 * built  # bf16 halves the weights (the CLIP's text half is kept: open_clip's layout)


def test_shipping_one_part_keeps_the_others(build, tmp_path):
    into = tmp_path / "ship"
    ship_all(build, into)
    ship.ship_part("instruct", build, into, STEPS["instruct"])  # again: vq/ and clip/ must survive
    ship.ship_part("vq", build, into, STEPS["vq"])
    assert (into / "vq" / "model.safetensors").is_file() and (into / "clip" / "open_clip_config.json").is_file()
    assert (into / "adapter" / "adapter_model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name or ".old-" in p.name]


@pytest.mark.parametrize(("damaged", "how"), [
    ("adapter/adapter_config.json", "not json"), ("vq/model.safetensors", "empty"),
    ("clip/open_clip_model.safetensors", "truncated"), ("model.safetensors", "pickle")])
def test_a_damaged_file_in_any_part_is_one_error_naming_that_file(build, tmp_path, damaged, how):
    into = tmp_path / "assistant"
    ship_all(build, into)
    path = into / damaged
    data = path.read_bytes()
    path.write_bytes({"not json": b"{'r': 4,", "empty": b"", "truncated": data[:len(data) // 2],
                      "pickle": pickle.dumps({"projector.weight": [1.0, 2.0]})}[how])
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ".*cannot be read"):
        load_assistant(into)


def test_a_build_restores_a_shipped_part_only_for_the_same_recipe_step(build, tmp_path):
    into = tmp_path / "ship"
    ship.ship_part("vq", build, into, STEPS["vq"])
    fresh = tmp_path / "fresh"
    assert not ship.restore_part("vq", into, fresh, {"step": "vq", "steps": 4})  # another recipe: train it
    assert not (fresh / "vq").exists()
    assert ship.restore_part("vq", into, fresh, STEPS["vq"]) and ship.restored("vq", fresh)
    assert (fresh / "vq" / "model.safetensors").read_bytes() == (into / "vq" / "model.safetensors").read_bytes()


def test_a_refine_phase_replaces_the_shipped_assistant_and_stands_for_the_stages_before_it(build, tmp_path):
    refined = tmp_path / "build"
    shutil.copytree(build, refined)
    shutil.copytree(build / "instruct", refined / "refine")
    into = tmp_path / "ship"
    ship_all(refined, into)
    refine_step = {"step": "refine", "steps": 7}
    ship.ship_part("refine", refined, into, refine_step)
    assert json.loads((into / ship.STEP_FILE).read_text()) == refine_step and (into / "vq").is_dir()
    fresh = tmp_path / "fresh"
    assert not ship.restore_part("instruct", into, fresh, STEPS["instruct"])  # the shipped one is refine's
    assert ship.restore_part("refine", into, fresh, refine_step)
    assert ship.assistant_dir(fresh) == fresh / "refine" and (fresh / "refine" / "clip").is_dir()
    assert build_module.done(STEPS["instruct"], fresh) and build_module.done({"step": "align"}, fresh)


def test_a_second_refine_round_is_the_assistant_and_a_resumed_build_trains_none_of_the_stages_that_fed_it(
        build, tmp_path):
    rounds = [{"step": "refine", "steps": 7}, {"step": "refine", "round": 2, "chats": "instruct-2", "steps": 3}]
    refined = tmp_path / "build"
    shutil.copytree(build, refined)
    for folder in ("refine", "refine-2"):
        shutil.copytree(build / "instruct", refined / folder)
    steps = [STEPS["vq"], STEPS["clip"], {"step": "align"}, STEPS["instruct"], *rounds]
    assert [ship.part_folder(kind, step) for kind, step in ship.parts_to_ship(refined, steps)] == \
        ["vq", "clip", "refine-2"]  # the last round only: it replaces the assistant of the phases before
    into = tmp_path / "ship"
    for kind, step in ship.parts_to_ship(refined, steps):
        ship.ship_part(kind, refined, into, step)
    fresh = tmp_path / "fresh"
    build_module._restore_shipped(steps, into, fresh)
    assert ship.restored("refine-2", fresh) and not (fresh / "refine").exists() and not (fresh / "instruct").exists()
    assert all(build_module.done(step, fresh) for step in steps)
    assert ship.assistant_dir(fresh) == fresh / "refine-2" and load_assistant(fresh) is not None
    with pytest.raises(ship.ShipError, match="no step of the recipe makes .*refine-2"):
        ship.parts_to_ship(refined, steps[:-1])  # the recipe given is not the one the build ran


def test_a_round_trained_with_a_second_vq_ships_with_it_and_a_resumed_build_restores_both(build, tmp_path):
    refined = tmp_path / "build"
    shutil.copytree(build, refined)
    cells = VQModel(dataclasses.replace(VQ_CONFIG, codebook_size=32)).save_pretrained(refined / "vq-3x3")
    drawing = GlyphModel.from_pretrained(refined / "instruct", trainable=True, vq=cells)  # as glyph build's round
    drawing.label_drawings(("top left", "top right", "bottom left", "bottom right"))
    drawing.save_pretrained(refined / "refine-2")
    second_vq, last_round = {"step": "vq", "name": "vq-3x3", "steps": 4}, \
        {"step": "refine", "round": 2, "chats": "instruct-2", "vq": "vq-3x3", "steps": 3}
    steps = [STEPS["vq"], second_vq, STEPS["clip"], {"step": "align"}, STEPS["instruct"], last_round]
    assert [ship.part_folder(k, s) for k, s in ship.parts_to_ship(refined, steps)] == \
        ["vq", "vq-3x3", "clip", "refine-2"]
    into = tmp_path / "ship"
    for kind, step in ship.parts_to_ship(refined, steps):
        ship.ship_part(kind, refined, into, step)
    assert json.loads((into / "config.json").read_text())["vq"] == "vq-3x3"  # it draws with the second VQ
    shipped = load_assistant(into)
    assert shipped.vq.config.codebook_size == 32 and shipped.vocab.codebook_size == 32
    assert shipped.layout == drawing.layout  # it writes its drawings as it was trained to, labels and all
    ship.ship_part("vq", refined, into, STEPS["vq"])  # shipping the first VQ again leaves the assistant's alone
    assert load_assistant(into).vq.config.codebook_size == 32
    fresh = tmp_path / "fresh"
    build_module._restore_shipped(steps, into, fresh)
    assert all(build_module.done(step, fresh) for step in steps)
    assert ship.restored("vq", fresh) and ship.restored("vq-3x3", fresh) and (fresh / "refine-2" / "vq-3x3").is_dir()
    assert load_assistant(fresh).vocab.codebook_size == 32


def test_a_build_resumed_from_shipped_parts_keeps_the_seconds_they_took(build, tmp_path):
    into = tmp_path / "ship"
    ship_all(build, into)
    (into / ship.TIMINGS_FILE).write_text(json.dumps({"vq": 264.0, "clip": 59.9, "align": 96.9,
                                                      "instruct": 4957.3, "scenes": 4.9, "eval": 1646.3}))
    steps = [{"step": "scenes"}, STEPS["vq"], STEPS["clip"], {"step": "align"}, STEPS["instruct"],
             {"step": "refine", "steps": 7}]
    fresh = tmp_path / "fresh"
    build_module._restore_shipped(steps, into, fresh)
    # The parts restored, and align that only fed them; not scenes or eval, which this build runs again, nor
    # refine, which it has not trained yet.
    assert build_module._shipped_timings(steps, into, fresh) == {"vq": 264.0, "clip": 59.9, "align": 96.9,
                                                                 "instruct": 4957.3}
    (into / ship.TIMINGS_FILE).write_text("[not a record")
    assert build_module._shipped_timings(steps, into, fresh) == {}


def test_an_unfinished_part_is_refused_by_name(build, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(build / "vq", partial / "vq")
    with pytest.raises(ship.ShipError, match="clip.*missing"):
        ship.ship_part("clip", partial, tmp_path / "ship", STEPS["clip"])


def test_a_missing_shipped_assistant_says_how_to_get_it_back(monkeypatch, tmp_path):
    monkeypatch.setattr(model_module, "SHIPPED", tmp_path / "models" / "scenes-smollm2")
    with pytest.raises(ConfigError, match="glyph build scenes-smollm2"):
        load_assistant()


def test_a_truncated_or_mismatched_shipped_file_is_one_clear_error(build, tmp_path, monkeypatch):
    into = tmp_path / "models" / "scenes-smollm2"
    ship_all(build, into)
    monkeypatch.setattr(model_module, "SHIPPED", into)
    weights = into / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="scenes-smollm2.*glyph build scenes-smollm2"):
        load_assistant()
    ship_all(build, into)
    other = VQModel(dataclasses.replace(VQ_CONFIG, codebook_size=32)).save_pretrained(tmp_path / "other-vq")
    shutil.rmtree(into / "vq")
    shutil.copytree(other, into / "vq")
    with pytest.raises(ConfigError, match="glyph build scenes-smollm2"):
        load_assistant()


def test_the_model_card_shows_geneval_late_requests_declines_and_drawings_and_keeps_its_notes(build, tmp_path):
    from PIL import Image

    into = tmp_path / "shipped"
    ship_all(build, into)
    by_type = {k: 0.5 for k in ("color", "shape", "count", "position", "existence")}
    categories = {"single": 0.9, "two": 0.8, "counting": 0.7, "colors": 0.6, "position": 0.5}
    report = {"split": "test", "scenes": 4, "captions": {"exact": 0.25},
              "vqa": {"overall": 0.5, "by_type": by_type, "yes_no": {"accuracy": 0.5, "yes_ratio": 0.5}},
              "geneval": {"cfg_scale": 3.0, "overall": 0.7, "by_category": categories, "prompts": 200},
              "geneval_without_cfg": {"cfg_scale": 1.0, "overall": 0.3, "by_category": categories, "prompts": 200},
              "declines": {"out_of_world": 0.93, "in_world": 0.01, "requests": {"out_of_world": 200, "in_world": 200}},
              "vqa_two_images": {"overall": 0.545, "questions": 200},
              "vqa_counts_of_a_kind": {"overall": 0.625, "questions": 8},
              "no_picture": {"asked_for_picture": 0.86, "questions": 206},
              "text_only": {"same_as_llm": 0.0, "same_first_sentence": 0.125, "asked_for_picture": 0.0625,
                            "scene_talk": 0.0, "questions": 16},
              "vqa_casual": {"overall": 0.75, "by_type": by_type | {"existence": 0.25}},
              "late_requests": {"after": "1-3 questions about a test picture", "overall": 0.64, "prompts": 200,
                                "by_category": categories | {"single": 0.2}, "declined": 0.035}}
    (build / "instruct" / "eval").mkdir(exist_ok=True)
    (build / "instruct" / "eval" / "report.json").write_text(json.dumps(report))
    Image.new("RGB", (8, 8)).save(build / "instruct" / "eval" / ship.DRAWING_SHEET)
    (into / "README.md").write_text("# an older card\n\n| CFG 3 | 0.10 |\n\n## Notes\n\n- round 2 trained by hand\n")
    try:
        ship.ship_report(build, into)
    finally:
        shutil.rmtree(build / "instruct" / "eval")
    card = (into / "README.md").read_text()
    assert card.endswith("\n## Notes\n\n- round 2 trained by hand\n")  # the hand-written notes stay, once
    assert "| CFG 3 | 0.10 |" not in card and card.count("## Notes") == 1
    assert "| CFG 3 | 0.70 | 0.90 | 0.80 | 0.70 | 0.60 | 0.50 |" in card and "| CFG 1 | 0.30 |" in card
    assert "93.0% of 200 requests outside the scene world, 1.0% of the 200 GenEval prompts" in card
    assert "| CFG 3, asked after 1-3 questions about a test picture | 0.64 | 0.20 | 0.80 |" in card
    assert "3.5% of the GenEval prompts were declined" in card
    assert "two pictures at once" in card and "54.5% of 200" in card
    assert "that two or more objects share, in unseen wordings" in card and "62.5% of 8" in card
    assert "before any was attached: 86.0% of 206 questions got a request for one" in card
    assert "(16, hand-written): 0.0% answered word for word" in card and "(12.5% in the same first" in card
    assert "6.2% with a request for a picture, 0.0% with talk of shapes" in card
    assert "| VQA, unseen wordings typed casually (lower case, no question mark) | 75.0% | 50.0% |" in card
    assert card.split("typed casually")[1].split("\n")[0].endswith("| 25.0% |")  # existence, the last column
    assert f"]({ship.DRAWING_SHEET})" in card and (into / ship.DRAWING_SHEET).is_file()
