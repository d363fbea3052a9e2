# Two set-up commands on a fresh machine: `make demo` and `make test` (each creates .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv monitoring demo jobs test test-fast bench bench-smoke lint clean

venv: $(STAMP)

# torch 2.13.0 first, from this machine's local CPU wheel: every later requirement admits it, so
# pip never pulls a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian's Prometheus (and promtool) for `consortium poc up --monitoring` and the monitoring tests:
# installed with apt-get where this machine allows it (root, apt-get present), otherwise explained.
monitoring:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then \
		echo "prometheus: $$(command -v prometheus)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -q prometheus || (apt-get update -q && apt-get install -y -q prometheus)) >/dev/null \
		&& echo "prometheus: installed $$(prometheus --version 2>&1 | head -1)"; \
	else \
		echo "prometheus is not installed and apt-get cannot install it here (needs root on Debian/Ubuntu):"; \
		echo "  sudo apt-get install -y prometheus   (or put prometheus and promtool 2.x on PATH)"; \
		echo "  the monitoring tests that need it fail without it"; exit 1; \
	fi

demo: venv
	$(BIN)/consortium demo

# jobs/ is the export of the recipes in custom/consortium/recipes/ (a test fails when a folder differs)
jobs: venv
	$(BIN)/consortium job export

# the whole suite (serial, one shared POC); the benchmarks' smoke mode is `make bench-smoke`
test: venv monitoring
	$(BIN)/python -m pytest

# unit tests only (no FLARE simulator, no POC): quick feedback while changing the seams
test-fast: venv
	$(BIN)/python -m pytest -m "not poc and not simulator and not bench"

bench: venv
	$(BIN)/python benchmarks/run_all.py

# every benchmark at its smallest size (--smoke), results in a temporary folder (never benchmarks/results/)
bench-smoke: venv
	$(BIN)/python -m pytest -m bench tests/benchmarks

lint: venv
	$(BIN)/ruff check custom tests benchmarks

# generated state only: benchmarks/results/ holds committed results
clean:
	rm -rf results poc_workspace/state
