# jitsudo bot: `make run` starts the bot, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck contracts pytest bench live clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	JITSUDO_LOG_FORMAT=$${JITSUDO_LOG_FORMAT:-console} $(BIN)/jitsudo-bot serve

lint: $(STAMP)
	$(BIN)/ruff check bot tests
	$(BIN)/ruff format --check bot tests

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck contracts pytest

bench: $(STAMP)
	$(BIN)/python -m tests.bench

live: $(STAMP)
	$(BIN)/pytest -q tests/live

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
