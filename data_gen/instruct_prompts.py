"""The teacher's prompts (text files under data_gen/prompts/<type>/) and the reply format they ask for.

    messages = teacher_messages("conversation", record)     # system, few-shot pairs, then this record's context
    turns = parse_reply("conversation", reply_text)         # [Turn("user", ...), Turn("assistant", ...), ...]
    prompt_version()                                        # a hash of every prompt file

A reply is turns, each starting on a new line with "User:" or "Assistant:", alternating from the user to the
assistant. `<image>` in an assistant turn is the picture it draws. A reply that breaks these rules raises
MalformedReply, so it is retried or rejected, never written half-formed.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from data_gen.instruct_records import ImageRecord, context

PROMPTS = Path(__file__).parent / "prompts"
TYPES = ("conversation", "detail", "reasoning", "draw", "mixed")
DRAWN = "<image>"
# (fewest, most) turns, and whether the assistant must / may not draw, per type.
_SHAPE = {"conversation": (2, 10, False), "detail": (2, 2, False), "reasoning": (2, 2, False),
          "draw": (2, 2, True), "mixed": (4, 6, True)}
_TURN = re.compile(r"^(User|Assistant):[ \t]*", re.MULTILINE)


class MalformedReply(ValueError):
    """A teacher reply that does not parse into the turns its type needs."""


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str  # for the assistant, may hold DRAWN where its picture goes


@cache
def _files(kind: str) -> tuple[str, list[tuple[str, str]]]:
    folder = PROMPTS / kind
    system = (folder / "system.txt").read_text().strip()
    examples = []
    for path in sorted(folder.glob("fewshot_*.txt")):
        text = path.read_text()
        head, _, response = text.partition("### response")
        examples.append((head.replace("### context", "").strip(), response.strip()))
    return system, examples


def teacher_messages(kind: str, record: ImageRecord) -> list[dict]:
    """OpenAI chat messages for one record: the system message, the few-shot pairs, then the record's context."""
    if kind not in TYPES:
        raise ValueError(f"unknown response type {kind!r}; choose from {', '.join(TYPES)}")
    system, examples = _files(kind)
    messages = [{"role": "system", "content": system}]
    for shown, reply in examples:
        messages += [{"role": "user", "content": shown}, {"role": "assistant", "content": reply}]
    return messages + [{"role": "user", "content": context(record)}]


@cache
def prompt_version() -> str:
    """A short hash of every prompt file: output files record it, and runs with other prompts do not mix."""
    digest = hashlib.sha256()
    for path in sorted(PROMPTS.rglob("*.txt")):
        digest.update(str(path.relative_to(PROMPTS)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def parse_reply(kind: str, text: str) -> list[Turn]:
    """The reply's turns, checked against what `kind` needs; raises MalformedReply naming what is wrong."""
    if not isinstance(text, str) or not _TURN.search(text):
        raise MalformedReply("no 'User:' or 'Assistant:' turns")
    marks = list(_TURN.finditer(text))
    if text[:marks[0].start()].strip():
        raise MalformedReply("text before the first turn")
    turns = [Turn(m[1].lower(), text[m.end():(marks[i + 1].start() if i + 1 < len(marks) else len(text))].strip())
             for i, m in enumerate(marks)]
    fewest, most, draws = _SHAPE[kind]
    if not fewest <= len(turns) <= most:
        raise MalformedReply(f"{len(turns)} turns; a {kind} reply has {fewest} to {most}")
    for i, turn in enumerate(turns):
        if turn.role != ("user" if i % 2 == 0 else "assistant"):
            raise MalformedReply(f"turn {i + 1} is the {turn.role}'s; turns alternate from the user")
        if not turn.text.replace(DRAWN, "").strip() and not (turn.role == "assistant" and DRAWN in turn.text):
            raise MalformedReply(f"turn {i + 1} is empty")
        if turn.role == "user" and DRAWN in turn.text:
            raise MalformedReply(f"turn {i + 1}: only the assistant draws ({DRAWN})")
        if turn.text.count(DRAWN) > 1:
            raise MalformedReply(f"turn {i + 1} draws more than one picture")
    drawn = sum(DRAWN in t.text for t in turns)
    if draws and drawn == 0:
        raise MalformedReply(f"a {kind} reply must draw the picture ({DRAWN} in an assistant turn)")
    if not draws and drawn:
        raise MalformedReply(f"a {kind} reply must not draw")
    return turns


def sees_image(kind: str, turns: list[Turn]) -> bool:
    """Does the user show the image in the first turn? Not when the chat opens with a request to draw it."""
    return kind != "draw" and not (kind == "mixed" and DRAWN in turns[1].text)
