# `make run` and `make test` work on a fresh machine with only Python 3 and make: each (re)creates
# .venv from the pinned requirements when it is missing or older than them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test bench readme clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.app-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.app-installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.app-installed
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

bench: $(VENV)/.app-installed
	$(BIN)/python bench/song_latency.py
	$(BIN)/python bench/face_latency.py

# Regenerate every number in README.md from the model cards and fresh benchmark runs.
readme: $(VENV)/.app-installed
	$(BIN)/python bench/update_readme.py

clean:
	rm -rf $(VENV) .pytest_cache test-output
