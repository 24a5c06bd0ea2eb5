"""Load the images a VQ-VAE trains on: a scene dataset's split, or a plain folder of images.

    images = load_images("data/scenes", split="train", size=64)
    drawn = load_images("data/scenes", split="train", size=72, centred_objects=True)  # as the assistant draws them
    images.pixels          # (N, 3, 64, 64) uint8, all in memory
    images.scenes          # the scene specs (scene datasets only), for the parser

A scene dataset is recognised by its dataset_info.json. Asked for another
size than its images have, a scene dataset renders each scene from its spec
at that size: the spec is exact, and resizing would blur the edges and move
the grid's cell borders off the pixel grid (a 72 px tokenizer reading 64 px
scenes). With centred_objects=True every scene is rendered with its objects centred in their cells
(scenes.world.centred): the pictures the assistant draws, for a tokenizer that only has to draw those. A plain
folder's
images are split by hashing their file names, so a file always lands in the
same split. Unreadable files are skipped and listed in `skipped` (path and
reason), never dropped silently; a folder with no readable image is an error.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from assistant.images import load_image
from assistant.pixels import to_uint8
from scenes.render import render_scene
from scenes.world import Scene, centred

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
FOLDER_HOLDOUT = 0.05  # fraction of a plain folder's files held out for validation


class ImageDataError(ValueError):
    """Data that cannot be trained or evaluated on, with what to do about it."""


@dataclass
class ImageSet:
    pixels: torch.Tensor  # (N, 3, H, W) uint8
    paths: list[Path]
    scenes: list[Scene] | None = None  # aligned with pixels, for scene datasets
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def is_scene_dataset(directory: Path) -> bool:
    return (directory / "dataset_info.json").is_file()


def load_images(directory: str | Path, split: str, size: int, limit: int | None = None,
                centred_objects: bool = False) -> ImageSet:
    """The images of `split` ('train' or 'validation'; scene datasets also have 'test'); centred_objects renders
    scenes with every object centred in its cell (scene datasets only)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ImageDataError(f"--data {directory} is not a directory; pass a scene dataset or a folder of images")
    if is_scene_dataset(directory):
        paths, scenes = _scene_split(directory, split)
    else:
        paths, scenes = _folder_split(directory, split), None
        if centred_objects:
            raise ImageDataError(f"--data {directory} is a folder of images, not a scene dataset; centred objects "
                                 "need the scenes' specs (glyph data scenes)")
    if limit is not None:
        paths, scenes = paths[:limit], scenes[:limit] if scenes else scenes
    if centred_objects:  # the files hold the jittered scenes: render the centred ones
        scenes = [centred(scene, size) for scene in scenes]
    return _read_all(directory, paths, scenes, size, split, render=centred_objects)


def _scene_split(directory: Path, split: str) -> tuple[list[Path], list[Scene]]:
    index = directory / f"{split}.jsonl"
    if not index.is_file():
        raise ImageDataError(f"{index} does not exist; scene datasets have train, validation and test splits")
    paths, scenes = [], []
    for number, line in enumerate(index.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
            paths.append(directory / row["image"])
            scenes.append(Scene.from_dict(row))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ImageDataError(f"{index} row {number} is malformed ({error}); regenerate the dataset "
                                 "with `glyph data scenes`") from error
    return paths, scenes


def _folder_split(directory: Path, split: str) -> list[Path]:
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageDataError(f"--data {directory} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                             "pass a folder of images or a scene dataset")
    held_out = [p for p in files if _hash_fraction(p.relative_to(directory)) < FOLDER_HOLDOUT]
    if split == "validation":
        return held_out or files[-1:]  # a tiny folder still gets one validation image
    if split == "train":
        held_out_set = set(held_out)
        return [p for p in files if p not in held_out_set] or files
    raise ImageDataError(f"a plain image folder has only 'train' and 'validation' splits, not {split!r}")


def _hash_fraction(path: Path) -> float:
    digest = hashlib.blake2b(str(path).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def _read_all(directory: Path, paths: list[Path], scenes: list[Scene] | None, size: int, split: str,
              render: bool = False) -> ImageSet:
    """The images at `paths`, or (render, or another size than the files') the `scenes` rendered from their specs."""
    arrays, kept, kept_scenes, skipped = [], [], [], []
    for i, path in enumerate(tqdm(paths, desc=f"loading {split} images", unit="img", leave=False)):
        try:  # the decoder the assistant uses: the same RGB pixels, and one ImageError for any bad file
            if scenes is not None and (render or scenes[i].image_size != size):
                arrays.append(to_uint8(render_scene(Scene(size, scenes[i].objects)), size))
            else:
                arrays.append(to_uint8(load_image(path), size))
        except (OSError, ValueError) as error:
            skipped.append((path, str(error) or type(error).__name__))
            continue
        kept.append(path)
        if scenes is not None:
            kept_scenes.append(scenes[i])
    if not arrays:
        raise ImageDataError(f"no readable image in {directory} ({split}): {len(skipped)} file(s) failed, "
                             f"e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else
                             f"{directory} has no {split} images")
    pixels = torch.from_numpy(np.stack(arrays))
    return ImageSet(pixels, kept, kept_scenes if scenes is not None else None, skipped)


def refuse_or_skip(skipped: list[tuple[Path, str]], skip_bad: bool) -> None:
    """Unreadable images: one error listing them, or with skip_bad (--skip-bad) a note, and training goes on."""
    if not skipped:
        return
    listing = "\n".join(f"  {path}: {why}" for path, why in skipped[:10])
    more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    if not skip_bad:
        raise ImageDataError(f"{len(skipped)} image(s) could not be read:\n{listing}{more}\n"
                             "fix or remove them, or pass --skip-bad to train without them")
    print(f"skipping {len(skipped)} unreadable image(s):\n{listing}{more}", file=sys.stderr)
