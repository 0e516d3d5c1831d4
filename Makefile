# optbench: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OPTBENCH_CACHE ?= $(CURDIR)/.cache
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export TF_CPP_MIN_LOG_LEVEL ?= 2

RUN_ARGS ?=
TEST_ARGS ?=
TEST_WORKERS ?= 2
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run lint test test-fast soak bench lock clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# The locked stack is fetched once, as wheels kept in the cache (optbench/images.py's WHEELHOUSE), and installed
# from there; the images install it from there too instead of fetching it again.
WHEELS := $(OPTBENCH_CACHE)/wheels
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==26.3 wheel
	$(PY) -m pip wheel -q -r requirements.lock -w $(WHEELS)
	$(PY) -m pip install -q --no-index --find-links $(WHEELS) -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

SYSTEM_STAMP := $(VENV)/.system-deps
# Debian packages the tests use: chromium (the HTML report), dataset-fashion-mnist (the genuine full-size
# Fashion-MNIST, the one full-size dataset available offline).
SYSTEM_PACKAGES := chromium dataset-fashion-mnist
$(SYSTEM_STAMP): $(STAMP)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "the tests need Debian's" $$missing": apt-get install" $$missing; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	touch $(SYSTEM_STAMP)

install: $(STAMP) ## Create .venv with the pinned stack and the project (once; re-running is a no-op)

run: $(STAMP) ## Compare the article's six optimizers on the CNN, 10 epochs (RUN_ARGS="--epochs 2" to change)
	$(VENV)/bin/optbench run $(RUN_ARGS)

lint: $(STAMP) ## Lint and check the formatting with ruff, type-check with mypy (pyproject.toml); `ruff format .` formats
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# TEST_WORKERS test processes, each test file in one of them (its fixtures are built once); a pipeline run keeps
# about one core busy, so two at once use a 2-core machine. Files go out in the order tests/conftest.py gives them
# (xdist would otherwise send the files with the most tests first, and a test of the image would wait for its build).
# Both end with the 20 slowest tests: where the time goes.
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20
test: lint $(SYSTEM_STAMP) ## Lint, then run the whole test suite: pipeline runs, images and the smoke bench included
	$(PYTEST) $(TEST_ARGS)

test-fast: lint $(SYSTEM_STAMP) ## Lint, then run the tests except the end-to-end ones (pipeline runs, images)
	$(PYTEST) -m "not e2e" $(TEST_ARGS)

soak: $(STAMP) ## The soak test at length: ten runs into one folder, pruned after each (`make test` runs three)
	OPTBENCH_SOAK_RUNS=10 $(PY) -m pytest --durations=5 tests/e2e/test_soak.py $(TEST_ARGS)

bench: $(STAMP) ## Measure every stage against its baseline (BENCH_ARGS="--size full" or smoke); JSON in bench/results/
	$(PY) -m optbench.bench.run $(BENCH_ARGS)

lock: ## Re-resolve requirements.lock from pyproject.toml's pins (needs the registries)
	rm -rf /tmp/optbench-lock && $(PYTHON) -m venv /tmp/optbench-lock
	/tmp/optbench-lock/bin/pip install -q '.[test]'
	/tmp/optbench-lock/bin/pip freeze --exclude optbench > requirements.lock

clean: ## Remove .venv, caches and local runs
	rm -rf $(VENV) .cache runs .pytest_cache

-include mk/*.mk
