"""glyph eval draw: scene prompts in GenEval's format, drawings in GenEval's layout, scored by the scene parser."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_parts import assistant_config, build_parts

from assistant import generation
from assistant.model import GlyphModel
from scenes.render import render_scene
from scenes.world import BACKGROUND
from training import eval_draw


@pytest.fixture()
def prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    assert eval_draw.main(["--write-prompts", str(path), "--per-category", "3"]) == 0
    return path


def test_scene_prompts_are_written_in_genevals_format(prompt_file):
    lines = [json.loads(line) for line in prompt_file.read_text().splitlines()]
    assert len(lines) == 15 and {line["tag"] for line in lines} == set(eval_draw.TAGS.values())
    for line in lines:
        assert isinstance(line["prompt"], str) and line["include"]
        assert all(isinstance(e["class"], str) and e["count"] >= 1 for e in line["include"])
        prompt = eval_draw.scene_prompt(line)  # the whole scene prompt comes back from the line
        assert eval_draw.geneval_metadata(prompt) == line
    position = next(line for line in lines if line["tag"] == "position")
    assert position["include"][1]["position"][1] == 0  # GenEval: the second object stands relative to the first
    assert position["include"][1]["position"][0] in ("above", "below", "left of", "right of")


def perfect_layout(prompt_file, out, samples=2):
    """GenEval's layout filled by a perfect drawer: each sample a rendered scene that satisfies its prompt."""
    rng = np.random.default_rng(0)
    for i, line in enumerate(prompt_file.read_text().splitlines()):
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True)
        (folder / "metadata.jsonl").write_text(line + "\n")
        for j in range(samples):
            scene = eval_draw.scene_prompt(json.loads(line)).example(rng)
            render_scene(scene).save(folder / "samples" / f"{j:04d}.png")


def test_the_scene_parser_scores_a_perfect_drawer_one_and_blank_canvases_zero(prompt_file, tmp_path):
    perfect = tmp_path / "perfect"
    perfect_layout(prompt_file, perfect)
    summary = eval_draw.score_folder(perfect)
    assert summary["overall"] == 1.0 and summary["images"] == 30 and summary["prompts"] == 15
    results = [json.loads(line) for line in (perfect / "results.jsonl").read_text().splitlines()]
    assert len(results) == 30 and all(r["correct"] for r in results)
    for folder in perfect.iterdir():
        if folder.is_dir():
            for sample in (folder / "samples").iterdir():
                Image.new("RGB", (64, 64), BACKGROUND).save(sample)
    assert eval_draw.score_folder(perfect)["overall"] == 0.0
    (perfect / "00000" / "metadata.jsonl").write_text(json.dumps({"tag": "single_object", "prompt": "a bench"}))
    with pytest.raises(eval_draw.PromptFileError, match="score other prompts with GenEval's own evaluator"):
        eval_draw.score_folder(perfect)  # a real-image prompt: not ours to score


def test_drawings_land_in_genevals_layout_and_a_second_run_resumes(prompt_file, tmp_path, monkeypatch):
    parts = build_parts(tmp_path / "parts")
    torch.manual_seed(0)
    folder = GlyphModel.build(assistant_config(parts)).save_pretrained(tmp_path / "assistant")
    out = tmp_path / "geneval"
    argv = ["--model", str(folder), "--prompts", str(prompt_file), "--geneval-out", str(out), "--samples", "2"]
    assert eval_draw.main(argv) == 0
    lines = prompt_file.read_text().splitlines()
    for i, line in enumerate(lines):
        assert (out / f"{i:05d}" / "metadata.jsonl").read_text() == line + "\n"
        for j in range(2):
            assert Image.open(out / f"{i:05d}" / "samples" / f"{j:04d}.png").size == (16, 16)
    first = (out / "00004" / "samples" / "0001.png").read_bytes()
    (out / "00004" / "samples" / "0001.png").unlink()
    drawn = []
    real_draw_all = generation.draw_all
    monkeypatch.setattr(generation, "draw_all", lambda *a, **k: drawn.append(a[4]) or real_draw_all(*a, **k))
    assert eval_draw.main(argv) == 0
    assert drawn == [[8, 9]]  # only prompt 4 again, with the seeds one run would have given it
    assert (out / "00004" / "samples" / "0001.png").read_bytes() == first


@pytest.mark.parametrize("text, named", [("not json\n", "line 1: not JSON"), ('{"tag": "x"}\n', "line 1"),
                                         ("\n", "holds no prompts")])
def test_a_bad_prompt_file_is_one_line_naming_it(tmp_path, capsys, text, named):
    path = tmp_path / "prompts.jsonl"
    path.write_text(text)
    code = eval_draw.main(["--prompts", str(path), "--geneval-out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and named in err and str(path) in err
    assert not (tmp_path / "out").exists()


def test_a_cfg_sweep_scores_validation_prompts_at_each_scale(tmp_path, monkeypatch, capsys):
    parts = build_parts(tmp_path / "parts")
    torch.manual_seed(0)
    folder = GlyphModel.build(assistant_config(parts)).save_pretrained(tmp_path / "assistant")
    scales = []
    real_draw_all = generation.draw_all
    monkeypatch.setattr(generation, "draw_all", lambda *a, **k: scales.append(a[3].cfg_scale) or real_draw_all(*a, **k))
    assert eval_draw.main(["--model", str(folder), "--sweep-cfg", "1,4", "--per-category", "1", "--seed", "7"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["1", "4"] and all(r["prompts"] == 5 for r in report.values())
    assert sorted(set(scales)) == [1.0, 4.0]
    assert eval_draw.main(["--model", str(folder), "--sweep-cfg", "1,4", "--seed", "0"]) == 2
    assert "validation prompts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_draw.main(["--sweep-cfg", "one,two"])
