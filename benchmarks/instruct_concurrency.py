"""Do requests in flight really overlap? `glyph data instruct` against a local OpenAI-compatible server.

    python -m benchmarks.instruct_concurrency [--records 48 --latency 0.25 --repeats 3]

Starts the fake chat-completions server (benchmarks/fake_openai.py, which the tests use too) on 127.0.0.1
with a fixed latency per request (a stand-in for a remote teacher's generation time), then runs the
generator with 1 and with 8 requests in flight on the same records, alternating, and prints the median wall
time of each and their ratio. With perfect overlap 8 in flight is 8× faster; the ideal floor is
records × latency / 8.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.fake_openai import FakeOpenAI
from data_gen import instruct
from data_gen.instruct_prompts import TYPES
from data_gen.scene_dataset import write_scene_dataset


def reply(body: dict) -> str:
    system = body["messages"][0]["content"]
    draws = "draws" in system  # the draw and mixed prompts are about an assistant that draws
    if "both sees and draws" in system:
        return "User: Draw it.\nAssistant: Here. <image>\nUser: Thanks.\nAssistant: You're welcome."
    return "User: Draw it.\nAssistant: Here. <image>" if draws else "User: What is it?\nAssistant: Shapes."


def timed_run(server: FakeOpenAI, scenes: Path, out: Path, concurrency: int, records: int) -> float:
    argv = ["--teacher", "openai", "--base-url", server.base_url, "--model", "bench", "--api-key", server.api_key,
            "--in", str(scenes), "--out", str(out), "--overwrite", "--limit", str(records // len(TYPES)),
            "--concurrency", str(concurrency)]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = instruct.main(argv)
    seconds = time.perf_counter() - started
    if code != 0 or len(out.read_text().splitlines()) != records // len(TYPES) * len(TYPES):
        raise SystemExit(f"the run with --concurrency {concurrency} failed (exit {code})")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=50, help="records per run (a multiple of the 5 types)")
    p.add_argument("--latency", type=float, default=0.25, help="seconds the server takes per request")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(reply, latency=args.latency) as server:
        scenes = write_scene_dataset(Path(tmp) / "scenes", n=max(40, 2 * args.records), seed=0)
        times: dict[int, list[float]] = {1: [], 8: []}
        for _ in range(args.repeats):
            for concurrency in times:
                times[concurrency].append(timed_run(server, scenes, Path(tmp) / "out.jsonl", concurrency,
                                                    args.records))
        most = server.most_in_flight
    one, eight = statistics.median(times[1]), statistics.median(times[8])
    print(f"{args.records} records, server latency {args.latency} s, {args.repeats} runs each (median):")
    print(f"  1 in flight: {one:.2f} s   8 in flight: {eight:.2f} s   ratio {one / eight:.2f}x "
          f"(ideal 8x; floor {args.records * args.latency / 8:.2f} s); the server saw {most} at once")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
