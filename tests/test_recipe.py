"""A --config recipe's values are checked as the same flags would be, and every shipped recipe reads cleanly."""
import argparse
from pathlib import Path

import pytest

from training import assistant_stage, train_clip, train_lm, train_vqvae
from training.harness import add_save_options
from training.recipe import RecipeError, parse_with_recipe, read_recipe

RECIPES = Path(__file__).resolve().parents[1] / "training" / "recipes"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--mix", action="append", default=[])
    p.add_argument("--vision", default=None)
    add_save_options(p.add_argument_group("saving"), every=50)
    return p


def recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_values_arrive_as_the_flags_would_parse_them(tmp_path):
    path = recipe(tmp_path, "steps: 300\nlr: 1e-3\nprecision: fp32\noverwrite: true\nmix: [draw=0.1]\n"
                            "vision: null\nsave-every: 25\n")
    args = parse_with_recipe(parser(), ["--config", str(path)])
    assert (args.steps, args.lr, args.precision, args.overwrite, args.mix, args.vision, args.save_every) == \
        (300, 0.001, "fp32", True, ["draw=0.1"], None, 25)
    assert isinstance(args.lr, float)  # PyYAML reads 1e-3 as a string; the flag's type makes it a number


def test_a_flag_still_wins_over_the_recipe(tmp_path):
    args = parse_with_recipe(parser(), ["--config", str(recipe(tmp_path, "steps: 300\n")), "--steps", "7"])
    assert args.steps == 7


@pytest.mark.parametrize("text, named", [
    ("save_every: 0\n", "save_every: 0"),          # below the type's minimum: a traceback in training before
    ("steps: 2.5\n", "steps: 2.5"),
    ("steps: true\n", "steps: True"),
    ("lr: fast\n", "lr: 'fast'"),
    ("precision: fp64\n", "precision: 'fp64'"),
    ("overwrite: 'no'\n", "overwrite: 'no'"),
    ("steps: [1, 2]\n", "steps: [1, 2]"),
    ("mix: draw=0.1\n", "mix: 'draw=0.1'"),
    ("steps: {a: 1}\n", "steps: {'a': 1}"),
    ("steps: null\n", "steps: None"),
])
def test_a_bad_value_is_refused_naming_the_key_and_the_flag(tmp_path, text, named):
    path = recipe(tmp_path, text)
    with pytest.raises(RecipeError) as error:
        read_recipe(path, parser())
    message = str(error.value)
    assert str(path) in message and named in message
    assert "--" + named.split(":")[0].replace("_", "-") in message


def test_a_trainer_answers_a_bad_recipe_value_with_one_line(tmp_path, capsys):
    path = recipe(tmp_path, "save_every: 0\n")
    code = train_vqvae.main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "save_every: 0" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, build_parser", [
    ("clip-scenes.yaml", train_clip.build_parser),
    ("vq-scenes.yaml", train_vqvae.build_parser),
    ("lm-scenes.yaml", train_lm.build_parser),
    ("llava-1.5-style-align.yaml", lambda: assistant_stage.build_parser(1)),
    ("llava-1.5-style-instruct.yaml", lambda: assistant_stage.build_parser(2)),
])
def test_every_shipped_trainer_recipe_reads_cleanly(name, build_parser):
    values = read_recipe(RECIPES / name, build_parser())
    assert "steps" in values or "epochs" in values
