# Model registry — every workflow starts here. `make run` and `make test` set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/modelregistry/v1/*.proto)
GEN_DIR := client
# `make run` serves on $(ADDR) if set, else on MODELREGISTRY_LISTEN, else on 127.0.0.1:50051,
# and the web interface on $(HTTP_ADDR), else MODELREGISTRY_HTTP_LISTEN, else 127.0.0.1:8080;
# every other setting comes from the MODELREGISTRY_* environment or the server's defaults.
ADDR ?=
HTTP_ADDR ?= $(or $(MODELREGISTRY_HTTP_LISTEN),127.0.0.1:8080)

# The contract as last released: `make buf-breaking` (part of `make check`) compares proto/ with
# it (buf breaking, and no field behaviour tightened: scripts/check_contract.py). At a release,
# `make contract-release` rebuilds it from proto/; commit it with the release.
RELEASED_CONTRACT := proto/releases/v1.binpb

.PHONY: help venv stubs check-stubs run test test-fast lint typecheck buf-lint buf-breaking \
	contract-release node-tools check bench clean

help:
	@echo "make run        start the service (ADDR=host:port, MODELREGISTRY_* variables; defaults"
	@echo "                127.0.0.1:50051, SQLite var/registry.db + var/blobs) and the web"
	@echo "                interface at http://127.0.0.1:8080 (HTTP_ADDR=host:port)"
	@echo "make test       lint, type-check, stub drift check and the whole test suite"
	@echo "make test-fast  the test suite without PostgreSQL, GCS emulator and slow tests"
	@echo "make stubs      regenerate the Python stubs from proto/"
	@echo "make node-tools install the npm tools of package.json (buf, the Node interop client)"
	@echo "make contract-release  record proto/ as the released contract buf breaking checks against"
	@echo "make bench      run the benchmark harness (see bench/README.md)"

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e './client[cli]' -e '.[dev,tracing]'
	touch $(STAMP)

venv: $(STAMP)

stubs: $(STAMP)
	$(PY) scripts/gen_stubs.py --out $(GEN_DIR)

check-stubs: $(STAMP)
	$(PY) scripts/gen_stubs.py --check --out $(GEN_DIR)

run: $(STAMP)
	$(PY) -m modelregistry_server $(if $(ADDR),--listen $(ADDR)) --http-listen $(HTTP_ADDR)

lint: $(STAMP)
	$(BIN)/ruff check server client/modelregistry/client client/modelregistry/cli tests scripts bench deploy
	$(BIN)/ruff format --check server client/modelregistry/client client/modelregistry/cli tests scripts bench deploy
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy server/modelregistry_server client/modelregistry/client client/modelregistry/cli deploy/healthcheck.py

node_modules/.bin/buf: package.json
	npm install --no-audit --no-fund --silent
	touch $@

node-tools: node_modules/.bin/buf

buf-lint: node_modules/.bin/buf
	node_modules/.bin/buf lint

buf-breaking: $(STAMP) node_modules/.bin/buf
	$(PY) scripts/check_contract.py --against $(RELEASED_CONTRACT)

contract-release: node_modules/.bin/buf
	node_modules/.bin/buf build --path proto/modelregistry --exclude-source-info \
	  -o $(RELEASED_CONTRACT)

check: lint typecheck check-stubs buf-lint buf-breaking

test: $(STAMP) check
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) node-tools
	$(PY) -m pytest -m "not postgres and not gcs and not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
