# meshgate — the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
# The interpreter .venv is built from: the distribution's optimised build when it has one.
PY ?= $(shell bash scripts/pick_python.sh || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-mesh test test-pure native lint fmt bench bench-events services-up services-down clean tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The engine's request path compiled with mypyc, in place (scripts/build_native.py); rebuilt when
# any source changed. Without a compiler the sources run (MESHGATE_PURE_PYTHON=1 forces them).
NATIVE_RECORD := src/meshgate/_native_build.json
SRC_PY := $(shell find src/meshgate -name '*.py' -o -name '*.c')
$(NATIVE_RECORD): $(STAMP) $(SRC_PY) scripts/build_native.py scripts/native_setup.py
	$(BIN)/python scripts/build_native.py || echo "WARNING: no compiled engine; the interpreted one runs" >&2

native: $(NATIVE_RECORD)

run: $(STAMP) native
	$(BIN)/meshgate run -c examples/demo.yaml --demo-upstreams

run-mesh: $(STAMP)
	$(BIN)/meshgate demo mesh

services-up:
	bash scripts/services/up.sh

services-down:
	bash scripts/services/down.sh

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

test: $(STAMP) native services-up tools lint
	eval "$$(bash scripts/services/env.sh)" && $(BIN)/pytest -p no:cacheprovider
	$(MAKE) test-pure

# The request-path test areas again on the interpreted engine (the suite above ran the compiled
# one when it is built; tests marked pure_python run only here then).
PURE_TESTS := tests/engine tests/filters tests/plugins tests/plugins_runtime tests/live_apply \
	tests/mesh_http tests/tls tests/events_http
test-pure: $(STAMP) services-up
	eval "$$(bash scripts/services/env.sh)" && MESHGATE_PURE_PYTHON=1 \
		$(BIN)/pytest -p no:cacheprovider $(PURE_TESTS)

fmt: $(STAMP)
	$(BIN)/ruff check --fix
	$(BIN)/ruff format

bench: $(STAMP) native
	bash bench/install.sh
	$(BIN)/python bench/run.py

bench-events: $(STAMP) native services-up
	bash bench/install.sh
	eval "$$(bash scripts/services/env.sh)" && $(BIN)/python bench/events_bench.py

clean: services-down
	test ! -x $(BIN)/python || $(BIN)/python scripts/build_native.py --clean
	rm -rf $(VENV) .services .pytest_cache .mypy_cache .ruff_cache build

# Real clients the suite drives (decK from the Go module proxy, wrk, nginx, Envoy); tests that
# need a missing one skip with a reason.
tools: $(STAMP)
	bash scripts/tools/deck.sh >/dev/null || echo "WARNING: decK could not be built; its tests will skip" >&2
	bash bench/install.sh >/dev/null || echo "WARNING: wrk/nginx/Envoy missing; the bench harness test will skip" >&2
