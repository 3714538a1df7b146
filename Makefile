# touchstream — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NATIVE := $(VENV)/.native-stamp
ENGINE := streams/customer_state.py streams/state.py streams/evaluate.py streams/measure.py streams/risk.py \
          streams/attribution.py streams/wow.py streams/snapshot.py streams/scoring.py streams/params.py \
          streams/assessment.py streams/bgnbd.py streams/churn.py streams/engine.py streams/partitioner.py streams/records.py streams/rows.py \
          streams/identity.py streams/resolve.py \
          schemas/validation.py schemas/decoder.py

.PHONY: install demo test test-fast lint check schemas bench bench-identity eval clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@# the base install's wheels, for the test that installs it offline in a fresh venv
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(VENV)/wheelhouse . 2>/dev/null
	rm -rf $(VENV)/wheelhouse/touchstream-*.whl build
	touch $(STAMP)

# the engine compiled with mypyc (pure Python where it cannot be); again when a source changes
$(NATIVE): $(STAMP) $(ENGINE)
	$(BIN)/python -m touchstream.native build
	touch $(NATIVE)

install: $(NATIVE) ## virtualenv with touchstream and the dev tools, the engine compiled

# the benchmark's peer (Quix Streams) in a virtualenv of its own: it pins its own pydantic
PEER := .venv-peer/.installed-stamp
$(PEER): bench/peer-requirements.txt
	$(PYTHON) -m venv .venv-peer
	.venv-peer/bin/python -m pip install --quiet -r bench/peer-requirements.txt
	touch $(PEER)

demo: $(NATIVE) ## the whole pipeline on the embedded broker and chDB
	$(BIN)/touchstream demo

test: $(NATIVE) browser ## every test, the end-to-end ones through the real broker included
	TOUCHSTREAM_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

# Debian's Chromium, for the test that opens the demo report in a real browser, and curl,
# which runs the HTTP API's documented examples
browser:
	@missing=""; for tool in chromium curl; do \
	    command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian's$$missing (the tests open the demo report and run the API examples)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	        >/dev/null; fi

test-fast: $(NATIVE) ## unit tests only, no broker
	$(BIN)/python -m pytest -q -m "not e2e"

bench: $(NATIVE) $(PEER) ## the benchmark: pipeline vs a bare aiokafka loop and Quix Streams (BENCH_ARGS="--events 200000")
	$(BIN)/python -m bench.harness $(BENCH_ARGS)

bench-identity: $(NATIVE) ## identity resolution against generated traffic whose truth is known
	$(BIN)/python -m bench.identity $(IDENTITY_ARGS)

eval: $(NATIVE) ## the risk on four public data sets split by time, beside baselines
	$(BIN)/python -m bench.eval $(EVAL_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: lint ## lint, the import layers, and type-check the engine, the runtime and the sinks
	$(BIN)/python -m tests.layers
	$(BIN)/python -m mypy $(addprefix touchstream/,$(ENGINE)) touchstream/schemas/control.py \
	    touchstream/schemas/promise.py touchstream/streams/calibration.py \
	    touchstream/streams/runtime/*.py touchstream/sinks/*.py touchstream/app.py \
	    touchstream/rebuild.py touchstream/launcher.py touchstream/native/__init__.py \
	    touchstream/replay.py touchstream/replay_parallel.py touchstream/replay_files.py

schemas: $(STAMP) ## regenerate schemas/json, docs/openapi.json and the state class from their declarations
	$(BIN)/python -m touchstream.streams.state_schema
	$(BIN)/touchstream schema export schemas/json
	$(BIN)/touchstream schema openapi docs/openapi.json

clean:
	rm -rf $(VENV) .venv-peer .touchstream .pytest_cache .hypothesis build *__mypyc.*.so touchstream/*__mypyc.*.so streams/*.so sinks/*.so schemas/*.so
