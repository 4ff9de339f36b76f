# Everything a user or CI runs; `make help` lists it. The first target that needs Python
# builds .venv from the lock file (the versions the tests passed with).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERIES ?= KXHIGHNY
# CATEGORY="Climate and Weather" instead: every series of the category (SERIES=A,B for
# several). Optional: FROM=YYYY-MM-DD TO=YYYY-MM-DD narrow the events; ARGS= passes anything
# else to extract candles. Zones of series outside the shipped table: KALSHI_SERIES_TZ.
SELECT = $(if $(CATEGORY),--category "$(CATEGORY)",--series $(SERIES))
RANGE := $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO))

.DEFAULT_GOAL := help
.PHONY: help install lock extract load backfill test soak bench demo lint fmt clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements-dev.lock -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## Build .venv: the project (editable) and its dev tools, pinned by requirements-dev.lock

# UPGRADE=1 moves every pin to the newest release the ranges in pyproject.toml allow;
# without it, only what pyproject.toml changed moves.
lock: install ## Rewrite requirements.lock (users) and requirements-dev.lock from pyproject.toml
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra plot --extra s3 $(LOCK_FLAGS) -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o requirements-dev.lock
LOCK_FLAGS = --universal --python-version 3.11 --annotation-style line -q \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

extract: install ## Sync the events of SERIES (or CATEGORY), then archive their candles (FROM= TO= ARGS=)
	$(PY) -m extract events $(SELECT)
	$(PY) -m extract candles $(SELECT) $(RANGE) $(ARGS)

load: install ## Load the archive into the database (ARGS=)
	$(PY) -m load run $(ARGS)

# The loader follows the extractor (load run --follow): each window is loaded once its
# archive is complete, so the backfill takes about extract's own time. The loader stops
# by itself when extract has ended; either one failing fails the target. Both log their
# progress as lines (--no-bar): two bars on one terminal would overwrite each other.
backfill: install ## Sync SERIES or CATEGORY, then extract and load side by side (FROM= TO= ARGS=)
	$(PY) -m extract events $(SELECT)
	$(PY) -m load --no-bar run --follow $(SELECT) & loader=$$!; \
	$(PY) -m extract --no-bar candles $(SELECT) $(RANGE) $(ARGS); extracted=$$?; \
	wait $$loader; loaded=$$?; \
	[ $$extracted -eq 0 ] && [ $$loaded -eq 0 ]

# Four workers on two cores: many tests wait (rate limits, leases, subprocess start-up),
# so their waits overlap; worksteal evens out the long tests. (Not loadgroup: with
# pytest 9.2 it silently ignores xdist_group, pytest-xdist#1386.) TEST_WORKERS=0: serial.
TEST_WORKERS ?= 4
test: install ## The test suite: SQLite and the MariaDB at 127.0.0.1:3306 (no slow tests)
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

soak: install ## The slow survival suite (~5 min): SIGKILLs, a MariaDB restart
	$(PY) -m pytest -q -p no:cacheprovider -m slow

bench: install ## Benchmarks, results in data/bench/ (ARGS=--quick: smaller)
	$(PY) -m tests.bench $(ARGS)

demo: install ## The whole job offline against the simulator, into data/demo/
	$(PY) -m tests.demo $(ARGS)

lint: install ## ruff check, ruff format --check, mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install ## Format the code and apply ruff's safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Never data/raw or a database: only caches, build output and the demo's own folder
# (recognised by the marker the demo writes in it).
clean: ## Remove caches, build output and data/demo/ (keeps .venv and your data)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	if [ -f data/demo/.kalshi-demo-folder ]; then rm -rf data/demo; fi
