# Magpie — the two commands of the README are `make demo` and `make test`.
# Each creates .venv itself and installs what it needs; nothing else has to be present but
# Python 3.11 (with pip/venv) and Node.js/npm (`make test` also installs Debian's chromium
# for the browser tests when it is missing).

PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp
NODE_STAMP := tests/interop/node_modules/.installed-stamp
NODE_DRIVER := tests/interop/dist/driver.cjs tests/interop/dist/host.cjs
CHROMIUM := /usr/bin/chromium
export MAGPIE_TIME_SCALE ?= 1

.PHONY: demo test lint unit fuzz fuzz-long bench install node web chromium clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# `make demo` needs only Magpie's runtime dependencies; `make install` adds the dev toolchain
# (and so also satisfies the runtime stamp).
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(RUNTIME_STAMP) $(STAMP)

install: $(STAMP)

$(NODE_STAMP): tests/interop/package.json tests/interop/package-lock.json tests/interop/driver.js tests/interop/host.js tests/interop/ws_shim.js
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)
	cd tests/interop && npm run build --silent

# The esbuild bundles of the SDK host and driver (tests/interop/dist is gitignored); rebuilt if deleted.
$(NODE_DRIVER): $(NODE_STAMP)
	cd tests/interop && npm run build --silent

node: $(NODE_STAMP) $(NODE_DRIVER)

# The browser demo: web/src bundled with the official JS SDK into src/magpie/web/static/app.js
# (gitignored). The script rebuilds it only when its recorded source digest differs from
# web/'s; the build backend runs the same check, so every sdist and wheel carries the page.
web:
	$(PY) build_backend/webbundle.py

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser),
# with Debian's colour emoji font so reactions show in the screenshots.
EMOJI_FONT := /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
chromium:
	@if [ -x $(CHROMIUM) ] && [ -f $(EMOJI_FONT) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-color-emoji; \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-color-emoji; \
	elif [ -x $(CHROMIUM) ]; then \
		echo "make chromium: fonts-noto-color-emoji is missing: emoji show as boxes in screenshots" >&2; \
	else \
		echo "make chromium: $(CHROMIUM) is missing and this user can neither apt-get (not root)" \
			"nor sudo; install Debian's chromium package, then run make test again" >&2; \
		exit 1; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz build_backend examples
	$(BIN)/ruff format --check src tests bench fuzz build_backend examples
	$(BIN)/mypy
	$(BIN)/mypy --strict examples/leave/leave_server.py
	cd build_backend && ../$(BIN)/mypy --strict --ignore-missing-imports .
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --seconds $${FUZZ_SECONDS:-20}

# The long run: 10^6 executions of the fuzz harness (coverage-guided with atheris).
fuzz-long: $(STAMP)
	$(BIN)/python fuzz/run.py --runs $${FUZZ_RUNS:-1000000}

# pytest runs under coverage (settings in pyproject.toml); the table per package follows.
test: $(STAMP) node web chromium lint
	$(BIN)/pytest --cov --cov-report=
	$(BIN)/python -m tests.support.coverage_by_package
	$(BIN)/python fuzz/run.py --seconds $${FUZZ_SECONDS:-20}

demo: $(RUNTIME_STAMP) web
	$(BIN)/magpie demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) tests/interop/node_modules tests/interop/dist .pytest_cache .mypy_cache .ruff_cache
	rm -rf web/node_modules src/magpie/web/static/app.js artifacts dist build .coverage .coverage.*
