"""Where a decoding step's time goes, on each side: torch.profiler's top operators for one drawing.

    python -m benchmarks.profile_step --config small --dtype fp32 [--cfg 4] [--rows 12]

Draws one 64-token image on each side (after a warm-up drawing) under torch.profiler and prints the
operators that took the most time, per drawing step. What benchmarks/bench.py times, taken apart.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from torch.profiler import profile

from benchmarks.bench import DTYPES
from benchmarks.parts import CONFIGS, build_parts
from benchmarks.workloads import SIDES, Pair


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="small", choices=sorted(CONFIGS))
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--cfg", type=float, default=1.0, help="guidance scale (1: none)")
    p.add_argument("--rows", type=int, default=12, help="operators to list per side")
    args = p.parse_args(argv)
    config = CONFIGS[args.config]
    with tempfile.TemporaryDirectory() as root:
        pair = Pair.build(build_parts(config, Path(root), (64,)), config, 64, merged=True).to(DTYPES[args.dtype])
    steps = pair.glyph.layout.tokens_per_image
    for side in SIDES:
        draw = pair.draw(side, args.cfg)
        draw()  # warm-up
        with profile() as profiler:
            draw()
        events = profiler.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        print(f"\n{side}: {total / 1e3 / steps:.2f} ms of CPU time per drawing step ({args.config}, {args.dtype}, "
              f"cfg {args.cfg:g})")
        for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.rows]:
            print(f"  {event.key[:52]:52s} {event.self_cpu_time_total / 1e3 / steps:7.3f} ms/step "
                  f"{100 * event.self_cpu_time_total / total:5.1f} %  {event.count / steps:6.1f} calls/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
