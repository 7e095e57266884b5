# Magpie — the two commands of the README are `make demo` and `make test`.
# Each creates .venv itself and installs what it needs; nothing else has to be present but
# Python 3.11 (with pip/venv) and Node.js/npm.

PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := tests/interop/node_modules/.installed-stamp
NODE_DRIVER := tests/interop/dist/driver.cjs
export MAGPIE_TIME_SCALE ?= 1

.PHONY: demo test lint unit fuzz bench install node clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): tests/interop/package.json tests/interop/package-lock.json tests/interop/driver.js tests/interop/ws_shim.js
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)
	cd tests/interop && npm run build --silent

# The esbuild bundle of the SDK driver (tests/interop/dist is gitignored); rebuilt if deleted.
$(NODE_DRIVER): $(NODE_STAMP)
	cd tests/interop && npm run build --silent

node: $(NODE_STAMP) $(NODE_DRIVER)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --seconds $${FUZZ_SECONDS:-20}

test: $(STAMP) node lint
	$(BIN)/pytest
	$(BIN)/python fuzz/run.py --seconds $${FUZZ_SECONDS:-20}

demo: $(STAMP)
	$(BIN)/magpie demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) tests/interop/node_modules tests/interop/dist .pytest_cache .mypy_cache .ruff_cache
