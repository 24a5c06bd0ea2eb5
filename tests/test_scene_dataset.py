"""The dataset writer: byte-for-byte determinism, disjoint splits, datasets loading, and bad input."""
import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from scenes.render import render_scene
from data_gen.scene_dataset import SPLITS, load_scene_dataset, main, write_scene_dataset
from scenes.world import Scene, SceneConfig, SceneError


def tree_digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def rows(directory: Path) -> list[dict]:
    return [json.loads(line) for split in SPLITS for line in (directory / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_scene_dataset(tmp_path_factory.mktemp("ds") / "scenes", 600, seed=5, holdout=0.1)


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(dataset, tmp_path):
    again = write_scene_dataset(tmp_path / "again", 600, seed=5, holdout=0.1, workers=1)
    assert tree_digest(again) == tree_digest(dataset)
    other = write_scene_dataset(tmp_path / "other", 600, seed=6, holdout=0.1)
    assert tree_digest(other)["train.jsonl"] != tree_digest(dataset)["train.jsonl"]


def test_layout_and_counts(dataset):
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert sum(info["splits"].values()) == 600 == len(list((dataset / "images").glob("*.png")))
    assert all(info["splits"][split] > 20 for split in SPLITS)
    sheet = Image.open(dataset / "contact_sheet.png")
    assert sheet.width > 8 * 128 and sheet.height > 8 * 128
    assert not [p for p in dataset.parent.iterdir() if p.name.startswith(".")], "staging left behind"


def test_splits_are_disjoint_by_id_and_by_content(dataset):
    by_split = {split: [json.loads(line) for line in (dataset / f"{split}.jsonl").read_text().splitlines()]
                for split in SPLITS}
    for split, split_rows in by_split.items():
        assert all(row["split"] == split for row in split_rows)
    ids = [row["id"] for split_rows in by_split.values() for row in split_rows]
    assert len(ids) == len(set(ids)) == 600
    contents = {split: {json.dumps(Scene.from_dict(r).keys()) for r in split_rows}
                for split, split_rows in by_split.items()}
    assert not contents["train"] & contents["validation"]
    assert not contents["train"] & contents["test"]
    assert not contents["validation"] & contents["test"]


def test_rows_are_full_specs_that_re_render_the_image(dataset):
    for row in rows(dataset)[:40]:
        stored = Image.open(dataset / row["image"])
        assert render_scene(Scene.from_dict(row)).tobytes() == stored.convert("RGB").tobytes()
        assert row["caption"] and all(len(o["box"]) == 4 for o in row["objects"])


def test_loads_with_hugging_face_datasets(dataset):
    loaded = load_scene_dataset(dataset)
    assert set(loaded) == set(SPLITS)
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert {split: len(loaded[split]) for split in SPLITS} == info["splits"]
    first = loaded["train"][0]
    assert set(first) >= {"id", "image", "caption", "objects", "image_size", "split"}
    assert set(first["objects"][0]) == {"shape", "color", "size", "row", "col", "box"}


def test_existing_non_empty_out_is_refused_then_replaced_with_overwrite(tmp_path):
    out = tmp_path / "scenes"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SceneError, match="--overwrite"):
        write_scene_dataset(out, 10)
    assert (out / "keep.txt").read_text() == "mine"
    write_scene_dataset(out, 10, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "train.jsonl").exists()


def test_a_failed_write_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    import data_gen.scene_dataset as module

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(module, "_write_index", crash)
    with pytest.raises(SceneError, match="cannot write there"):
        write_scene_dataset(tmp_path / "scenes", 10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "--n must be a positive number"),
    (["--n", "-3"], "--n must be a positive number"),
    (["--shapes", "circle,star"], "unknown shape name(s) ['star']"),
    (["--colors", "red,teal"], "unknown color name(s) ['teal']"),
])
def test_cli_bad_input_gets_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    out = tmp_path / "scenes"
    assert main(["--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_refuses_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["--out", str(blocker / "scenes"), "--n", "5"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_cli_restricted_vocabulary(tmp_path):
    out = tmp_path / "scenes"
    assert main(["--out", str(out), "--n", "30", "--shapes", "circle,ring", "--colors", "blue",
                 "--image-size", "32", "--workers", "1"]) == 0
    objects = [o for row in rows(out) for o in row["objects"]]
    assert {o["shape"] for o in objects} <= {"circle", "ring"} and {o["color"] for o in objects} == {"blue"}
    assert Image.open(out / "images" / "000000.png").size == (32, 32)
    assert SceneConfig(image_size=32).validate()
