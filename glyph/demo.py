"""Build the embedded scene assistant where it is not cached yet, then start the UI.

    make demo          (runs: glyph demo)
    glyph demo [--cache .cache/glyph] [--port 7860]

The build is `glyph build scenes-tiny --out CACHE/scenes-tiny`: scene data, stage 0, the VQ-VAE, chats,
stages 1 and 2 and the evaluation. It runs once; later runs find every step done and start at once.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from training import build

DEFAULT_CACHE = Path(os.environ.get("GLYPH_CACHE", ".cache/glyph"))
RECIPE = "scenes-tiny"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glyph demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where built parts are kept")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args(argv)
    out = args.cache / RECIPE
    code = build.main([RECIPE, "--out", str(out)])
    if code:
        return code
    from ui import app  # imported late: gradio takes seconds to import

    return app.main(["--model", str(out / "instruct"), "--data", str(out / "scenes"), "--port", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
