"""A build recipe: which file a name means, its steps, and the --set changes to them.

    steps = read_build(recipe_path("scenes-tiny"), ["instruct.batch_size=4"])   # [{"step": "scenes", ...}, ...]

Its own module so that `glyph build` (training/build.py) and `glyph ship` (training/ship.py), which both read
recipes, import it instead of each other.
"""
from __future__ import annotations

from pathlib import Path

import yaml

RECIPES = Path(__file__).parent / "recipes"
STEP_MODULES = {"scenes": "data_gen.scene_dataset", "chats": "data_gen.scene_chats", "replies": "data_gen.text_replies",
                "hand_over": "data_gen.hand_over",
                "slot_words": "data_gen.slot_words", "vq": "training.train_vqvae",
                "clip": "training.train_clip", "lm": "training.train_lm", "align": "training.train_align",
                "instruct": "training.train_instruct", "refine": "training.train_instruct",
                "eval": "training.eval_assistant", "eval_lm": "training.eval_lm"}


class BuildError(ValueError):
    """A build recipe that cannot run, or a step that failed."""


def recipe_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    found = RECIPES / f"{name}.yaml"
    if not found.is_file():
        known = sorted(p.stem for p in RECIPES.glob("*.yaml")
                       if isinstance((yaml.safe_load(p.read_text()) or {}).get("steps"), list))
        raise BuildError(f"no build recipe {name!r}; known: {', '.join(known)} (or pass a .yaml path)")
    return found


def read_build(path: Path, settings: list[str] = ()) -> list[dict]:
    """The recipe's steps, with `settings` ("STEP.KEY=VALUE", VALUE read as YAML) applied."""
    if not path.is_file():
        raise BuildError(f"build recipe {path} does not exist")
    steps = (yaml.safe_load(path.read_text()) or {}).get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) and s.get("step") in STEP_MODULES for s in steps):
        raise BuildError(f"{path} must hold `steps:`, a list of {{step: one of {', '.join(STEP_MODULES)}, ...}}")
    for setting in settings:
        target, _, value = setting.partition("=")
        kind, _, key = target.partition(".")
        matching = [s for s in steps if s["step"] == kind]
        if not _ or not key or not matching:
            raise BuildError(f"--set {setting!r}: write STEP.KEY=VALUE with STEP one of "
                             f"{', '.join(s['step'] for s in steps)}")
        for step in matching:
            step[key.replace("-", "_")] = yaml.safe_load(value)
    return steps
