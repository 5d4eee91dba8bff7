# The one test command (README): `make test`. It installs what is needed into .venv on a fresh clone,
# makes sure PostgreSQL and Redis run, and runs the whole suite against them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Dependencies come only from the hash-pinned locks (README "Dependencies"; `make lock` regenerates them):
# pip and setuptools first (fixed, advisory-free versions, replacing the venv's bundled setuptools), then
# everything else; the project itself goes on top without touching dependencies. Build isolation is off so
# that the editable install is built with the locked setuptools, not with whatever the index serves then.
# `pip check` catches a pyproject.toml dependency that the locks do not have yet.
LOCKS := requirements-bootstrap.lock requirements-dev.lock

# The suite runs in two pytest processes (pytest-xdist), a test file whole in one of them: most tests wait
# on workers, simulators and the chaos suite's outages rather than compute, so the two overlap. Each
# process has its own databases and redis-server (tests/conftest.py), as two runs at once do.
# `make test TEST_PROCESSES=0` runs it in one process.
TEST_PROCESSES ?= 2

.PHONY: install test lint demo bench lock audit

$(STAMP): pyproject.toml $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-bootstrap.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

lock:
	./scripts/lock.sh

audit: $(STAMP)
	./scripts/audit.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: $(STAMP)
	./scripts/services.sh
	./scripts/browser.sh
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/teamsconnect demo

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py
