# Escalations: `make run` starts a local Temporal dev server, the worker and a few demo cases.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Stamp of the last install; redone when pyproject.toml or uv.lock changes (or the venv is recreated).
INSTALLED := $(VENV)/.installed
# uv installs the versions pinned in uv.lock, in seconds: the uv on PATH, else one that pip fetches from PyPI
# into the venv. `make UV=` (or no uv to be had) installs with pip, which resolves the newest versions
# pyproject.toml allows instead of the pinned ones.
UV ?= $(or $(shell command -v uv 2>/dev/null),$(BIN)/uv)

.DEFAULT_GOAL := help
.PHONY: help run simulate test test-fast worker schemas clean-data chaos bench lint format typecheck check lock

help:
	@echo "make run         dev server (UI on http://localhost:8233) + worker + demo cases + 300 simulated ones; data in ./data"
	@echo "                 DEMO=0 skips the demo cases; TEMPORAL_ADDRESS=host:port runs the worker only"
	@echo "make simulate    drive CASES=300 more simulated cases (SEED=2) through a running make run (~6 min)"
	@echo "make test        run the test suite (starts its own Temporal servers)"
	@echo "make test-fast   only the tests that need no server and start no process (under a minute)"
	@echo "make check       the gates CI runs before the tests: make lint (ruff) and make typecheck (mypy)"
	@echo "make format      format the code and fix what ruff can fix safely"
	@echo "make worker      run only the worker against TEMPORAL_ADDRESS (default localhost:7233)"
	@echo "make bench       performance figures against same-run baselines, quick sizes (<10 min); BENCH=--full: the large ones"
	@echo "make chaos       fault-injection run: 200 cases, worker and server killed, every history replayed (~10 min)"
	@echo "make schemas     regenerate the contract's JSON Schemas in schemas/ from the models"
	@echo "make clean-data  delete ./data (dev server state, outbox, events)"
	@echo "make lock        update uv.lock after changing dependencies in pyproject.toml (commit both)"

$(BIN)/python:
	@if [ -n '$(UV)' ] && command -v '$(UV)' >/dev/null; then \
		echo "$(UV) venv --seed"; '$(UV)' venv --seed --python $(PYTHON) $(VENV); \
	else \
		echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); \
	fi

$(INSTALLED): pyproject.toml $(wildcard uv.lock) | $(BIN)/python
	@uv='$(UV)'; \
	if [ -n "$$uv" ] && ! command -v "$$uv" >/dev/null; then \
		$(BIN)/pip install --quiet 'uv>=0.9' && uv=$(BIN)/uv || uv=; \
	fi; \
	if [ -n "$$uv" ]; then \
		echo "$$uv sync --inexact --extra dev --extra test --extra insight"; \
		UV_PROJECT_ENVIRONMENT=$(VENV) "$$uv" sync --inexact --extra dev --extra test --extra insight; \
	else \
		echo "$(BIN)/pip install -e '.[dev,test,insight]'"; \
		$(BIN)/pip install -e '.[dev,test,insight]'; \
	fi
	@touch $@

run: $(INSTALLED)
	$(BIN)/python -m escalation.dev.devrun

# make run drives seed 1 on a fresh data directory; another seed opens other cases (an existing case id is skipped).
CASES ?= 300
SEED ?= 2
simulate: $(INSTALLED)
	$(BIN)/escalations simulate $(CASES) --seed $(SEED)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(INSTALLED)
	$(BIN)/mypy

check: lint typecheck

test: $(INSTALLED)
	$(BIN)/python -m pytest

test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -m "not server and not slow"

worker: $(INSTALLED)
	$(BIN)/python -m worker

chaos: $(INSTALLED)
	$(BIN)/python -m bench.chaos

bench: $(INSTALLED)
	$(BIN)/python -m bench $(BENCH)

schemas: $(INSTALLED)
	$(BIN)/python -m escalation.client.schemas

clean-data:
	rm -rf data

lock: | $(BIN)/python
	@uv='$(or $(UV),$(BIN)/uv)'; command -v "$$uv" >/dev/null || { $(BIN)/pip install --quiet 'uv>=0.9' && uv=$(BIN)/uv; }; \
	echo "$$uv lock"; "$$uv" lock
