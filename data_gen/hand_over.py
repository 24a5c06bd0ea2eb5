"""Chats that teach the LoRA to hand text-only requests it has nothing to add to back to the LLM alone.

    glyph data hand-over --replies data/chats/replies.jsonl --pictures data/chats/instruct.jsonl \
        --out data/chats/hand-over.jsonl

Self-distillation (data_gen.text_replies) brought a LoRA-tuned SmolLM2 close to its own replies, but never word
for word: any change to the weights changes some token of a long reply. So the assistant does not try. In a chat
with no picture in it, an everyday request ("Who painted the Mona Lisa?") is answered by an empty reply: the
end of turn at once. Generation reads that as "not mine" and lets the LLM without the adapter answer
(assistant.hand_over), so the reply is the LLM's own, token for token. Requests about pictures, for drawings
and about the assistant itself stay the adapter's (the scene chats teach those).

Three kinds of chat, from the LLM's own replies (`glyph data replies`) and the scene chats (`glyph data chats`):

- `hand_over`: an everyday request, and the empty reply;
- `hand_over_later`: an everyday request with the LLM's reply, then another request and the empty reply (the
  first reply is the LLM's own, so training on it teaches nothing the LLM does not already say);
- `llm_reply_after_picture`: the first turn of a chat about a picture, then an everyday request with the LLM's
  reply. Once a picture is in the chat nothing is handed over (the LLM alone cannot see it): the assistant
  answers itself, as self-distillation taught it.

One chat per line, in the messages format of data_gen.scene_chats.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from boltons.fileutils import atomic_save

from data_gen.scene_chats import assistant


def read_chats(path: Path, what: str) -> list[dict]:
    """The chats of a JSONL file; ValueError naming the file and the line when one is not a chat."""
    chats = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            chat = json.loads(line)
            messages = chat["messages"]
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            raise ValueError(f"{path} line {number} is not a chat ({{\"messages\": [...]}}, {type(error).__name__});"
                             f" write the {what} with glyph data") from error
        chats.append({"id": chat.get("id", f"line-{number}"), "kind": chat.get("kind", ""), "messages": messages})
    if not chats:
        raise ValueError(f"{path} holds no chats; write the {what} with glyph data")
    return chats


def _has_image(message: dict) -> bool:
    content = message["content"]
    return isinstance(content, list) and any(part.get("type") == "image" for part in content)


def _one_reply(chat: dict) -> tuple[dict, dict] | None:
    """(user message, assistant reply) of a one-exchange text-only chat, else None."""
    messages = chat["messages"]
    if len(messages) != 2 or [m["role"] for m in messages] != ["user", "assistant"] or any(map(_has_image, messages)):
        return None
    return messages[0], messages[1]


def _first_picture_turn(chat: dict) -> list[dict] | None:
    """The first exchange of a chat whose first user message shows a picture and gets a text reply, else None."""
    messages = chat["messages"]
    if len(messages) < 2 or not _has_image(messages[0]) or messages[1]["role"] != "assistant" \
            or _has_image(messages[1]):
        return None
    return messages[:2]


def hand_over_chats(replies: list[dict], pictures: list[dict], rng: np.random.Generator,
                    later: float = 0.4, after_picture: float = 0.4) -> list[dict]:
    """Every reply's request handed over; `later` and `after_picture` as many again (shares of the replies) as
    two-exchange chats of the other two kinds."""
    exchanges = [pair for pair in map(_one_reply, replies) if pair is not None]
    openings = [turn for turn in map(_first_picture_turn, pictures) if turn is not None]
    if not exchanges:
        raise ValueError("the replies hold no one-exchange text-only chat (glyph data replies writes them)")
    if not openings:
        raise ValueError("the scene chats hold no chat that opens with a picture (glyph data chats writes them)")
    chats = [{"kind": "hand_over", "messages": [request, assistant()]} for request, _ in exchanges]
    for _ in range(round(later * len(exchanges))):
        first, second = rng.choice(len(exchanges), size=2, replace=False)
        chats.append({"kind": "hand_over_later", "messages": [*exchanges[first], exchanges[second][0], assistant()]})
    for _ in range(round(after_picture * len(exchanges))):
        opening, exchange = openings[rng.integers(len(openings))], exchanges[rng.integers(len(exchanges))]
        chats.append({"kind": "llm_reply_after_picture", "messages": [*opening, *exchange]})
    order = rng.permutation(len(chats))
    return [{"id": f"hand-over-{i:06d}"} | chats[j] for i, j in enumerate(order)]


def write_hand_over(replies: Path, pictures: Path, out: Path, seed: int = 0) -> int:
    """Write the hand-over chats to `out` (JSONL, atomically); returns how many. Image paths are written as the
    scene chats have them (relative to their file), so `out` belongs in the same folder."""
    chats = hand_over_chats(read_chats(replies, "LLM's replies (glyph data replies)"),
                            read_chats(pictures, "scene chats (glyph data chats)"), np.random.default_rng(seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_save(str(out), text_mode=True) as file:
        for chat in chats:
            file.write(json.dumps(chat) + "\n")
    return len(chats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="glyph data hand-over", description=__doc__.split("\n\n")[0])
    p.add_argument("--replies", required=True, type=Path, help="the LLM's own replies (glyph data replies)")
    p.add_argument("--pictures", required=True, type=Path, help="scene chats (glyph data chats) in the same folder")
    p.add_argument("--out", required=True, type=Path, help="the JSONL file to write, beside --pictures")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.out.resolve().parent != args.pictures.resolve().parent:
        print(f"glyph data hand-over: --out {args.out} must be in the folder of --pictures ({args.pictures.parent}):"
              " the chats name their images relative to it", file=sys.stderr)
        return 2
    try:
        count = write_hand_over(args.replies, args.pictures, args.out, args.seed)
    except (ValueError, OSError) as error:
        print(f"glyph data hand-over: {error}", file=sys.stderr)
        return 2
    print(f"wrote {count} chats to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
