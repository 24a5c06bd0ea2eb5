"""The sampling settings a person sets on a surface (temperature, top-p, max tokens, CFG scale, seed) → Sampling.

    add_sampling_options(parser)                     # glyph chat's flags
    settings = sampling_of_form(0.7, 1.0, 256, 3.0, seed=None)
    temperature, top_p, max_tokens, cfg_scale, seed = form_defaults()   # the UI's sliders and examples

Every default is read from assistant.generation.Sampling's own defaults when it is asked for, so a default
changed there reaches the terminal's flags, the UI's sliders and the server's requests alike (the server reads
a request's absent fields from Sampling too: ui/api_requests.py).
"""
from __future__ import annotations

import argparse

from assistant.generation import Sampling


def sampling_of_form(temperature, top_p, max_tokens, cfg_scale, seed) -> Sampling:
    """A person's settings as a checked Sampling (ValueError names a bad one); seed None draws a random one."""
    return Sampling(temperature=float(temperature), top_p=float(top_p), max_new_tokens=int(max_tokens),
                    cfg_scale=float(cfg_scale), seed=None if seed is None else int(seed)).validate()


def form_defaults() -> tuple[float, float, int, float, int | None]:
    """(temperature, top-p, max tokens, CFG scale, seed): Sampling's defaults for what a person sets."""
    default = Sampling()
    return default.temperature, default.top_p, default.max_new_tokens, default.cfg_scale, default.seed


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """The sampling flags of a command (the UI and the server take the same settings per request)."""
    temperature, top_p, max_tokens, cfg_scale, seed = form_defaults()
    group = parser.add_argument_group("sampling")
    group.add_argument("--temperature", type=float, default=temperature, help="0 = greedy (default %(default)s)")
    group.add_argument("--top-p", type=float, default=top_p, help="1 = off (default %(default)s)")
    group.add_argument("--max-tokens", type=int, default=max_tokens,
                       help="text tokens per reply; images always complete (default %(default)s)")
    group.add_argument("--cfg-scale", type=float, default=cfg_scale,
                       help="classifier-free guidance for drawings; 1 = none (default %(default)s)")
    group.add_argument("--seed", type=int, default=seed, help="default: none, so replies vary")


def sampling_of_flags(args: argparse.Namespace) -> Sampling:
    return sampling_of_form(args.temperature, args.top_p, args.max_tokens, args.cfg_scale, args.seed)
