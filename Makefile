# Two commands for a newcomer: `make run` (the whole pipeline on demo data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: install run dev test lint typecheck validate emulator bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/o365-assets run

dev: install
	$(BIN)/dagster dev

emulator: install
	$(BIN)/o365-assets emulator

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

validate: install
	$(BIN)/dagster definitions validate

test: lint typecheck validate
	$(BIN)/pytest

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf data .dagster_home/storage .dagster_home/logs .dagster_home/history .dagster_home/schedules
