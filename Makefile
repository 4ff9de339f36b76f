# Everything a user or CI runs. The first target that needs Python builds .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SERIES ?= KXHIGHNY
# Optional: FROM=YYYY-MM-DD TO=YYYY-MM-DD narrow the events; ARGS= passes anything else.
RANGE := $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO))

.PHONY: install extract load test soak bench demo lint clean-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

extract: install
	$(PY) -m extract events --series $(SERIES)
	$(PY) -m extract candles --series $(SERIES) $(RANGE) $(ARGS)

load: install
	$(PY) -m load run $(ARGS)

# Four workers on two cores: many tests wait (rate limits, leases, subprocess start-up),
# so their waits overlap; worksteal evens out the long tests. (Not loadgroup: with
# pytest 9.2 it silently ignores xdist_group, pytest-xdist#1386.) TEST_WORKERS=0: serial.
TEST_WORKERS ?= 4
test: install
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

soak: install
	$(PY) -m pytest -q -p no:cacheprovider -m slow

bench: install
	$(PY) -m tests.bench $(ARGS)

demo: install
	$(PY) -m tests.demo $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
