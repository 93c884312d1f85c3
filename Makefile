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

.PHONY: test demo bench clean venv

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

demo: $(DEV_STAMP)
	$(VENV)/bin/modpact demo

bench: $(DEV_STAMP)
	$(PY) bench/contracts_overhead.py
	$(PY) bench/monitor_overhead.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
