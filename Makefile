# Two commands for a new machine:   make demo   (set up + run the summarization demo)   make test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TINY_MODELS := .cache/tiny-models
DEMO_OUTPUT := outputs/demo-summarization
# Tests and the demo never touch the network: local paths only, hub lookups fail fast.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test check style fix-copies tiny-models clean

# The venv is rebuilt only when requirements.txt changes (the stamp file is newer otherwise).
$(VENV)/.setup-done: requirements.txt utils/install_nltk_data.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: it is a CPU wheel on disk; any looser pin pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) utils/install_nltk_data.py
	touch $@

setup: $(VENV)/.setup-done

tiny-models: setup
	$(PY) utils/create_tiny_models.py --output_dir $(TINY_MODELS)

demo: tiny-models
	$(PY) examples/pytorch/summarization/run_summarization.py examples/pytorch/summarization/demo.yaml
	$(PY) utils/show_results.py $(DEMO_OUTPUT)

test: setup check
	$(PY) -m pytest -n 2 --durations=15 tests

# Lint, formatting, and the `# Copied from` blocks that keep self-contained scripts in sync.
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) utils/check_copies.py

fix-copies: setup
	$(PY) utils/check_copies.py --fix

style: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(TINY_MODELS) outputs .pytest_cache
