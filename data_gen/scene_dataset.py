"""Write a scene dataset: PNG images, one JSONL index per split, and a contact sheet.

    glyph data scenes --out data/scenes --n 10000 --seed 0

Layout of the output directory:

    images/000000.png ...      the scenes
    train.jsonl validation.jsonl test.jsonl
    dataset_info.json          the generation settings and split counts
    contact_sheet.png          the first 64 scenes with captions

Each JSONL row is {"id", "image", "split", "caption", "image_size", "objects"}.
`objects` is the full spec: `Scene.from_dict(row)` re-renders the image byte
for byte. Load the rows with `load_scene_dataset(dir)` or directly with
`datasets.load_dataset("json", data_files={"train": f"{dir}/train.jsonl", ...})`.

The same seed gives identical bytes, whatever the number of workers. Splits
are chosen by hashing what a scene shows (its objects without jitter), so two
scenes that look the same never land in different splits.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from scenes.captions import describe
from data_gen.contact_sheet import contact_sheet
from scenes.render import render_scene
from scenes.world import COLORS, SHAPES, Scene, SceneConfig, SceneError, sample_scene, scene_rng

SPLITS = ("train", "validation", "test")
CONTACT_SHEET_SCENES = 64


def make_scene(seed: int, index: int, config: SceneConfig) -> tuple[Scene, str]:
    """Scene `index` of the dataset with `seed`, and its caption."""
    rng = scene_rng(seed, index)
    scene = sample_scene(rng, config)
    return scene, describe(scene, rng)


def split_of(scene: Scene, seed: int, holdout: float) -> str:
    """'validation' or 'test' for about `holdout` of distinct scene contents each, else 'train'."""
    digest = hashlib.blake2b(json.dumps([seed, scene.keys()]).encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2 ** 64  # uniform in [0, 1)
    return "validation" if u < holdout else "test" if u < 2 * holdout else "train"


def write_scene_dataset(out: str | Path, n: int, seed: int = 0, config: SceneConfig = SceneConfig(),
                        holdout: float = 0.05, overwrite: bool = False, workers: int | None = None) -> Path:
    """Render `n` scenes into `out`, atomically: a half-written dataset never appears at `out`."""
    out = Path(out)
    config.validate()
    _check_request(out, n, holdout, overwrite)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "images").mkdir(parents=True)
        rows = _render_all(staging, n, seed, config, holdout, workers)
        _write_index(staging, rows, n, seed, config, holdout)
        _publish(staging, out)
    except OSError as error:
        raise SceneError(f"--out {out}: cannot write there ({error.strerror or error}); "
                         "choose a writable directory with free space") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _check_request(out: Path, n: int, holdout: float, overwrite: bool) -> None:
    if n <= 0:
        raise SceneError(f"--n must be a positive number of scenes, got {n}")
    if not 0 <= holdout < 0.5:
        raise SceneError(f"--holdout must be in [0, 0.5), got {holdout}")
    if out.exists() and not out.is_dir():
        raise SceneError(f"--out {out} is a file; give a directory path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SceneError(f"--out {out} exists and is not empty; pass --overwrite to replace it")
    ancestor = _existing_ancestor(out.parent)
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise SceneError(f"--out {out}: cannot write to {ancestor}; choose a writable directory")


def _existing_ancestor(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _render_all(staging: Path, n: int, seed: int, config: SceneConfig, holdout: float,
                workers: int | None) -> list[dict]:
    jobs = [(staging, seed, config, holdout, start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]
    workers = workers or min(len(os.sched_getaffinity(0)), len(jobs))
    rows: list[dict] = []
    with tqdm(total=n, desc="rendering scenes", unit="scene") as progress:
        if workers == 1:
            chunks = map(_render_chunk, jobs)
        else:
            pool = multiprocessing.get_context("fork").Pool(workers)
            chunks = pool.imap(_render_chunk, jobs)
        for chunk in chunks:
            rows.extend(chunk)
            progress.update(len(chunk))
        if workers != 1:
            pool.close()
    return rows


_CHUNK = 250


def _render_chunk(job) -> list[dict]:
    staging, seed, config, holdout, start, stop = job
    rows = []
    for index in range(start, stop):
        scene, caption = make_scene(seed, index, config)
        name = f"{index:06d}"
        render_scene(scene).save(staging / "images" / f"{name}.png", optimize=False)
        rows.append({"id": name, "image": f"images/{name}.png", "split": split_of(scene, seed, holdout),
                     "caption": caption, **scene.to_dict()})
    return rows


def _write_index(staging: Path, rows: list[dict], n: int, seed: int, config: SceneConfig,
                 holdout: float) -> None:
    counts = {}
    for split in SPLITS:
        lines = [json.dumps(row, sort_keys=True) + "\n" for row in rows if row["split"] == split]
        (staging / f"{split}.jsonl").write_text("".join(lines))
        counts[split] = len(lines)
    info = {"n": n, "seed": seed, "holdout": holdout, "splits": counts, "config": {
        "image_size": config.image_size, "min_objects": config.min_objects, "max_objects": config.max_objects,
        "shapes": list(config.shapes), "colors": list(config.colors)}}
    (staging / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    first = rows[:CONTACT_SHEET_SCENES]
    contact_sheet([staging / r["image"] for r in first], [r["caption"] for r in first]).save(
        staging / "contact_sheet.png")


def _publish(staging: Path, out: Path) -> None:
    """Move the finished dataset into place; an old one is removed only after the new one is complete."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(trash)
        staging.rename(out)
        shutil.rmtree(trash)
    else:
        staging.rename(out)


def load_scene_dataset(directory: str | Path):
    """The dataset's splits as a `datasets.DatasetDict` (columns as in the JSONL rows)."""
    import datasets

    directory = Path(directory)
    files = {split: str(directory / f"{split}.jsonl") for split in SPLITS
             if (directory / f"{split}.jsonl").stat().st_size > 0}
    return datasets.load_dataset("json", data_files=files)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glyph data scenes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output directory (must be new or empty)")
    parser.add_argument("--n", type=int, default=10_000, help="number of scenes (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--min-objects", type=int, default=1)
    parser.add_argument("--max-objects", type=int, default=4)
    parser.add_argument("--shapes", type=_names, default=SHAPES, help=f"comma list from {','.join(SHAPES)}")
    parser.add_argument("--colors", type=_names, default=tuple(COLORS), help=f"comma list from {','.join(COLORS)}")
    parser.add_argument("--holdout", type=float, default=0.05,
                        help="fraction of scene contents for each of validation and test (default 0.05)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = SceneConfig(args.image_size, args.min_objects, args.max_objects, args.shapes, args.colors)
    try:
        out = write_scene_dataset(args.out, args.n, args.seed, config, args.holdout, args.overwrite, args.workers)
    except SceneError as error:
        print(f"glyph data scenes: {error}", file=sys.stderr)
        return 2
    info = json.loads((out / "dataset_info.json").read_text())
    print(f"wrote {args.n} scenes to {out} ({', '.join(f'{k} {v}' for k, v in info['splits'].items())}); "
          f"look at {out / 'contact_sheet.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
