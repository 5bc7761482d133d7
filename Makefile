# coldtier: `make demo` and `make test` set themselves up from nothing but Python and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint reliability bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[cli]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[test]'
	touch $@ $(VENV)/.demo-installed

## demo: archive the shipped sample into ./demo-archive, list, read one day, verify
demo: $(VENV)/.demo-installed
	$(BIN)/python examples/quickstart.py demo-archive

## test: lint, type-check, then the whole suite (emulators start inside the run)
test: $(VENV)/.test-installed lint
	$(BIN)/python -m pytest

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests
	$(BIN)/mypy

## reliability: the reliability suite alone (its files, and the shipped model,
## hostile-input and wire-fault suites in each backend's file), then its figures into RELIABILITY.md
reliability: $(VENV)/.test-installed
	$(BIN)/python -m pytest tests -k "reliability or Model or Hostile or WireFaults"
	$(BIN)/python -m tests.reliability_report

## bench: benchmarks against the bare libraries (on demand, not in CI)
bench: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) demo-archive .pytest_cache .mypy_cache .ruff_cache
