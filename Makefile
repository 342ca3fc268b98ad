# jitsudo bot: `make run` starts the bot, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck contracts pytest bench live lock clean

# The runtime dependencies are installed at the versions pinned in requirements.lock
# (the ones the container image gets); the dev tools (pytest, kubectl, ...) float.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	JITSUDO_LOG_FORMAT=$${JITSUDO_LOG_FORMAT:-console} $(BIN)/jitsudo-bot serve

# One request from start to end against the test suite's Slack and Kubernetes stand-ins.
.PHONY: demo
demo: $(STAMP)
	$(BIN)/python -m tests.demo

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

# Re-pin the runtime dependencies after changing them in pyproject.toml, then `make install`.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
