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

.PHONY: demo test venv clean bench check

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
	$(VENV)/bin/uv pip install --python $(PY) --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/facecert demo

test: venv
	$(PY) -m pytest -q -n 2 --dist loadfile --basetemp=.cache/pytest $(PYTEST_ARGS)

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

bench: venv
	$(PY) benchmarks/validate.py

clean:
	rm -rf $(VENV) .cache reports/*
