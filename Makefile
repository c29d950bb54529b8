# The two set-up commands a newcomer needs are `make demo` and `make test`;
# both create the virtual environment when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint ui-assets bench bench-compare soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The web UI's front-end libraries, installed by npm from ui/package-lock.json and copied into
# the package (git-ignored); rebuilt only when the lockfile or ui/build.py changes.
VENDOR := src/anabranch/server/ui/static/vendor

ui-assets: $(VENDOR)/.built

$(VENDOR)/.built: ui/package.json ui/package-lock.json ui/build.py
	$(PYTHON) ui/build.py

demo: $(STAMP) ui-assets
	$(BIN)/python examples/fan_out.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/mypy

# The whole suite on the embedded store, then the engine, concurrency, seed and doc tests
# again through a real server process on SQLite and on PostgreSQL.
SERVER_SUITES := tests/engine tests/concurrency tests/seeds tests/docs

test: lint ui-assets
	$(BIN)/python -m pytest -n 3 tests
	$(BIN)/python -m pytest -n 3 --transport server-sqlite $(SERVER_SUITES)
	$(BIN)/python -m pytest -n 3 --transport server-postgresql $(SERVER_SUITES)

# The benchmarks, then the 30-minute soak (server and workers killed under load); `make soak`
# runs the soak alone, SOAK_ARGS="--minutes 3" a short one.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)

bench-compare: $(STAMP)
	$(BIN)/python benchmarks/compare.py

soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache \
		ui/node_modules $(VENDOR) tests/ui/screenshots
