"""Per-machine answers kept on disk (assistant/machine.py): measured once, read back, never a crash on a bad file."""
import json

from assistant.machine import machine_key, remembered


def test_an_answer_is_measured_once_then_read_back(monkeypatch, tmp_path):
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    calls = []
    assert remembered("facts", "k", lambda: calls.append(1) or {"speed": 2}) == {"speed": 2}
    assert remembered("facts", "k", lambda: calls.append(1) or {"speed": 3}) == {"speed": 2}
    assert remembered("facts", "other", lambda: calls.append(1) or 5) == 5
    assert len(calls) == 2
    assert json.loads((tmp_path / "facts.json").read_text()) == {"k": {"speed": 2}, "other": 5}


def test_a_damaged_file_is_measured_again_and_rewritten(monkeypatch, tmp_path):
    monkeypatch.setenv("GLYPH_CACHE", str(tmp_path))
    for damaged in ("{not json", "[1, 2]", ""):
        (tmp_path / "facts.json").write_text(damaged)
        assert remembered("facts", "k", lambda: "fresh") == "fresh"
        assert json.loads((tmp_path / "facts.json").read_text()) == {"k": "fresh"}


def test_an_unwritable_cache_only_means_measuring_again(monkeypatch, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("GLYPH_CACHE", str(blocker / "cache"))  # its parent is a file: nothing can be written
    assert remembered("facts", "k", lambda: 7) == 7


def test_the_key_names_the_cpu_and_the_details():
    amd = ({"avx2"}, "AMD EPYC")
    assert machine_key(1, flags_and_model=amd) == machine_key(1, flags_and_model=amd)
    assert machine_key(1, flags_and_model=amd) != machine_key(2, flags_and_model=amd)
    assert machine_key(1, flags_and_model=amd) != machine_key(1, flags_and_model=({"avx2", "avx512_bf16"}, "AMD EPYC"))
