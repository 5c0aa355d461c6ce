# `make train` and `make test` set up .venv on first use, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: setup train test lint clean

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
	OMP_NUM_THREADS=1 $(BIN)/pytest -n auto $(ARGS)

lint: setup
	$(BIN)/ruff check src tests scripts train.py

clean:
	rm -rf $(VENV) .pytest_cache
