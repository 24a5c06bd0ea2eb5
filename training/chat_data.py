"""Chat data for every stage: LLaVA JSON or messages JSONL, read with `datasets`, checked, tokenized, batched.

    chats = read_chats(["data/chats/instruct.jsonl"], image_folder=None)        # normalised; bad rows listed
    data = tokenize_chats(chats, model, 512, cache_dir=".cache/glyph/features")  # stages 1, 2: ids, labels, images
    data = tokenize_text_chats(read_chats(files, text_only=True), tokenizer, 512)  # stage 0's language model
    data.raise_or_report(skip_bad=False)                                        # never silently
    batch = collate([data.examples[i] for i in chosen], pad_id, data.features)  # padded tensors
    loss = held_out_loss(examples, 16, pad_id, data.features, loss_of)          # per supervised token

Two formats, told apart by their fields, in a JSON array, JSONL, or a `datasets` folder (`save_to_disk`):

- LLaVA JSON: `{"image": "coco/1.jpg", "conversations": [{"from": "human",
  "value": "<image>\\nWhat is this?"}, {"from": "gpt", "value": "A cat."}]}`. `<image>` marks where the image
  goes (LLaVA puts it first when the text has none); `image` may also be a list, one per `<image>`.
  ShareGPT rows as LLaMA-Factory writes them read the same: `images` (a list, one per `<image>`, which may stand
  anywhere in any user turn) and a `system` text beside `conversations`.
- Hugging Face messages JSONL: `{"messages": [{"role": "user", "content": [{"type": "image", "path": "1.png"},
  {"type": "text", "text": "What is this?"}]}, ...]}`. An image part names its file by `path` (or `image`),
  or takes the next entry of the row's `images` list. An image in an assistant turn is one the assistant
  draws: it is tokenized with the VQ-VAE into codes.

Relative image paths are resolved against `image_folder` (LLaVA's `--image_folder`), by default the folder
that holds the data file (or the `datasets` folder). An image a `datasets` folder holds itself (an `Image`
feature) is written once as a PNG under `<folder>.images/`, beside it. Input images become vision features and
drawn images become VQ codes, each computed once per file and cached on disk under `cache_dir`, keyed by the model that made them and the file's size and time.

Bad rows (malformed, an unknown role, a missing or unreadable image, nothing to learn from, longer than the
context; any image at all with text_only=True) are counted with their file and row number;
`raise_or_report` fails naming them, or with skip_bad=True prints them and trains on the rest.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from boltons.fileutils import atomic_save
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor
from tqdm import tqdm

from assistant.images import load_image
from assistant.pixels import to_tensor
from assistant.templates import IGNORE_INDEX, ImageLayout, TemplateError, render_chat

LLAVA_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
IMAGE_TOKEN = "<image>"
SHOWN_BAD_ROWS = 10


class ChatDataError(ValueError):
    """Chat data that cannot be trained on, naming the rows and what to do."""


@dataclass(frozen=True)
class BadRow:
    file: str
    row: int  # 1-based: the line of a JSONL file, the element of a JSON array
    reason: str

    def __str__(self) -> str:
        return f"{self.file} row {self.row}: {self.reason}"


@dataclass
class Chat:
    """One conversation, normalised: image parts hold resolved paths ({"type": "image", "path": Path})."""
    source: BadRow  # where it came from (reason unused), to name it if it turns out bad later
    messages: list[dict]
    id: str  # the row's "id", else "FILE row N"


@dataclass
class Chats:
    chats: list[Chat] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


# ---- reading ------------------------------------------------------------------------------------------------

def read_chats(paths: list[str | Path], image_folder: str | Path | None = None, text_only: bool = False) -> Chats:
    """The chats of every file, in order, and the bad rows. text_only: a row with an image is bad (stage 0)."""
    result = Chats()
    for path in map(Path, paths):
        if not path.exists():
            raise ChatDataError(f"--data {path} does not exist; pass LLaVA JSON or messages JSONL files, or a "
                                "folder written by datasets' save_to_disk")
        folder = Path(image_folder) if image_folder is not None else path.parent
        rows, bad = _rows_from_disk(path) if path.is_dir() else _load_rows(path)
        result.bad += bad
        for number, row in rows:
            source = BadRow(str(path), number, "")
            try:
                if text_only:
                    _refuse_images(row)
                messages = _normalise(row, folder)
            except ChatDataError as error:
                result.bad.append(BadRow(str(path), number, str(error)))
                continue
            chat_id = str(row["id"]) if row.get("id") is not None else f"{path} row {number}"
            result.chats.append(Chat(source, messages, chat_id))
    return result


def _load_rows(path: Path) -> tuple[list[tuple[int, dict]], list[BadRow]]:
    """(row number, row) pairs via `datasets`; rows it cannot read are found line by line and named."""
    import datasets  # heavy; only the stages that read chats need it

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # a file it cannot parse is named below, by line
    try:
        with tempfile.TemporaryDirectory(prefix="glyph-chats-") as cache:  # nothing left in ~/.cache
            rows = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache).to_list()
    except Exception:  # noqa: BLE001 (datasets raises many kinds; the line-by-line pass names the real problem)
        return _rows_line_by_line(path)
    text = path.read_text(errors="replace")
    if not text.lstrip().startswith("[") and len(rows) != len([line for line in _lines(text) if line.strip()]):
        return _rows_line_by_line(path)  # datasets' and our idea of a JSONL row differ (blank lines): trust lines
    return list(enumerate(rows, start=1)), []


def _rows_from_disk(folder: Path) -> tuple[list[tuple[int, dict]], list[BadRow]]:
    """(row number, row) pairs of a `datasets` folder (one Dataset, or a DatasetDict's only or "train" split);
    images stored in it become PNG files beside it, named by their content."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise ChatDataError(f"--data {folder} is a folder but not one datasets' save_to_disk wrote ({error}); pass "
                            "such a folder, or LLaVA JSON or messages JSONL files") from error
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded and len(loaded) != 1:
            raise ChatDataError(f"--data {folder} holds the splits {', '.join(loaded)}; save the one to train on "
                                "alone, or name it 'train'")
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    images, rows, bad = folder.with_name(folder.name + ".images"), [], []
    for number, row in enumerate(loaded, start=1):
        try:
            rows.append((number, _stored_images_as_files(row, images)))
        except (ValueError, OSError) as error:  # an image the dataset holds that does not decode
            bad.append(BadRow(str(folder), number, str(error)))
    return rows, bad


def _stored_images_as_files(value, images: Path):
    """`value` with every image a dataset holds itself (PIL, or {"bytes": ...}) replaced by the path of a PNG."""
    if isinstance(value, Image.Image) or (isinstance(value, dict) and isinstance(value.get("bytes"), bytes)):
        picture = load_image(value if isinstance(value, Image.Image) else value["bytes"], name="a stored image")
        data = io.BytesIO()
        picture.save(data, format="PNG")
        target = images / f"{hashlib.sha256(data.getvalue()).hexdigest()[:20]}.png"
        if not target.is_file():
            images.mkdir(parents=True, exist_ok=True)
            with atomic_save(str(target)) as file:
                file.write(data.getvalue())
        return str(target.resolve())
    if isinstance(value, dict):
        return {key: _stored_images_as_files(item, images) for key, item in value.items()}
    if isinstance(value, list):
        return [_stored_images_as_files(item, images) for item in value]
    return value


def _lines(text: str) -> list[str]:
    return text.split("\n")  # not splitlines: JSON strings may hold U+2028 and co.


def _rows_line_by_line(path: Path) -> tuple[list[tuple[int, dict]], list[BadRow]]:
    text = path.read_text()
    if text.lstrip().startswith("["):  # a JSON array (LLaVA's own files)
        try:
            array = json.loads(text)
        except json.JSONDecodeError as error:
            raise ChatDataError(f"{path} is not valid JSON ({error}); fix the file") from error
        return [(i, row) for i, row in enumerate(array, start=1)], []
    rows, bad = [], []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            bad.append(BadRow(str(path), number, f"not valid JSON ({error.msg})"))
    return rows, bad


def _normalise(row, folder: Path) -> list[dict]:
    if not isinstance(row, dict):
        raise ChatDataError("a row must be a JSON object")
    if row.get("messages") is not None:
        messages = _from_messages(row["messages"], list(row.get("images") or []), folder)
    elif row.get("conversations") is not None:
        messages = _from_llava(row, folder)
    else:
        raise ChatDataError("has neither 'messages' (HF format) nor 'conversations' (LLaVA format)")
    return messages


def _refuse_images(row) -> None:
    """Stage 0's language model trains on text only: name the first message with an image, before any image
    file is looked for."""
    if not isinstance(row, dict):
        return  # _normalise names it
    if row.get("image") or row.get("images"):
        raise ChatDataError("has an image; the language model trains on text only")
    messages = row.get("messages")
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image" for p in content):
            raise ChatDataError(f"message {index} has an image part; the language model trains on text only")


def _from_messages(messages, images: list, folder: Path) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ChatDataError("'messages' must be a non-empty list")
    out = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise ChatDataError(f"a message needs a role of system, user or assistant; got {str(message)[:60]}")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ChatDataError(f"a {message['role']} message's content must be a string or a list of parts")
        out.append({"role": message["role"], "content": [_part(p, images, folder) for p in parts]})
    if images:
        raise ChatDataError(f"lists {len(images)} more image(s) in 'images' than image parts use")
    return out


def _part(part, images: list, folder: Path) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "image":
        name = part.get("path") or (part.get("image") if isinstance(part.get("image"), str) else None)
        if name is None:
            if not images:
                raise ChatDataError("has an image part with no 'path' and no entry left in 'images'")
            name = images.pop(0)
        return {"type": "image", "path": _existing(name, folder)}
    raise ChatDataError(f"a content part must be {{'type': 'text', 'text': ...}} or {{'type': 'image', "
                        f"'path': ...}}; got {str(part)[:60]}")


def _from_llava(row: dict, folder: Path) -> list[dict]:
    images = row.get("images") if row.get("images") is not None else row.get("image")
    images = [] if images is None else [images] if isinstance(images, str) else list(images)
    turns = row["conversations"]
    if not isinstance(turns, list) or not turns:
        raise ChatDataError("'conversations' must be a non-empty list")
    marks = sum(str(t.get("value", "")).count(IMAGE_TOKEN) for t in turns if isinstance(t, dict))
    if images and marks == 0:  # LLaVA's convention: the image goes before the first human text
        turns = [dict(turns[0], value=IMAGE_TOKEN + "\n" + str(turns[0].get("value", "")))] + turns[1:]
        marks = 1
    if marks != len(images):
        raise ChatDataError(f"has {marks} {IMAGE_TOKEN} mark(s) but {len(images)} image(s); give one image per "
                            f"mark, in order")
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise ChatDataError(f"'system' must be a string; got {str(system)[:60]}")
    return ([{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []) + \
        [_llava_turn(turn, images, folder) for turn in turns]


def _llava_turn(turn, images: list, folder: Path) -> dict:
    if not isinstance(turn, dict) or turn.get("from") not in LLAVA_ROLES or not isinstance(turn.get("value"), str):
        raise ChatDataError(f"a turn needs 'from' (human or gpt) and a string 'value'; got {str(turn)[:60]}")
    role = LLAVA_ROLES[turn["from"]]
    pieces = turn["value"].split(IMAGE_TOKEN)
    if role == "assistant" and len(pieces) > 1:
        raise ChatDataError("LLaVA JSON cannot give an image the assistant draws; use messages JSONL for that")
    content = []
    for index, piece in enumerate(pieces):
        if index:
            content.append({"type": "image", "path": _existing(images.pop(0), folder)})
        piece = piece.strip("\n") if role == "user" else piece
        if piece:
            content.append({"type": "text", "text": piece})
    return {"role": role, "content": content}


def _existing(name, folder: Path) -> Path:
    if not isinstance(name, str) or not name:
        raise ChatDataError(f"an image must be named by a file path; got {name!r}")
    path = Path(name) if Path(name).is_absolute() else folder / name
    if not path.is_file():
        raise ChatDataError(f"image {path} does not exist (pass --image-folder if paths are relative to another "
                            "folder)")
    return path


# ---- images: computed once per file, cached ------------------------------------------------------------

def file_key(path: Path) -> str:
    """What identifies an image file's content cheaply: its resolved path, size and modification time."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def cached_per_file(paths: list[Path], compute, cache_file: Path | None, what: str,
                    batch_size: int = 256) -> tuple[Tensor, dict[Path, int], dict[Path, str]]:
    """(table, row of each path in it, unreadable path → why). `compute` maps PIL images → one tensor row each.

    Rows already in `cache_file` are reused; new rows are appended and the file rewritten atomically.
    """
    table, index = _read_cache(cache_file)
    rows: dict[Path, int] = {}
    missing = []
    for path in paths:
        key = file_key(path)
        if key in index:
            rows[path] = index[key]
        else:
            missing.append(path)
    failed: dict[Path, str] = {}
    new_rows = []
    for start in tqdm(range(0, len(missing), batch_size), desc=what, unit="batch", disable=not missing):
        images, batch = [], []
        for path in missing[start:start + batch_size]:
            try:  # the decoder the assistant uses, so training sees each image as the chat will
                images.append(load_image(path))
                batch.append(path)
            except (OSError, ValueError) as error:
                failed[path] = f"image {path} cannot be read ({error})"
        if images:
            new_rows.append(compute(images).cpu())
            for path in batch:
                index[file_key(path)] = rows[path] = len(index)
    if new_rows:
        table = torch.cat([t for t in [table] if t is not None] + new_rows)
        if cache_file is not None:
            _write_cache(cache_file, table, index)
    return table, rows, failed


def _read_cache(cache_file: Path | None) -> tuple[Tensor | None, dict[str, int]]:
    if cache_file is None or not cache_file.is_file():
        return None, {}
    with safe_open(str(cache_file), "pt") as f:
        keys = json.loads(f.metadata()["keys"])
        table = f.get_tensor("table")
    return table, {key: i for i, key in enumerate(keys)}


def _write_cache(cache_file: Path, table: Tensor, index: dict[str, int]) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(index, key=index.get)
    with atomic_save(str(cache_file)) as file:
        file.write(safetensors_bytes({"table": table.contiguous()}, metadata={"keys": json.dumps(keys)}))


def fingerprint(*parts) -> str:
    """A short hash of a model's identity: config strings and the bytes of its weight files."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path) and part.is_file():
            digest.update(part.read_bytes())
        else:
            digest.update(str(part).encode())
    return digest.hexdigest()[:16]


def vision_fingerprint(model) -> str:
    config = model.config.vision
    local = config.model_name.removeprefix("local-dir:") if config.model_name.startswith("local-dir:") else None
    weights = sorted(Path(local).glob("*.safetensors")) if local else []
    return fingerprint(json.dumps(config.to_dict(), sort_keys=True), *weights)


def vq_fingerprint(model) -> str:
    return fingerprint(json.dumps(model.vq.config.to_dict(), sort_keys=True), Path(model.config.vq) / "model.safetensors")


# ---- tokenizing -------------------------------------------------------------------------------------------

@dataclass
class Example:
    input_ids: Tensor  # (T,)
    labels: Tensor  # (T,) IGNORE_INDEX where not supervised
    image_rows: list[int]  # rows of the feature table, in slot order
    chat: int  # index of the Chat it came from


@dataclass
class ChatData:
    examples: list[Example]
    features: Tensor | None  # (M, N, D) vision features of every input image
    bad: list[BadRow]
    total: int  # rows read, good and bad

    def raise_or_report(self, skip_bad: bool) -> None:
        if not self.bad:
            return
        listing = "\n".join(f"  {b}" for b in self.bad[:SHOWN_BAD_ROWS])
        more = f"\n  ... and {len(self.bad) - SHOWN_BAD_ROWS} more" if len(self.bad) > SHOWN_BAD_ROWS else ""
        summary = f"{len(self.bad)} of {self.total} chat rows are bad:\n{listing}{more}"
        if not skip_bad:
            raise ChatDataError(f"{summary}\nfix them, or pass --skip-bad to train on the other rows")
        print(f"skipping {summary}", file=sys.stderr)
        if not self.examples:
            raise ChatDataError("no good chat rows are left to train on")


def tokenize_chats(chats: Chats, model, max_length: int, cache_dir: Path | None = None) -> ChatData:
    """Token ids and labels for every chat, vision features for input images, VQ codes for drawn ones."""
    inputs, drawn = _image_paths(chats)
    cache = (lambda name: cache_dir / name) if cache_dir is not None else (lambda name: None)
    features, feature_rows, failed = cached_per_file(
        sorted(inputs), lambda images: vision_features(model, images),
        cache(f"vision-{vision_fingerprint(model)}.safetensors"), "vision features")
    codes, code_rows, failed_drawn = cached_per_file(
        sorted(drawn), lambda images: _vq_codes(model, images),
        cache(f"vq-codes-{vq_fingerprint(model)}.safetensors"), "VQ codes")
    failed |= failed_drawn
    examples, bad = [], list(chats.bad)
    for number, chat in enumerate(chats.chats):
        try:
            examples.append(_tokenize(chat, number, model, max_length, feature_rows, codes, code_rows, failed))
        except (ChatDataError, TemplateError) as error:
            bad.append(BadRow(chat.source.file, chat.source.row, str(error)))
    bad.sort(key=lambda b: (b.file, b.row))
    return ChatData(examples, features, bad, len(chats.chats) + len(chats.bad))


def _image_paths(chats: Chats) -> tuple[set[Path], set[Path]]:
    inputs, drawn = set(), set()
    for chat in chats.chats:
        for message in chat.messages:
            for part in message["content"]:
                if part["type"] == "image":
                    (drawn if message["role"] == "assistant" else inputs).add(part["path"])
    return inputs, drawn


@torch.no_grad()
def vision_features(model, images: list[Image.Image]) -> Tensor:
    pixels = torch.stack([model.vision_tower.preprocess(image) for image in images])
    return model.vision_tower(pixels).float()  # (B, N, D)


@torch.no_grad()
def _vq_codes(model, images: list[Image.Image]) -> Tensor:
    pixels = to_tensor(images, model.vq.config.image_size)
    return model.vq.encode(pixels).flatten(1).to(torch.int32)  # (B, h·w)


def _tokenize(chat: Chat, number: int, model, max_length: int, feature_rows: dict, codes: Tensor, code_rows: dict,
              failed: dict) -> Example:
    messages = []
    for message in chat.messages:
        content = []
        for part in message["content"]:
            if part["type"] == "image" and part["path"] in failed:
                raise ChatDataError(failed[part["path"]])
            if part["type"] == "image" and message["role"] == "assistant":
                part = {"type": "image", "codes": codes[code_rows[part["path"]]].tolist()}
            elif part["type"] == "image":
                part = {"type": "image", "image": feature_rows[part["path"]]}
            content.append(part)
        messages.append({"role": message["role"], "content": content})
    return Example(*_rendered(messages, model.tokenizer, model.layout, max_length), number)


def _rendered(messages: list[dict], tokenizer, layout: ImageLayout, max_length: int,
              every_token: bool = False) -> tuple[Tensor, Tensor, list[int]]:
    """render_chat's (ids, labels, image rows); every_token: the labels are the ids. ChatDataError when the
    chat is too long or has nothing to learn from."""
    rendered = render_chat(messages, tokenizer, layout)
    if len(rendered.input_ids) > max_length:
        raise ChatDataError(f"is {len(rendered.input_ids)} tokens long, more than --max-length {max_length}")
    labels = rendered.input_ids if every_token else rendered.labels
    if not (labels != IGNORE_INDEX).any():
        raise ChatDataError("has no assistant turn to learn from")
    return rendered.input_ids, labels, list(rendered.images)


def text_layout(tokenizer) -> ImageLayout:
    """Image ids past a text-only tokenizer's vocabulary: text-only chats never use them, and any use would fail
    loudly."""
    n = len(tokenizer)
    return ImageLayout(image_id=n, slots_per_image=1, boi_id=n + 1, eoi_id=n + 2, code_start=n + 3,
                       codebook_size=1, tokens_per_image=1)


def tokenize_text_chats(chats: Chats, tokenizer, max_length: int, supervise: str = "assistant") -> ChatData:
    """Token ids and labels of text-only chats, rendered with render_chat as the assistant renders them.

    supervise="all" trains on every token (plain pretraining on chat-formatted text); "assistant" only on the
    replies (render_chat's labels).
    """
    layout, examples, bad = text_layout(tokenizer), [], list(chats.bad)
    for number, chat in enumerate(tqdm(chats.chats, desc="tokenizing", unit="chat", leave=False, mininterval=1.0)):
        try:
            ids, labels, _ = _rendered(chat.messages, tokenizer, layout, max_length, every_token=supervise == "all")
        except (ChatDataError, TemplateError) as error:
            bad.append(BadRow(chat.source.file, chat.source.row, str(error)))
            continue
        examples.append(Example(ids, labels, [], number))
    bad.sort(key=lambda b: (b.file, b.row))
    return ChatData(examples, None, bad, len(chats.chats) + len(chats.bad))


# ---- batching ---------------------------------------------------------------------------------------------

def collate(examples: list[Example], pad_id: int, features: Tensor | None) -> dict[str, Tensor | None]:
    """Right-padded ids, attention mask and labels, and the vision features of the batch's images in slot order.

    input_ids, attention_mask, labels: (B, T); vision_features: (n, N, D) or None when no example has an image.
    """
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[i, :n], labels[i, :n], attention_mask[i, :n] = example.input_ids, example.labels, 1
    rows = [r for e in examples for r in e.image_rows]
    vision = features[torch.tensor(rows)] if rows else None
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "vision_features": vision}


def predicted_tokens(examples: list[Example]) -> int:
    """How many next-token targets the examples have (a sequence's first token is never one)."""
    return sum(int((e.labels[1:] != IGNORE_INDEX).sum()) for e in examples)


@torch.no_grad()
def held_out_loss(examples: list[Example], batch_size: int, pad_id: int, features: Tensor | None,
                  loss_of: Callable[[dict, int], Tensor]) -> float:
    """Mean next-token cross-entropy per supervised token over `examples`, in batches of `batch_size`.

    loss_of(batch, predicted) is the model's mean loss over a collated batch's `predicted` targets.
    """
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        part = examples[start:start + batch_size]
        predicted = predicted_tokens(part)
        total += float(loss_of(collate(part, pad_id, features), predicted)) * predicted
        count += predicted
    return total / max(1, count)
