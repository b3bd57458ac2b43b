# Two commands on a fresh machine: `make run` (the main job) and `make test` (the whole suite).
# Each creates the virtual environment it needs on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The shared benchmark data beside the checkout, unless the caller points elsewhere.
export SEMINAS_DATA_DIR ?= $(abspath ../shared/data)
export RAY_AUTH_MODE ?= disabled
# The main job on its embedded default (override with ARGS="...", e.g. ARGS="--task nasbench").
ARGS ?= --task tts

.PHONY: venv run test bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) experiments/run.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
