"""Measure the scene parser: exact-read rate on clean, blurred and JPEG-compressed scenes.

    glyph eval parser [--n 2000] [--seed 2026]

A scene counts as read only when every object's shape, colour, size and grid
cell is right and nothing is left unexplained.
"""
from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from data_gen.degrade import DEGRADATIONS
from scenes.render import render_scene
from scenes.parser import read_scene
from scenes.world import sample_scene, scene_rng


def parser_accuracy(n: int, seed: int) -> dict[str, float]:
    """The fraction of `n` scenes read exactly, per degradation."""
    scenes = [sample_scene(scene_rng(seed, i)) for i in range(n)]
    images = [render_scene(scene) for scene in scenes]
    correct = dict.fromkeys(DEGRADATIONS, 0)
    for scene, image in tqdm(list(zip(scenes, images)), desc="reading scenes", unit="scene"):
        for name, degrade in DEGRADATIONS.items():
            correct[name] += read_scene(degrade(image)).matches(scene)
    return {name: count / n for name, count in correct.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glyph eval parser", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="scenes to read (default 2000)")
    parser.add_argument("--seed", type=int, default=2026, help="scene seed (default 2026)")
    args = parser.parse_args(argv)
    if args.n <= 0:
        print(f"glyph eval parser: --n must be a positive number of scenes, got {args.n}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    accuracy = parser_accuracy(args.n, args.seed)
    elapsed = time.perf_counter() - start
    print(f"{'images':<14} scenes read exactly (n={args.n}, seed={args.seed})")
    for name, value in accuracy.items():
        print(f"{name:<14} {value:.2%}")
    print(f"({elapsed / (args.n * len(accuracy)) * 1000:.1f} ms per read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
