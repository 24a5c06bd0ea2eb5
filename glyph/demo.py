"""Build what the embedded assistant needs, where not cached yet, then start the UI.

    make demo          (runs: glyph demo)
    glyph demo [--cache .cache/glyph] [--port 7860]

Each step builds into the cache directory once; later runs reuse it. Steps
that later parts of Glyph will add are listed as not built yet.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from data_gen.scene_dataset import write_scene_dataset

DEFAULT_CACHE = Path(os.environ.get("GLYPH_CACHE", ".cache/glyph"))
DEMO_SCENES = 10_000
NOT_BUILT_YET = [
    "training: stage 0 foundations (CLIP done; tokenizer and LM next), stage 1 alignment, stage 2 instruction tuning",
]


def ensure_scenes(cache: Path) -> Path:
    scenes = cache / "scenes"
    if (scenes / "dataset_info.json").exists():
        print(f"[cached] scene dataset: {scenes}")
    else:
        print(f"[build]  scene dataset: {DEMO_SCENES} scenes into {scenes}")
        write_scene_dataset(scenes, DEMO_SCENES, seed=0, overwrite=True)
    return scenes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glyph demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where built parts are kept")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    scenes = ensure_scenes(args.cache)
    print("[not yet] these parts do not exist yet, so the UI cannot chat:")
    for part in NOT_BUILT_YET:
        print(f"          - {part}")
    from ui import app  # imported late: gradio takes seconds to import

    return app.main(["--data", str(scenes), "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
