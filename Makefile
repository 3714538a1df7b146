# touchstream — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint schemas bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## virtualenv with touchstream and the dev tools

demo: $(STAMP) ## the whole pipeline on the embedded broker and chDB
	$(BIN)/touchstream demo

test: $(STAMP) ## every test, the end-to-end ones through the real broker included
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## unit tests only, no broker
	$(BIN)/python -m pytest -q -m "not e2e"

bench: $(STAMP) ## the benchmark: pipeline vs a bare aiokafka loop (BENCH_ARGS="--events 200000")
	$(BIN)/python -m bench.harness $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schemas: $(STAMP) ## regenerate schemas/json after changing a wire model
	$(BIN)/touchstream schema export schemas/json

clean:
	rm -rf $(VENV) .touchstream .pytest_cache .hypothesis
