# `make run` and `make test` work on a fresh machine with only Python 3 and make: each (re)creates
# .venv from the pinned requirements when it is missing or older than them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
CHROMIUM := /usr/bin/chromium

.PHONY: run test test-fast chromium bench readme docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.app-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements-scale.txt $(VENV)/.app-installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.app-installed
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT) $(ARGS)

# Two test processes, one per core of the 2-core machines the suite's time goals are for (many tests
# wait on a worker process, a server or the browser), each given whole units that share fixtures
# (tests/conftest.py: pytest_xdist_make_scheduler). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS)

test: $(VENV)/.dev-installed chromium
	$(PYTEST)

# Everything but the slow tests (no training, no real server, no browser).
test-fast: $(VENV)/.dev-installed
	$(PYTEST) -m "not slow"

# The browser tests drive Debian's Chromium, never a downloaded one. As root, install it when it is
# missing (refreshing apt's lists if the first try cannot find it); otherwise leave it: those tests
# then skip and say how to install it.
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "note: $(CHROMIUM) is missing and cannot be installed here (needs root and apt-get): the browser tests will skip"; \
	else \
	  echo "Installing Chromium for the browser tests: apt-get install chromium chromium-driver"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "warning: Chromium could not be installed: the browser tests will skip"; \
	fi

# The two latency benchmarks; each writes its report to bench/results/, which `make docs` renders.
bench: $(VENV)/.app-installed
	$(BIN)/python -m bench.song_latency
	$(BIN)/python -m bench.face_latency
	$(BIN)/python -m bench.docs

# Regenerate every number in README.md and docs/ from the model cards and the benchmarks' JSON
# reports in bench/results/ (measures nothing; `make docs ARGS=--run=all` reruns every benchmark
# first, `ARGS=--no-bench` writes the model tables only).
docs readme: $(VENV)/.app-installed
	$(BIN)/python -m bench.docs $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache test-output
