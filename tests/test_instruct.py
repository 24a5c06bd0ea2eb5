"""`glyph data instruct`: teachers, reply parsing, faithfulness, resume, and a real fault-injecting HTTP server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from benchmarks.fake_openai import FakeOpenAI, every_nth
from data_gen import instruct
from data_gen.faithfulness import contradictions
from data_gen.instruct_prompts import TYPES, MalformedReply, parse_reply, teacher_messages
from data_gen.instruct_records import load_records
from data_gen.scene_dataset import write_scene_dataset
from data_gen.teachers import Job, OracleTeacher
from training.chat_data import read_chats

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return write_scene_dataset(tmp_path_factory.mktemp("instruct") / "scenes", n=60, seed=3)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- a teacher behind a real HTTP server -------------------------------------------------------------------

def scripted_reply(body: dict) -> str:
    """A valid reply for the request's type, different per image; the first try at every 5th image is garbage."""
    system, context = body["messages"][0]["content"], body["messages"][-1]["content"]
    kind = next(k for k in TYPES if _system(k) == system)
    tag = zlib.crc32(context.encode()) % 1000
    if tag % 5 == 0 and context not in _garbled:
        _garbled.add(context)
        return "Sure! Here are some thoughts about the image."
    return {"conversation": f"User: How many things are there?\nAssistant: Let me count them ({tag}).",
            "detail": f"User: Describe it.\nAssistant: A picture, number {tag}.",
            "reasoning": f"User: Why?\nAssistant: Because of {tag}.",
            "draw": f"User: Draw picture {tag}.\nAssistant: Here it is. <image>",
            "mixed": f"User: Draw picture {tag}.\nAssistant: Here. <image>\nUser: Thanks.\nAssistant: Welcome."}[kind]


_garbled: set[str] = set()


def _system(kind: str) -> str:
    from data_gen.instruct_prompts import _files

    return _files(kind)[0]


def openai_argv(server: FakeOpenAI, scenes: Path, out: Path, *extra: str) -> list[str]:
    return ["--teacher", "openai", "--base-url", server.base_url, "--model", "fake-gpt", "--api-key",
            server.api_key, "--in", str(scenes), "--out", str(out), "--limit", "12", "--timeout", "0.5",
            "--backoff", "0.01", "--backoff-cap", "0.2", "--max-retries", "8", *extra]


def test_a_run_through_429s_500s_timeouts_and_bad_bodies_loses_and_duplicates_nothing(scenes, tmp_path, capsys):
    _garbled.clear()
    faults = every_nth({4: "429", 9: "500", 13: "malformed", 17: "slow"})
    with FakeOpenAI(scripted_reply, faults, slow_seconds=1.0) as server:
        code = instruct.main(openai_argv(server, scenes, tmp_path / "out.jsonl", "--concurrency", "4"))
    assert code == 0, capsys.readouterr().err
    written = rows(tmp_path / "out.jsonl")
    ids = [r["id"] for r in written]
    expected = {f"{r.id}-{kind}-0" for r in load_records(scenes).records[:12] for kind in TYPES}
    assert len(ids) == len(set(ids)) == 60 and set(ids) == expected
    summary = json.loads((tmp_path / "out.jsonl.summary.json").read_text())
    assert summary["written"] == 60 and summary["rejected"] == 0
    assert {"429", "500", "malformed body", "timeout", "malformed reply"} <= set(summary["retry_reasons"])
    assert summary["retried"] == sum(summary["retry_reasons"].values()) >= sum(server.injected.values())
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0
    draws = [r for r in written if r["type"] == "draw"]
    assert all(r["messages"][1]["content"][-1]["type"] == "image" for r in draws)  # the drawing is the image


def test_kill_9_then_resume_gives_the_uninterrupted_set(scenes, tmp_path):
    _garbled.clear()
    with FakeOpenAI(scripted_reply, latency=0.05) as server:
        assert instruct.main(openai_argv(server, scenes, tmp_path / "whole.jsonl", "--concurrency", "2")) == 0
        _garbled.clear()
        out = tmp_path / "killed.jsonl"
        command = [sys.executable, "-m", "data_gen.instruct", *openai_argv(server, scenes, out, "--concurrency", "2")]
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 15):
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        before = len(rows(out)) if out.read_text().endswith("\n") else None
        assert before is None or 15 <= before < 60  # killed in the middle
        assert instruct.main(openai_argv(server, scenes, out, "--concurrency", "2")) == 0
    whole, resumed = rows(tmp_path / "whole.jsonl"), rows(out)
    assert len(resumed) == len({r["id"] for r in resumed}) == 60
    assert sorted(map(json.dumps, resumed)) == sorted(map(json.dumps, whole))


def test_a_half_written_last_line_is_dropped_and_redone(scenes, tmp_path):
    out = tmp_path / "out.jsonl"
    argv = ["--in", str(scenes), "--out", str(out), "--limit", "3"]
    assert instruct.main(argv) == 0
    whole = out.read_text()
    lines = whole.splitlines(keepends=True)
    out.write_text("".join(lines[:-2]) + lines[-2][:25])  # one record gone, the next cut mid-line
    assert instruct.main(argv) == 0
    assert sorted(out.read_text().splitlines()) == sorted(whole.splitlines())


def test_a_bad_key_stops_at_once_with_a_clear_401(scenes, tmp_path, capsys):
    with FakeOpenAI(scripted_reply) as server:
        argv = openai_argv(server, scenes, tmp_path / "out.jsonl", "--concurrency", "2")
        argv[argv.index("--api-key") + 1] = "wrong"
        assert instruct.main(argv) == 2
    err = capsys.readouterr().err
    assert "401" in err and "--api-key" in err
    assert server.requests == 0 and 1 <= server.refused <= 4  # no retries: at most the requests already in flight


def test_an_unreachable_endpoint_stops_with_a_clear_error(scenes, tmp_path, capsys):
    with FakeOpenAI(scripted_reply) as server:
        url = server.base_url
    argv = ["--teacher", "openai", "--base-url", url, "--model", "m", "--api-key", "k", "--in", str(scenes),
            "--out", str(tmp_path / "out.jsonl"), "--limit", "2", "--max-retries", "2", "--backoff", "0.01"]
    assert instruct.main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and "--base-url" in err and "Traceback" not in err


# ---- the oracle, faithfulness and replies ------------------------------------------------------------------

def test_the_oracle_is_faithful_and_its_chats_load_for_training(scenes, tmp_path):
    out = tmp_path / "oracle.jsonl"
    assert instruct.main(["--in", str(scenes), "--out", str(out), "--variants", "2"]) == 0
    written = rows(out)
    summary = json.loads((tmp_path / "oracle.jsonl.summary.json").read_text())
    assert summary["faithful_rate"] == 1.0 and set(summary["faithful_rate_by_type"]) == set(TYPES)
    assert all(r["faithful"] for r in written) and len(written) == 2 * len(TYPES) * len(load_records(scenes).records)
    chats = read_chats([out])
    assert not chats.bad and len(chats.chats) == len(written)


def test_a_planted_contradiction_is_flagged(scenes):
    record = load_records(scenes).records[0]
    obj = record.scene.objects[0]
    wrong = next(c for c in ("red", "blue", "green") if c != obj.color)
    reply = OracleTeacher().complete([], Job(record, "detail", 0)).text
    turns = parse_reply("detail", reply)
    assert contradictions(turns, record.scene) == []
    planted = parse_reply("detail", reply.replace(f"{obj.color} {obj.shape}", f"{wrong} {obj.shape}", 1))
    assert contradictions(planted, record.scene)
    other = next(s for s in ("circle", "square", "triangle", "ring", "cross")
                 if not any((o.color, o.shape) == (obj.color, s) for o in record.scene.objects))
    for lie in (f"User: What colour is it?\nAssistant: The {obj.shape} is {wrong}.",
                f"User: How many?\nAssistant: There are {len(record.scene.objects) + 1} shapes.",
                f"User: Which shape?\nAssistant: The {obj.color} shape is a {other}."):
        assert contradictions(parse_reply("conversation", lie), record.scene), lie
    for lie in (f"User: Draw a {wrong} {obj.shape}.\nAssistant: Here. <image>",  # names what is not there
                "User: Draw a picture.\nAssistant: Here. <image>"):  # leaves every object out
        assert contradictions(parse_reply("draw", lie), record.scene), lie


def test_replies_that_break_the_format_are_refused():
    good = "User: Hi\nAssistant: Hello."
    assert [t.role for t in parse_reply("conversation", good)] == ["user", "assistant"]
    for kind, bad in [("conversation", "Hello there."), ("conversation", "Note:\nUser: a\nAssistant: b"),
                      ("conversation", "User: a\nUser: b"), ("detail", "User: a\nAssistant: b\nUser: c\nAssistant: d"),
                      ("draw", "User: draw\nAssistant: done"), ("conversation", "User: a <image>\nAssistant: b"),
                      ("conversation", "User: a\nAssistant: <image>"), ("conversation", "User: a\nAssistant:")]:
        with pytest.raises(MalformedReply):
            parse_reply(kind, bad)


def test_teacher_messages_hold_the_few_shot_examples_and_the_record(scenes):
    record = load_records(scenes).records[0]
    messages = teacher_messages("conversation", record)
    assert messages[0]["role"] == "system" and [m["role"] for m in messages[1:-1]] == ["user", "assistant"] * 2
    assert record.captions[0] in messages[-1]["content"] and "Objects:" in messages[-1]["content"]


# ---- bad input ---------------------------------------------------------------------------------------------

def test_bad_records_are_named_and_fail_or_are_skipped(scenes, tmp_path, capsys):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(scenes), str(broken)], check=True)
    lines = (broken / "train.jsonl").read_text().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    first["caption"] = ""
    (broken / second["image"]).unlink()
    (broken / "train.jsonl").write_text("\n".join([json.dumps(first), json.dumps(second), *lines[2:]]) + "\n")
    argv = ["--in", str(broken), "--out", str(tmp_path / "out.jsonl"), "--limit", "3"]
    assert instruct.main(argv) == 2
    err = capsys.readouterr().err
    assert "row 1: no caption" in err and "row 2: image" in err and "does not exist" in err
    assert instruct.main([*argv, "--skip-bad"]) == 0
    assert not {json.loads(x)["image_id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()} & \
        {str(first["id"]), str(second["id"])}


def test_an_output_from_other_prompts_is_refused(scenes, tmp_path, capsys):
    out = tmp_path / "old.jsonl"
    out.write_text(json.dumps({"id": "x-detail-0", "prompt_version": "0ld0ld0ld0ld", "messages": []}) + "\n")
    assert instruct.main(["--in", str(scenes), "--out", str(out), "--limit", "2"]) == 2
    assert "prompt version 0ld0ld0ld0ld" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 1  # untouched
    assert instruct.main(["--in", str(scenes), "--out", str(out), "--limit", "2", "--overwrite"]) == 0


def test_llava_format_has_no_room_for_drawings(scenes, tmp_path, capsys):
    out = tmp_path / "llava.jsonl"
    assert instruct.main(["--in", str(scenes), "--out", str(out), "--format", "llava"]) == 2
    assert "draw" in capsys.readouterr().err
    assert instruct.main(["--in", str(scenes), "--out", str(out), "--format", "llava", "--limit", "4",
                          "--types", "conversation,detail,reasoning"]) == 0
    written = rows(out)
    assert written[0]["conversations"][0]["value"].startswith("<image>\n")
    assert not read_chats([out]).bad


def test_coco_records_go_to_an_llm_teacher_and_not_to_the_oracle(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (40, 20), "white").save(tmp_path / "a.jpg")
    captions = {"images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 20},
                           {"id": 8, "file_name": "missing.jpg", "width": 40, "height": 20}],
                "annotations": [{"image_id": 7, "caption": "A white wall."}, {"image_id": 8, "caption": "Gone."}]}
    instances = {"categories": [{"id": 1, "name": "wall"}],
                 "annotations": [{"image_id": 7, "category_id": 1, "bbox": [4, 2, 20, 10]},
                                 {"image_id": 8, "category_id": 1, "bbox": [0, 0, 1, 1]}]}
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    found = load_records(tmp_path / "captions.json", tmp_path / "instances.json")
    assert [r.id for r in found.records] == ["7"] and found.records[0].boxes == (("wall", (0.1, 0.1, 0.6, 0.6)),)
    assert "missing.jpg does not exist" in found.skipped[0][1]
    argv = ["--in", str(tmp_path / "captions.json"), "--instances", str(tmp_path / "instances.json"),
            "--out", str(tmp_path / "out.jsonl"), "--skip-bad", "--types", "conversation,detail"]
    assert instruct.main(argv) == 2
    assert "the oracle needs scene specs" in capsys.readouterr().err
    with FakeOpenAI(scripted_reply) as server:
        assert instruct.main([*argv, "--teacher", "openai", "--base-url", server.base_url, "--model", "m",
                              "--api-key", server.api_key, "--backoff", "0.01"]) == 0
    written = rows(tmp_path / "out.jsonl")
    assert [r["id"] for r in written] and all("faithful" not in r for r in written)  # no spec: nothing to check
    assert sorted(r["id"] for r in written) == ["7-conversation-0", "7-detail-0"]


def test_unfaithful_records_are_flagged_or_dropped(scenes, tmp_path):
    def liar(body: dict) -> str:  # no scene has nine shapes
        return "User: How many shapes are there?\nAssistant: There are nine shapes."

    with FakeOpenAI(liar) as server:
        base = ["--teacher", "openai", "--base-url", server.base_url, "--model", "m", "--api-key", server.api_key,
                "--in", str(scenes), "--limit", "3", "--types", "conversation"]
        assert instruct.main([*base, "--out", str(tmp_path / "kept.jsonl")]) == 0
        assert instruct.main([*base, "--out", str(tmp_path / "clean.jsonl"), "--drop-unfaithful"]) == 0
    kept = rows(tmp_path / "kept.jsonl")
    assert len(kept) == 3 and not any(r["faithful"] for r in kept)
    assert "counts nine shapes" in kept[0]["contradictions"][0]
    assert rows(tmp_path / "clean.jsonl") == []
    summary = json.loads((tmp_path / "clean.jsonl.summary.json").read_text())
    assert summary["unfaithful"] == summary["dropped_unfaithful"] == 3 and summary["faithful_rate"] == 0.0


def test_a_local_transformers_teacher_runs_and_its_babble_is_rejected_not_written(scenes, tmp_path):
    from tests.tiny_parts import build_llm

    model = build_llm(tmp_path / "tiny-llm", "llama")  # random weights: its replies never parse into turns
    out = tmp_path / "local.jsonl"
    argv = ["--teacher", "local", "--model", str(model), "--in", str(scenes), "--out", str(out), "--limit", "1",
            "--types", "detail", "--max-retries", "1"]
    assert instruct.main(argv) == 0
    summary = json.loads((tmp_path / "local.jsonl.summary.json").read_text())
    assert summary["teacher"] == f"local:{model}" and summary["rejected"] == 1 and summary["written"] == 0
    assert summary["retry_reasons"] == {"malformed reply": 2} and summary["completion_tokens"] > 0
    assert rows(out) == []
