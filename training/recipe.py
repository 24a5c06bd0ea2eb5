"""Command-line options with a YAML recipe underneath: `--config recipe.yaml` sets the defaults, flags win.

    args = parse_with_recipe(build_parser(), argv)

A recipe's keys are the options' names with dashes or underscores
(`batch_size` or `batch-size`). An unknown key is refused, naming it and the
known ones, so a typo never silently trains with a default.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml


class RecipeError(ValueError):
    """A recipe file that cannot be read or names options that do not exist."""


def parse_with_recipe(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    parser.add_argument("--config", type=Path, default=None, help="a YAML recipe whose keys set these options")
    known, _ = parser.parse_known_args(argv)
    if known.config is not None:
        parser.set_defaults(**read_recipe(known.config, parser))
    return parser.parse_args(argv)


def read_recipe(path: Path, parser: argparse.ArgumentParser) -> dict:
    if not path.is_file():
        raise RecipeError(f"--config {path} does not exist; recipes live in training/recipes/")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise RecipeError(f"--config {path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise RecipeError(f"--config {path} must be a mapping of option names to values")
    options = {action.dest for action in parser._actions} - {"help", "config"}
    values = {str(key).replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(values) - options)
    if unknown:
        raise RecipeError(f"--config {path}: unknown option(s) {unknown}; known: {sorted(options)}")
    return values
