# Two commands on a fresh machine: `make demo` and `make test`.
# TORCH_SPEC is overridable: on CPU-only machines torch==2.13.0 resolves to the
# CPU wheel; an unpinned torch pulls a multi-GB CUDA build. On a GPU machine:
#   make test TORCH_SPEC='torch'   (or any CUDA-capable spec)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# pytest-xdist workers (the suite's tests are independent of each other); 0 runs in one process
PYTEST_WORKERS ?= 2
PY := $(VENV)/bin/python
DEV_STAMP := $(VENV)/.modpact-dev

LAYOUT := build/layout

# The oldest torch modpact supports (pyproject: torch>=2.11). `make test-matrix` runs the tests on it
# too. Its torch (a CUDA build of ~3 GB, which also runs on a CPU) and the dev extra live in a venv
# cached outside the clone, built once and reused by every clone; each clone installs modpact itself
# into a small venv of its own (build/) that sees the cached one's packages through a .pth file.
OLDEST_TORCH ?= 2.11.0
MATRIX_CACHE ?= $(HOME)/.cache/modpact
MATRIX_BASE := $(MATRIX_CACHE)/venv-torch-$(OLDEST_TORCH)
MATRIX_VENV := build/venv-torch-$(OLDEST_TORCH)
MATRIX_PY := $(MATRIX_VENV)/bin/python
MATRIX_BASE_STAMP := $(MATRIX_BASE)/.modpact-base
MATRIX_STAMP := $(MATRIX_VENV)/.modpact-dev

.PHONY: test test-matrix lint demo bench clean venv matrix-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(DEV_STAMP)

test: $(DEV_STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# the cached venv: the oldest torch, then the dev extra's other packages (installing the project pulls
# them in without replacing that torch, which meets the floor); modpact itself is uninstalled again,
# since each clone installs its own. The first build downloads about 3 GB.
$(MATRIX_BASE_STAMP):
	$(PYTHON) -m venv $(MATRIX_BASE)
	$(MATRIX_BASE)/bin/python -m pip install --quiet --upgrade pip
	$(MATRIX_BASE)/bin/python -m pip install --quiet "torch==$(OLDEST_TORCH)"
	$(MATRIX_BASE)/bin/python -m pip install --quiet ".[dev]"
	$(MATRIX_BASE)/bin/python -m pip uninstall --quiet --yes modpact
	$(MATRIX_BASE)/bin/python -c "import torch; assert torch.__version__.split('+')[0] == '$(OLDEST_TORCH)', torch.__version__"
	touch $@

# this clone's venv for the oldest torch: the cached venv's packages (a .pth file that adds its
# site-packages), then modpact, editable, and whatever the dev extra needs that the cached venv lacks
$(MATRIX_STAMP): pyproject.toml $(MATRIX_BASE_STAMP)
	rm -rf $(MATRIX_VENV)
	$(PYTHON) -m venv $(MATRIX_VENV)
	$(MATRIX_BASE)/bin/python -c "import site; print('import site; site.addsitedir(%r)' % site.getsitepackages()[0])" \
		> "$$($(MATRIX_PY) -c 'import site; print(site.getsitepackages()[0])')/modpact-oldest-torch.pth"
	$(MATRIX_PY) -m pip install --quiet -e ".[dev]"
	$(MATRIX_PY) -c "import torch; assert torch.__version__.split('+')[0] == '$(OLDEST_TORCH)', torch.__version__"
	touch $@

matrix-venv: $(MATRIX_STAMP)

# The tests on the oldest supported torch (CI runs it after `make test`): MATRIX_TESTS, by default
# the whole suite.
MATRIX_TESTS ?=
test-matrix: $(MATRIX_STAMP)
	$(MATRIX_PY) -m pytest -n $(PYTEST_WORKERS) $(MATRIX_TESTS) $(PYTEST_ARGS)

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
