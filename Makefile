# Two commands for a new machine:   make demo   (set up + run the summarization demo)   make test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TINY_MODELS := .cache/tiny-models
# The Keras twins run in their own venv: transformers 4.57.6 + TensorFlow (transformers 5 has no TF models).
VENV_TF := .venv-tf
PY_TF := $(VENV_TF)/bin/python
TINY_TF_MODELS := .cache/tiny-models-tf
DEMO_OUTPUT := outputs/demo-summarization
# Tests and the demo never touch the network: local paths only, hub lookups fail fast.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test check style fix-copies tiny-models clean setup-tf test-tf tiny-tf-models

# The venv is rebuilt only when requirements.txt changes (the stamp file is newer otherwise).
$(VENV)/.setup-done: requirements.txt utils/install_nltk_data.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: it is a CPU wheel on disk; any looser pin pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) utils/install_nltk_data.py
	touch $@

setup: $(VENV)/.setup-done

# The TF venv, built the same way (rebuilt only when its requirements change).
$(VENV_TF)/.setup-done: examples/tensorflow/requirements.txt utils/install_nltk_data.py
	test -x $(PY_TF) || $(PYTHON) -m venv $(VENV_TF)
	$(PY_TF) -m pip install --quiet -r examples/tensorflow/requirements.txt
	$(PY_TF) utils/install_nltk_data.py
	touch $@

setup-tf: $(VENV_TF)/.setup-done

tiny-tf-models: setup-tf
	$(PY_TF) utils/create_tiny_tf_models.py --output_dir $(TINY_TF_MODELS)

tiny-models: setup
	$(PY) utils/create_tiny_models.py --output_dir $(TINY_MODELS)

demo: tiny-models
	$(PY) examples/pytorch/summarization/run_summarization.py examples/pytorch/summarization/demo.yaml
	$(PY) utils/show_results.py $(DEMO_OUTPUT)

test: setup setup-tf check
	$(PY) -m pytest -n 2 --durations=15 --ignore=tests/tensorflow tests
	$(PY_TF) -m pytest -n 2 --durations=15 tests/tensorflow

# The Keras twins' tests only, in .venv-tf.
test-tf: setup-tf
	$(PY_TF) -m pytest -n 2 --durations=15 tests/tensorflow

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

# Benchmarks, not tests: eval/predict and training speed options side by side (~15 min on 2 idle cores).
.PHONY: bench bench-soak bench-rouge
bench: tiny-models
	$(PY) bench/generation_and_training.py

# SIGKILL a small training run at 20 random moments, rerun it each time, compare the final weights (~20 min).
bench-soak: tiny-models
	nice $(PY) bench/kill_soak.py

# Official ROUGE in pure Python vs the ROUGE-1.5.5 Perl script on See et al.'s 3 x 11,490 CNN/DM outputs (needs
# Perl + Debian's libxml-parser-perl and ../shared beside the clone; ~10 min on 2 idle cores, mostly Perl).
bench-rouge: setup
	$(PY) bench/official_rouge.py

clean:
	rm -rf $(TINY_MODELS) $(TINY_TF_MODELS) outputs .pytest_cache
