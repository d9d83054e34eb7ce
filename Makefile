# Escalations: `make run` starts a local Temporal dev server, the worker and a few demo cases.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Stamp of the last install; redone when pyproject.toml changes (or the venv is recreated).
INSTALLED := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test worker schemas clean-data chaos lint format typecheck check

help:
	@echo "make run         dev server (UI on http://localhost:8233) + worker + demo cases; data in ./data"
	@echo "                 DEMO=0 skips the demo cases; TEMPORAL_ADDRESS=host:port runs the worker only"
	@echo "make test        run the test suite"
	@echo "make check       the gates CI runs before the tests: make lint (ruff) and make typecheck (mypy)"
	@echo "make format      format the code and fix what ruff can fix safely"
	@echo "make worker      run only the worker against TEMPORAL_ADDRESS (default localhost:7233)"
	@echo "make chaos       fault-injection run: 200 cases, worker and server killed, every history replayed (~10 min)"
	@echo "make schemas     regenerate the contract's JSON Schemas in schemas/ from the models"
	@echo "make clean-data  delete ./data (dev server state, outbox, events)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev,test]'
	@touch $@

run: $(INSTALLED)
	$(BIN)/python -m escalation.dev.devrun

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

worker: $(INSTALLED)
	$(BIN)/python -m worker

chaos: $(INSTALLED)
	$(BIN)/python -m bench.chaos

schemas: $(INSTALLED)
	$(BIN)/python -m escalation.client.schemas

clean-data:
	rm -rf data
