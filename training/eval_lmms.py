"""Score a running OpenAI-compatible server (glyph serve, vLLM, ...) with lmms-eval on Glyph's scene tasks.

    glyph serve --port 8000 &
    glyph eval lmms --server http://127.0.0.1:8000 --out runs/lmms           # the shipped scene tasks
    glyph eval lmms --server URL --include-path runs/lmms_tasks --tasks scene_vqa --limit 20

It runs lmms-eval's own command line (`python -m lmms_eval eval --model openai ...`, lmms-eval 0.7.3) with the
server's URL, after one look at the server's /health, so that a server that is down stops it with one line
instead of lmms-eval's retries. The accuracy it prints is lmms-eval's, read from the results file it writes.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from assistant.config import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # where the shipped task's data path starts
TASKS = Path(__file__).resolve().parent / "lmms_tasks"


def check_server(server: str) -> None:
    """Refuse a server that does not answer GET /health with 200, in one sentence that says what to do."""
    url = root_of(server) + "/health"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # the user's own server's URL
            if response.status == 200:
                return
            problem = f"answered {response.status}"
    except urllib.error.HTTPError as error:
        problem = f"answered {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        problem = f"did not answer ({getattr(error, 'reason', error)})"
    raise ConfigError(f"the server at {server} {problem} on {url}; start it first (glyph serve --port 8000) or "
                      "pass the right --server")


def check_installed() -> None:
    if importlib.util.find_spec("lmms_eval") is None:
        raise ConfigError("lmms-eval is not installed; install it as `make test` does: pip install --no-deps "
                          "lmms-eval==0.7.3, then pip install -e '.[test]' for the few packages it needs here")


def served_model(server: str, api_key: str) -> str:
    """The first model the server lists at GET /v1/models (glyph serve serves one)."""
    request = urllib.request.Request(base_url_of(server) + "/models", headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # the user's own server's URL
            models = json.loads(response.read())["data"]
        return models[0]["id"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as error:
        raise ConfigError(f"the server at {server} lists no model at /v1/models ({error}); check --api-key, or "
                          "pass --model-name") from error


def root_of(server: str) -> str:
    """http://host:port, from the server's URL given with or without /v1."""
    return server.rstrip("/").removesuffix("/v1")


def base_url_of(server: str) -> str:
    return root_of(server) + "/v1"


def lmms_eval_command(args: argparse.Namespace, out: Path) -> list[str]:
    command = [sys.executable, "-m", "lmms_eval", "eval", "--model", "openai", "--model_args",
               (f"model_version={args.model_name},base_url={base_url_of(args.server)},api_key={args.api_key},"
                "num_concurrent=1"),
               "--tasks", args.tasks, "--include_path", str(args.include_path), "--batch_size", "1",
               "--output_path", str(out), "--log_samples"]
    return command + (["--limit", str(args.limit)] if args.limit else [])


def results_of(out: Path) -> dict:
    """The metrics of lmms-eval's newest results file under `out` (it nests them by model and time)."""
    files = sorted(out.rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise ConfigError(f"lmms-eval wrote no results file under {out}; see its output above")
    return json.loads(files[-1].read_text())["results"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph eval lmms", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="the server's URL, e.g. http://127.0.0.1:8000 (or .../v1)")
    p.add_argument("--tasks", default="scene_vqa,scene_vqa_two_images",
                   help="lmms-eval task names, comma-separated (default: both shipped scene tasks)")
    p.add_argument("--include-path", type=Path, default=TASKS, help="folder of task folders (default: the shipped)")
    p.add_argument("--out", type=Path, default=Path("runs/lmms"), help="lmms-eval's --output_path")
    p.add_argument("--limit", type=int, default=0, help="only the first N questions of each task (0: all)")
    p.add_argument("--model-name", default=None, help="the model name sent in each request (default: the "
                   "first one the server lists at /v1/models)")
    p.add_argument("--api-key", default=os.environ.get("GLYPH_API_KEY", "none"),
                   help="the server's API key (default: $GLYPH_API_KEY)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_installed()
        check_server(args.server)
        args.model_name = args.model_name or served_model(args.server, args.api_key)
        out = args.out.resolve()
        # From the package root, so that the shipped task's data path (training/lmms_tasks/...) resolves.
        done = subprocess.run(lmms_eval_command(args, out), check=False, cwd=PACKAGE_ROOT)
        if done.returncode:
            raise ConfigError(f"lmms-eval stopped with exit status {done.returncode}; see its output above")
        results = results_of(out)
    except ConfigError as error:
        print(f"glyph eval lmms: {error}", file=sys.stderr)
        return 2
    for task, metrics in results.items():
        shown = {k.split(",")[0]: v for k, v in metrics.items() if isinstance(v, float) and "stderr" not in k}
        print(task + "  " + "  ".join(f"{name} {value:.1%}" for name, value in shown.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
