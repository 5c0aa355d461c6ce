# `make train` and `make test` set up .venv on first use, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup train test lint docs docs-build clean

setup: $(VENV)/.installed

# Reinstall when the dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

train: setup
	$(BIN)/python train.py $(ARGS)

# One test process per core, each training with one thread: most tests start Python and
# train a little, so two processes keep both cores busy where one leaves them idle in between
# (2 cores: 9.1 min against 14.9).
test: setup
	OMP_NUM_THREADS=1 $(BIN)/pytest -n auto --durations=30 $(ARGS)

lint: setup
	$(BIN)/ruff check src tests scripts benchmarks train.py

# The documentation site at http://127.0.0.1:8000, rebuilt as its pages change.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# What CI builds: a broken link or anchor fails it.
docs-build: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache site
