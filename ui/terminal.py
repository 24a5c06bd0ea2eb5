"""Glyph in the terminal: a streaming, multi-turn chat with images in and out.

    glyph chat --model runs/scenes-tiny/instruct [--image scene.png ...] [--save-dir glyph-images]

Type a message and press Enter; the reply streams as it is generated. Commands:

    /image PATH [PATH ...]   attach images to your next message (--image does the same for the first one)
    /draw TEXT               ask for a drawing: the reply is an image (after a sentence saying what it
                             shows, for an assistant trained to say it)
    /undo                    forget the last exchange
    /reset                   start a new conversation
    /help                    this list
    /quit                    leave (so do Ctrl+D and Ctrl+C)

Drawn images are saved as PNG files in --save-dir, and their paths are printed.
It drives assistant.chat.ChatSession, as the UI and the HTTP server do; it has no model code of its own.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TextIO

from assistant.chat import ChatSession
from assistant.generation import Finished, ImageDone, Sampling, TextDelta
from assistant.images import ImageError, load_image
from ui.loader import add_model_option, load_for
from ui.sampling_form import add_sampling_options, sampling_of_flags

HELP = __doc__.split("Commands:\n\n")[1].split("\n\nDrawn")[0]


class TerminalChat:
    """One conversation: reads a line at a time, writes the streamed reply to `out`."""

    def __init__(self, session: ChatSession, settings: Sampling, save_dir: Path, out: TextIO):
        self.session, self.settings, self.save_dir, self.out = session, settings, save_dir, out
        self.pending: list = []  # images attached to the next message (loaded and checked)
        self.refused: list[str] = []  # images that could not be attached since the last message
        self.saved = 0

    def attach(self, paths: list[str]) -> None:
        for path in paths:
            try:
                self.pending.append(load_image(path))
            except (ImageError, OSError) as error:
                self.say(f"[not attached] {error}")
                self.refused.append(path)
                continue
            self.say(f"[attached] {path} (goes with your next message)")

    def handle(self, line: str) -> bool:
        """Act on one line of input; False when the person asked to leave."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            self.reply(line, draw=False)
            return True
        command, _, rest = line.partition(" ")
        if command in ("/quit", "/exit"):
            return False
        if command == "/help":
            self.say(HELP)
        elif command == "/image" and rest.strip():
            try:
                paths = shlex.split(rest)
            except ValueError as error:  # an unclosed quote
                self.say(f"[not attached] /image {rest.strip()}: {error}; close the quote, "
                         'e.g. /image "my scene.png"')
                self.refused.append(rest.strip())
                return True
            self.attach(paths)
        elif command == "/image":
            self.say("[usage] /image PATH [PATH ...]")
        elif command == "/draw":
            self.reply(rest.strip(), draw=True)
        elif command == "/undo":
            self.session.undo()
            self.say("[undone] the last exchange is forgotten")
        elif command == "/reset":
            self.session.reset()
            self.pending.clear()
            self.refused.clear()
            self.say("[reset] a new conversation")
        else:
            self.say(f"[unknown command] {command}; /help lists the commands")
        return True

    def reply(self, text: str, draw: bool) -> None:
        if self.refused:  # the question is likely about the image that is missing: never answer as if it were there
            self.say(f"[not sent] {', '.join(self.refused)} could not be attached; attach a readable image with "
                     "/image PATH, or send the message again to ask without it")
            self.refused = []
            return
        images, self.pending = self.pending, []
        self.out.write("glyph> ")
        try:
            for event in self.session.send(text, images=images, settings=self.settings, draw=draw):
                if isinstance(event, TextDelta):
                    self.out.write(event.text)
                    self.out.flush()
                elif isinstance(event, ImageDone):
                    self.out.write(f"[image: {self.save(event.image)}] ")
                elif isinstance(event, Finished) and event.reason == "length":
                    self.out.write(" [cut off at --max-tokens]")
        except ValueError as error:  # a bad image, or a chat that outgrew the model's context
            self.out.write(f"\n[not answered] {error}")
        self.out.write("\n")
        self.out.flush()

    def save(self, image) -> Path:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        while (path := self.save_dir / f"glyph-{self.saved:04d}.png").exists():
            self.saved += 1
        image.save(path)
        self.saved += 1
        return path

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glyph chat", description="Chat with a Glyph assistant in the terminal.")
    add_model_option(parser)
    parser.add_argument("--image", action="append", default=[], help="an image for the first message (repeatable)")
    parser.add_argument("--save-dir", type=Path, default=Path("glyph-images"), help="where drawn images go")
    parser.add_argument("--system", default=None, help="a system prompt")
    add_sampling_options(parser)
    args = parser.parse_args(argv)
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    try:
        settings = sampling_of_flags(args)
    except ValueError as error:
        print(f"glyph chat: {error}", file=sys.stderr)
        return 2
    model = load_for("glyph chat", args.model, args.int8)
    if model is None:
        return 2
    chat = TerminalChat(ChatSession(model, args.system), settings, args.save_dir, stdout)
    chat.say(f"Glyph ({args.model or 'models/scenes-smollm2'}). Type a message; /help lists the commands, /quit leaves.")
    chat.attach(args.image)
    try:
        for line in _lines(stdin, stdout):
            if not chat.handle(line):
                break
    except KeyboardInterrupt:
        stdout.write("\n")
    return 0


def _lines(stdin: TextIO, stdout: TextIO):
    while True:
        stdout.write("you> ")
        stdout.flush()
        line = stdin.readline()
        if not line:  # end of input (Ctrl+D)
            stdout.write("\n")
            return
        yield line


if __name__ == "__main__":
    sys.exit(main())
