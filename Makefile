# Two commands on a fresh machine: `make run` (the main job) and `make test` (the whole suite).
# Each creates the virtual environment it needs on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The shared benchmark data beside the checkout, unless the caller points elsewhere.
export SEMINAS_DATA_DIR ?= $(abspath ../shared/data)
# The main job on its embedded default (override with ARGS="...", e.g. ARGS="--task nasbench").
ARGS ?= --task tts

.PHONY: venv run test bench-efficiency bench-predictor bench-evidence clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev]'
	$(PY) -m seminas_ray.tasks.imagenet.fashion_mnist --fetch
	touch $(STAMP)

run: $(STAMP)
	$(PY) experiments/run.py $(ARGS)

# The layer contracts (pyproject.toml [tool.importlinter]) first: a broken layer fails the suite.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

# The evidence benchmarks of docs/results.md (BENCH_ARGS adds options, e.g. BENCH_ARGS="--seeds 3").
bench-efficiency: $(STAMP)
	$(PY) benchmarks/search_efficiency.py --budget 1000 --checkpoints 100,300,1000 --out bench_out/efficiency_nb101 $(BENCH_ARGS)

bench-predictor: $(STAMP)
	$(PY) benchmarks/predictor_quality.py --out bench_out/predictor_nb101 $(BENCH_ARGS)

# Both benchmarks on NB101 and on NB201's three datasets (hours on 2 cores; see docs/results.md).
bench-evidence: bench-efficiency bench-predictor
	for ds in cifar10 cifar100 imagenet; do \
	  $(PY) benchmarks/search_efficiency.py --benchmark nb201 --dataset $$ds --budget 1000 --checkpoints 100,300,1000 --out bench_out/efficiency_nb201_$$ds $(BENCH_ARGS) && \
	  $(PY) benchmarks/predictor_quality.py --benchmark nb201 --dataset $$ds --out bench_out/predictor_nb201_$$ds $(BENCH_ARGS) || exit 1; \
	done

clean-venv:
	rm -rf $(VENV)
