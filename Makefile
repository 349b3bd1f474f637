PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VIDEO ?=

.PHONY: demo test install install-test bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

demo: install
	$(BIN)/manager demo $(if $(VIDEO),--video $(VIDEO),)

test: install-test
	$(BIN)/python -m pytest -ra

bench-quick: install-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks --quick

bench: install-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) demo-output .pytest_cache
