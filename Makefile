# lumid-plugins — every target bootstraps what it needs (uv into .tools/, then the
# locked workspace into .venv/), so a fresh clone needs only python3 with venv/pip.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS := .tools
UV_VERSION := 0.13.9
# Always the project's own uv: a uv shim from another Python can break in here.
UV := $(CURDIR)/$(TOOLS)/bin/uv
RUN := $(UV) run --locked --all-packages

.PHONY: help sync test test-fast lint fmt typecheck clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# uv goes into a private venv; where python3 has no venv module (Debian without
# python3-venv) it is installed with pip --target instead.
$(UV):
	@command -v python3 >/dev/null || { echo "python3 (with pip) is required to bootstrap uv" >&2; exit 1; }
	@rm -rf $(TOOLS)
	@if python3 -m venv $(TOOLS) 2>/dev/null && $(TOOLS)/bin/python -m pip --version >/dev/null 2>&1; then \
	  echo "bootstrapping uv $(UV_VERSION) into $(TOOLS)/"; \
	  $(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; \
	else \
	  echo "no usable venv module: installing uv $(UV_VERSION) with pip --target $(TOOLS)/pkgs"; \
	  rm -rf $(TOOLS) && python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/pkgs "uv==$(UV_VERSION)" && \
	  mkdir -p $(TOOLS)/bin && ln -sf ../pkgs/bin/uv $(TOOLS)/bin/uv; \
	fi
	@$(UV) --version

.venv/.synced: $(UV) uv.lock pyproject.toml $(wildcard packages/*/pyproject.toml internal/*/pyproject.toml)
	$(UV) sync --locked --all-packages
	@touch $@

sync: .venv/.synced ## install the locked workspace into .venv

test: .venv/.synced ## the whole suite, with coverage of the 3 wheels (floor: [tool.coverage.report])
	$(RUN) pytest --cov --cov-report=term

test-fast: .venv/.synced ## the inner loop: every test but the slow release ones (-m "not dist"), no coverage
	$(RUN) pytest -m "not dist"

lint: .venv/.synced ## ruff: lint and formatting
	$(RUN) ruff check .
	$(RUN) ruff format --check .

fmt: .venv/.synced ## apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

typecheck: .venv/.synced ## mypy --strict over packages and tests
	$(RUN) mypy

# Everything a build, test or bootstrap leaves behind; the next target bootstraps anew.
clean: ## remove the bootstrapped uv, the venv, dist/, bench-results/ and every cache
	rm -rf $(TOOLS) .venv dist build bench-results .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -not -path './.git/*' -exec rm -rf {} +

# -- release (docs/releasing.md). Only the three published distributions are built:
# never `uv build --all-packages`, which would also build the internal/* members.
.PHONY: build check-dist publish demo

# dist/ is rebuilt only when a file under packages/ (or the script) changed.
DIST_INPUTS := $(shell find packages -type f ! -path '*/__pycache__/*' ! -name '*.pyc') scripts/release.py

dist/.built: .venv/.synced $(DIST_INPUTS)
	$(RUN) python scripts/release.py build
	@touch $@

build: dist/.built ## build the 3 wheels + sdists into dist/ (no workspace sources), twine check --strict

check-dist: build ## install each built wheel alone into a fresh venv and load it the way its host does
	$(RUN) python scripts/release.py check-dist

publish: check-dist ## upload dist/ to the private index (UV_PUBLISH_URL etc. override it)
	$(RUN) python scripts/release.py publish

demo: build ## build, publish to a local index, install each plugin and walk every hook
	$(RUN) python -m lumid_demo

.PHONY: bench
BENCH_ARGS ?=
bench: .venv/.synced ## benchmarks vs same-run limits: table + bench-results/latest.json (BENCH_ARGS="--quick --strict")
	$(RUN) python -m benchmarks --json bench-results/latest.json $(BENCH_ARGS)
