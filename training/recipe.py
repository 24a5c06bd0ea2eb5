"""Command-line options with a YAML recipe underneath: `--config recipe.yaml` sets the defaults, flags win.

    args = parse_with_recipe(build_parser(), argv)

A recipe's keys are the options' names with dashes or underscores
(`batch_size` or `batch-size`). An unknown key is refused, naming it and the
known ones, so a typo never silently trains with a default. Each value goes
through its option's own type and choices, as a flag's would: argparse does not
check defaults, so `save_every: 0` or `lr: fast` would otherwise reach training.
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
    actions = {action.dest: action for action in parser._actions}
    return {dest: _checked(path, actions[dest], value) for dest, value in values.items()}


def _checked(path: Path, action: argparse.Action, value):
    """`value` from the recipe as the flag would parse it, or a RecipeError naming the key and the flag."""
    flag = max(action.option_strings, key=len, default=action.dest)
    where = f"--config {path}: {action.dest}: {value!r}"
    if value is None and action.default is None:
        return None
    if action.nargs == 0:  # store_true / store_false: a YAML boolean only
        if not isinstance(value, bool):
            raise RecipeError(f"{where} must be true or false (it sets {flag})")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+") or isinstance(action.nargs, int)
    if many != isinstance(value, list):
        raise RecipeError(f"{where} must be {'a list' if many else 'a single value, not a list'} (it sets {flag})")
    items = [_converted(where, flag, action, item) for item in (value if many else [value])]
    return items if many else items[0]


def _converted(where: str, flag: str, action: argparse.Action, item):
    if isinstance(item, (dict, list)) or (isinstance(item, bool) and action.type is not None):
        raise RecipeError(f"{where} is not a valid value for {flag}")
    # A flag's value arrives as text; YAML's 5, 1.5 or 1e-3 (a string to PyYAML) take the same path.
    converted = item
    if action.type is not None:
        try:
            converted = action.type(str(item))
        except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
            raise RecipeError(f"{where} is not a valid value for {flag}: {error}") from None
    if action.choices is not None and converted not in action.choices:
        raise RecipeError(f"{where} is not one of {flag}'s choices: {', '.join(map(str, action.choices))}")
    return converted
