# The commands a fresh machine needs: `make demo`, `make check` and `make test`.
# Each builds .venv from python3.13 or python3.12 and installs what it needs;
# a second run reuses what is there (the stamp tracks pyproject.toml and the extras).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := test,dev
comma := ,
# the stamp is named after the extras, so a venv installed with other extras is brought up to date
STAMP := $(VENV)/.facecert-installed-$(subst $(comma),-,$(EXTRAS))
ALLURE := tools/allure/node_modules/.package-lock.json
OPENAPI_TOOLS := tools/openapi/node_modules/.package-lock.json
export UV_CACHE_DIR := $(CURDIR)/.cache/uv
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export npm_config_cache := $(CURDIR)/.cache/npm
export MITMPROXY_CONFDIR := $(CURDIR)/.cache/mitmproxy

.PHONY: demo test test-fast venv clean bench check chromium bytecode

venv: $(STAMP) $(ALLURE) $(OPENAPI_TOOLS)

# Allure 3 (npm, pure Node) renders the single-file HTML reports.
$(ALLURE): tools/allure/package.json tools/allure/package-lock.json
	cd tools/allure && npm ci --no-audit --no-fund --loglevel=error

# Prism (validation proxy) and Redocly (lint) for the OpenAPI acceptance tests (tests/openapi).
$(OPENAPI_TOOLS): tools/openapi/package.json tools/openapi/package-lock.json
	cd tools/openapi && npm ci --no-audit --no-fund --loglevel=error

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(scripts/find-python) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --python $(PY) --quiet --compile-bytecode -e '.[$(EXTRAS)]'
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/facecert demo

# Chromium for the browser tests: Debian's package, installed with apt when we are root and it is missing;
# nothing when it is there. Where apt cannot install it the browser tests say why (skip off Debian/root).
CHROMIUM := command -v chromium || command -v chromium-browser || command -v google-chrome
chromium:
	@if ! ($(CHROMIUM)) >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then \
	    echo "make chromium: installing Debian's chromium (apt-get)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    mkdir -p .cache; { apt-get update -qq && apt-get install -y -qq chromium; } >.cache/apt-chromium.log 2>&1 \
	      || echo "make chromium: apt-get failed (.cache/apt-chromium.log): the browser tests will fail"; \
	  else echo "make chromium: no Chromium and no root apt on Debian: the browser tests will skip"; fi; \
	fi

# Everything CI runs, on four workers for two cores: the suite mostly waits on protocol time, so two workers
# left a core idle half the run (385-439 s in-tree, 2026-12-03; four 293-328 s). Four failed a cadence bound in a
# fresh clone before our reference device read the stall clock (499c3c1); since, green (docs/performance.md,
# Test suite). TEST_WORKERS=2 is there for a machine that is shared or slower. A module's tests share one worker
# (its module fixtures are built once), the longest modules first, in the order tests/conftest.py gives (not
# --dist loadgroup: pytest-xdist 3.8 cannot group pytest 9's tests).
TEST_WORKERS ?= 4
test: venv chromium bytecode
	$(PYTEST) -q -n $(TEST_WORKERS) --dist loadfile --basetemp=.cache/pytest $(PYTEST_ARGS)

# The edit-test loop: no browser, fuzzing, wheel, slow or benchmark-like tests (pyproject markers; Locust
# processes are slow). What is left mostly waits on protocol time in-process, its command lines forked from a
# fork server: four workers on two cores, 71-82 s (docs/performance.md, Test suite).
TEST_FAST_WORKERS ?= 4
test-fast: venv bytecode
	$(PYTEST) -q -n $(TEST_FAST_WORKERS) --dist loadfile -m "not (browser or fuzz or wheel or slow)" \
	  --basetemp=.cache/pytest-fast $(PYTEST_ARGS)

# Bytecode, made ahead. uv installs none by default, and where PYTHONDONTWRITEBYTECODE is set (as on these
# machines) Python never caches any: then every process the suite starts (mitmdump, Locust, Schemathesis, the
# workers) compiles all it imports again (mitmdump --version: 1.9 s of CPU, 0.9 s with bytecode). The venv's
# comes with the install (--compile-bytecode above); the project's own modules are compiled here, where a
# changed source only makes its stale file unused (Python checks each source's mtime). A syntax error is left
# to pytest to report. Measured: make test 458 -> 422 s, 475 -> 408 CPU-s of user time (docs/performance.md).
bytecode: venv
	@$(PY) -m compileall -qq $(LINT_PATHS) || true

# pytest, allowed to cache what it compiles: pytest writes no assertion-rewritten module (every test module,
# conftest and plugin) where PYTHONDONTWRITEBYTECODE is set, so each worker rewrote them all again (collection
# 6.8 s of CPU a process; 3.3 s from the cache). __pycache__ is ignored by git.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

# ruff does not follow the links inside facecert/ (the peers' and steps' real files are in their top-level
# folders), so those are listed; mypy and lint-imports do follow them.
LINT_PATHS := facecert mock_server mock_device proxy_addons steps tests benchmarks

CHECKS := "$(VENV)/bin/ruff check $(LINT_PATHS)" \
	"$(VENV)/bin/ruff format --check $(LINT_PATHS)" \
	"$(VENV)/bin/mypy -p facecert --cache-dir .cache/mypy" \
	"$(VENV)/bin/lint-imports --no-logo --cache-dir .cache/import-linter"

# every check runs (one failing does not hide the others); the target fails if any did
check: venv
	@failed=(); for cmd in $(CHECKS); do echo "$$cmd"; $$cmd || failed+=("$$cmd"); done; \
	if (( $${#failed[@]} )); then printf 'make check: FAILED: %s\n' "$${failed[@]}"; exit 1; fi

# Every benchmark (quick where it has a --quick mode), one after the other: each prints its ratios.
bench: venv
	@for bench in benchmarks/*.py; do \
	  quick=$$(grep -q -- '"--quick"' $$bench && echo --quick); \
	  echo "== $$bench $$quick"; $(PY) $$bench $$quick || exit 1; echo; \
	done

clean:
	rm -rf $(VENV) .cache reports/*
