# meshgate — the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
# The interpreter .venv is built from: the distribution's optimised build when it has one.
PY ?= $(shell bash scripts/pick_python.sh || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run run-native run-mesh test test-native native lint fmt bench bench-events services-up services-down clean tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/meshgate run -c examples/demo.yaml --demo-upstreams

run-native: native
	PYTHONPATH=$(CURDIR)/build/native/src $(BIN)/meshgate run -c examples/demo.yaml --demo-upstreams

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

test: $(STAMP) services-up tools lint
	eval "$$(bash scripts/services/env.sh)" && $(BIN)/pytest -p no:cacheprovider
	$(MAKE) test-native

# The opt-in compiled engine (bench/build_native.py: 14 engine modules built with mypyc into a
# copy of src under build/native/src; run meshgate with PYTHONPATH=$PWD/build/native/src).
native: $(STAMP)
	$(BIN)/python bench/build_native.py

# The request-path test areas again, against the compiled engine (the whole suite passes there
# too, minus the tests marked pure_python).
NATIVE_TESTS := tests/engine tests/filters tests/plugins tests/plugins_runtime tests/live_apply \
	tests/mesh_http tests/tls tests/events_http
test-native: native services-up
	eval "$$(bash scripts/services/env.sh)" && PYTHONPATH=$(CURDIR)/build/native/src \
		$(BIN)/pytest -p no:cacheprovider $(NATIVE_TESTS)

fmt: $(STAMP)
	$(BIN)/ruff check --fix
	$(BIN)/ruff format

bench: $(STAMP)
	bash bench/install.sh
	$(BIN)/python bench/run.py

bench-events: $(STAMP) services-up
	bash bench/install.sh
	eval "$$(bash scripts/services/env.sh)" && $(BIN)/python bench/events_bench.py

clean: services-down
	rm -rf $(VENV) .services .pytest_cache .mypy_cache .ruff_cache

# Real clients the suite drives (decK from the Go module proxy, wrk, nginx, Envoy); tests that
# need a missing one skip with a reason.
tools: $(STAMP)
	bash scripts/tools/deck.sh >/dev/null || echo "WARNING: decK could not be built; its tests will skip" >&2
	bash bench/install.sh >/dev/null || echo "WARNING: wrk/nginx/Envoy missing; the bench harness test will skip" >&2
