# Two commands on a fresh machine: `make demo` and `make test`.
# TORCH_SPEC is overridable: on CPU-only machines torch==2.13.0 resolves to the
# CPU wheel; an unpinned torch pulls a multi-GB CUDA build. On a GPU machine:
#   make test TORCH_SPEC='torch'   (or any CUDA-capable spec)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
PY := $(VENV)/bin/python
DEV_STAMP := $(VENV)/.modpact-dev

LAYOUT := build/layout

.PHONY: test lint demo bench clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(DEV_STAMP)

test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (lint, then the format check), mypy, then the import contracts; the settings are in pyproject.
# mypy and import-linter find a package by walking its folder, so they run on a view of the installed
# layout (.ci/layout.py), from inside the view: the current folder comes first on sys.path, where the
# checkout's modpact/ would shadow the view. .ci/typecheck.py reports the source files' paths.
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) .ci/typecheck.py
	$(PY) .ci/layout.py $(LAYOUT)
	cd $(LAYOUT) && $(abspath $(VENV))/bin/lint-imports --no-cache $(abspath pyproject.toml)

demo: $(DEV_STAMP)
	$(VENV)/bin/modpact demo

bench: $(DEV_STAMP)
	$(PY) bench/contracts_overhead.py
	$(PY) bench/monitor_overhead.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
