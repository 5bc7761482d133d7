# coldtier: `make demo` and `make test` set themselves up from nothing but Python and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
.DEFAULT_GOAL := help

.PHONY: help demo test test-azure azurite lint reliability bench dist dist-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[cli]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[test]'
	touch $@ $(VENV)/.demo-installed

# The Azure plugin, a separate distribution, installed only for its own tests (after the core suite).
$(VENV)/.azure-installed: plugins/coldtier-azure/pyproject.toml $(VENV)/.test-installed
	$(PIP) install --quiet -e 'plugins/coldtier-azure[test]'
	touch $@

# Azurite, the Azure Storage emulator, from the npm registry into a local folder (no global install).
AZURITE := build/azurite/node_modules/.bin/azurite-blob
$(AZURITE):
	npm install --prefix build/azurite --no-audit --no-fund --loglevel=error azurite

## help: list the targets
help:
	@grep -E '^## ' Makefile | sed 's/^## /  make /'

## demo: archive the shipped sample into ./demo-archive, list, read one day, verify
demo: $(VENV)/.demo-installed
	$(BIN)/python examples/quickstart.py demo-archive
	@echo "\nnext, the operator CLI (installed by make demo): $(BIN)/coldtier ls demo-archive"

## test: lint, type-check, the whole core suite (without the Azure plugin installed), then the plugin's
test: $(VENV)/.test-installed lint
	@# The core suite never sees the plugin (a separate distribution): removed here, reinstalled for its own run.
	$(PIP) uninstall --quiet --yes coldtier-azure 2>/dev/null || true
	rm -f $(VENV)/.azure-installed
	$(BIN)/python -c "import importlib.util as u; assert u.find_spec('coldtier_azure') is None, 'plugin installed'"
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-azure

## test-azure: the coldtier-azure plugin (plugins/coldtier-azure): lint, types, its suite on Azurite
test-azure: $(VENV)/.azure-installed $(AZURITE)
	cd plugins/coldtier-azure && $(CURDIR)/$(BIN)/python -m ruff check src tests
	cd plugins/coldtier-azure && $(CURDIR)/$(BIN)/python -m mypy
	cd plugins/coldtier-azure && $(CURDIR)/$(BIN)/python -m pytest

## azurite: install Azurite (npm azurite) into build/azurite, if missing
azurite: $(AZURITE)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests
	$(BIN)/mypy

## reliability: the reliability suites alone (model, hostile input, wire faults, crashes), then RELIABILITY.md's figures
reliability: $(VENV)/.test-installed
	$(BIN)/python -m pytest tests -k "reliability or Model or Hostile or WireFaults"
	$(BIN)/python -m tests.reliability_report

## bench: benchmarks against the bare libraries (on demand, not in CI)
bench: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks

## dist: build the sdist and the wheel into dist/
dist: $(VENV)/.test-installed
	rm -rf dist
	$(BIN)/python -m build --outdir dist . >/dev/null
	$(BIN)/python -m build --wheel --outdir dist/plugins plugins/coldtier-azure >/dev/null

## dist-check: install the wheel into a fresh venv, away from the source tree; run the CLI and the quickstart
dist-check: dist
	rm -rf build/dist-check && $(PYTHON) -m venv build/dist-check/venv
	build/dist-check/venv/bin/python -m pip install --quiet "$$(ls dist/*.whl)[cli]"
	cd build/dist-check && venv/bin/coldtier backends
	cd build/dist-check && venv/bin/python -c "import coldtier, sys; assert 'site-packages' in coldtier.__file__, coldtier.__file__"
	cd build/dist-check && venv/bin/python $(CURDIR)/examples/quickstart.py archive
	@# A third-party backend appears only once its distribution is installed.
	cd build/dist-check && ! venv/bin/coldtier backends | grep -E '^az(ure)?://'
	build/dist-check/venv/bin/python -m pip install --quiet "$$(ls dist/plugins/coldtier_azure-*.whl)"
	cd build/dist-check && venv/bin/coldtier backends | grep -E '^az(ure)?://' && \
		test "$$(venv/bin/coldtier backends | grep -cE '^az(ure)?://.*coldtier_azure:AzureStore +ok$$')" = 2

clean:
	rm -rf $(VENV) .venv-pyarrow-old .venv-pyarrow-old.lock demo-archive .pytest_cache .mypy_cache .ruff_cache build dist
