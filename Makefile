# Two set-up commands on a fresh machine: `make demo` and `make test` (each creates .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast bench lint clean

venv: $(STAMP)

# torch 2.13.0 first, from this machine's local CPU wheel: every later requirement admits it, so
# pip never pulls a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/consortium demo

test: venv
	$(BIN)/python -m pytest

# unit tests only (no FLARE simulator, no POC): quick feedback while changing the seams
test-fast: venv
	$(BIN)/python -m pytest -m "not poc and not simulator"

bench: venv
	$(BIN)/python benchmarks/run_all.py

lint: venv
	$(BIN)/ruff check custom tests benchmarks

# generated state only: benchmarks/results/ holds committed results
clean:
	rm -rf results poc_workspace/state
