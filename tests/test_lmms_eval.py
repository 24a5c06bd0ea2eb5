"""lmms-eval (its own command line, openai model) scores `glyph serve` on the scene VQA task like glyph eval does."""
from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from assistant.model import GlyphModel
from tests.web import free_port, serving
from training import eval_lmms, lmms_task
from training.eval_assistant import (load_scenes, model_answerer, score_two_images, score_vqa, two_image_questions,
                                     vqa_questions)
from ui.server import Assistant, Limits, create_app

KEY = "lmms-key"
SCENES = 3  # 15 questions, and 3 about two pictures


@pytest.fixture(scope="module")
def scenes(small_scenes):
    return small_scenes(24, 11, 0.25)


@pytest.fixture(scope="module")
def task(scenes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks") / "scene_vqa"
    assert lmms_task.main(["--data", str(scenes), "--scenes", str(SCENES), "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def model(tiny_assistant):
    return GlyphModel.from_pretrained(tiny_assistant)


@pytest.fixture(scope="module")
def server(model):
    app = create_app(Assistant(model, "glyph-tiny", Limits(max_images=2, max_request_bytes=2_000_000)), api_key=KEY)
    with serving(app) as url:
        yield url


def test_the_task_asks_glyph_evals_questions_and_scores_with_its_reader(task, scenes):
    rows = [json.loads(line) for line in (task / "data" / "test.jsonl").read_text().splitlines()]
    asked = vqa_questions(load_scenes(scenes, "test", SCENES), seed=0)
    assert [(r["question"], r["short"], r["kind"]) for r in rows] == [(q.question, q.short, q.kind) for _, q in asked]
    assert all((task / "data" / r["image"]).is_file() for r in rows)
    pairs = [json.loads(line) for line in (task / "data" / "two_images.jsonl").read_text().splitlines()]
    asked_two = two_image_questions(load_scenes(scenes, "test", SCENES), seed=0)
    assert [(p["images"], p["question"], p["short"]) for p in pairs] == [
        ([f"images/{a.image.name}", f"images/{b.image.name}"], q.question, q.short) for (a, b), q in asked_two]
    for name, questions in (("scene_vqa", "test.jsonl"), ("scene_vqa_two_images", "two_images.jsonl")):
        config = yaml.load((task / f"{name}.yaml").read_text(), Loader=yaml.BaseLoader)  # !function tags as text
        assert config["task"] == name
        assert config["dataset_kwargs"]["data_files"]["test"] == str((task / "data" / questions).resolve())
    spec = importlib.util.spec_from_file_location("scene_vqa_utils", task / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    row = rows[0]
    assert utils.doc_to_visual(row)[0].size == (32, 32) and utils.doc_to_text(row) == row["question"]
    assert utils.process_results(row, [row["answer"]]) == {"accuracy": 1.0, row["kind"]: 1.0}
    assert utils.process_results(row, ["I cannot tell."]) == {"accuracy": 0.0, row["kind"]: 0.0}
    pair = pairs[0]
    assert [image.size for image in utils.doc_to_visual(pair)] == [(32, 32), (32, 32)]
    assert utils.process_two_image_results(pair, [pair["answer"]]) == {"accuracy": 1.0, pair["short"]: 1.0}
    assert utils.process_two_image_results(pair, ["Both."])["accuracy"] == float(pair["short"] == "same")


def test_an_existing_task_folder_is_kept_unless_overwrite(task, scenes, capsys):
    before = (task / "data" / "test.jsonl").read_text()
    assert lmms_task.main(["--data", str(scenes), "--scenes", "1", "--out", str(task)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (task / "data" / "test.jsonl").read_text() == before


def test_lmms_eval_scores_glyph_serve_as_glyph_eval_does(task, server, model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GLYPH_API_KEY", KEY)
    code = eval_lmms.main(["--server", server, "--include-path", str(task.parent), "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err[-3000:]
    results = eval_lmms.results_of(tmp_path)
    one, one_outcomes = score_vqa(_questions(task), model_answerer(model))  # glyph eval's scoring, in process
    two, two_outcomes = score_two_images(_pairs(task), model_answerer(model))
    for name, scored, outcomes, count in (("scene_vqa", one, one_outcomes, SCENES * 5),
                                          ("scene_vqa_two_images", two, two_outcomes, SCENES)):
        samples = _samples(tmp_path, name)
        said = [s.get("resps", s["filtered_resps"]) for s in samples]  # lmms-eval leaves out resps when unfiltered
        assert len(said) == len(outcomes) == count, name
        assert [s["input"] for s in samples] == [o.prompt for o in outcomes]
        assert said == [o.reply for o in outcomes]  # the same prompt, the same greedy reply
        assert results[name]["accuracy,none"] == pytest.approx(scored["overall"])


def _samples(out, task: str) -> list[dict]:
    """lmms-eval's logged samples of `task`, in the order of its questions file (doc_id is the row)."""
    samples = [json.loads(line) for file in out.rglob(f"*samples_{task}.jsonl")
               for line in file.read_text().splitlines()]
    return sorted(samples, key=lambda sample: sample["doc_id"])


def _questions(task):
    """The task's rows as glyph eval's (scene, question) pairs; scoring reads only the image and the question."""
    from scenes.questions import QA
    from training.eval_assistant import SceneItem

    rows = [json.loads(line) for line in (task / "data" / "test.jsonl").read_text().splitlines()]
    return [(SceneItem(task / "data" / r["image"], None), QA(r["kind"], r["question"], r["answer"], r["short"]))
            for r in rows]


def _pairs(task):
    """The two-image task's rows as glyph eval's ((scene, scene), question) pairs."""
    from scenes.questions import QA
    from training.eval_assistant import SceneItem

    rows = [json.loads(line) for line in (task / "data" / "two_images.jsonl").read_text().splitlines()]
    return [(tuple(SceneItem(task / "data" / image, None) for image in r["images"]),
             QA(r["kind"], r["question"], r["answer"], r["short"])) for r in rows]


def test_a_server_that_is_down_stops_it_with_one_line(tmp_path, capsys):
    assert eval_lmms.main(["--server", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not answer" in err and "glyph serve" in err
