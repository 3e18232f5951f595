# lumid-plugins — every target bootstraps what it needs (uv into .tools/, then the
# locked workspace into .venv/), so a fresh clone needs only python3 with venv/pip.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS := .tools
UV_VERSION := 0.13.9
# Always the project's own uv: a uv shim from another Python can break in here.
UV := $(CURDIR)/$(TOOLS)/bin/uv
RUN := $(UV) run --locked --all-packages

.PHONY: help sync test lint fmt typecheck

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@command -v python3 >/dev/null || { echo "python3 is required to bootstrap uv" >&2; exit 1; }
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: $(UV) uv.lock pyproject.toml $(wildcard packages/*/pyproject.toml internal/*/pyproject.toml)
	$(UV) sync --locked --all-packages
	@touch $@

sync: .venv/.synced ## install the locked workspace into .venv

test: .venv/.synced ## run the whole test suite
	$(RUN) pytest

lint: .venv/.synced ## ruff: lint and formatting
	$(RUN) ruff check .
	$(RUN) ruff format --check .

fmt: .venv/.synced ## apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

typecheck: .venv/.synced ## mypy --strict over packages and tests
	$(RUN) mypy
