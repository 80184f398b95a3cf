# Anomalake — `make` lists the targets. Two commands on a fresh machine: `make demo`, `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
UV_BOOT := infra/.cache/uv
UV := $(shell command -v uv 2>/dev/null || echo $(UV_BOOT)/bin/uv)

.PHONY: help install demo test lint up down status clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(UV_BOOT)/bin/uv:
	@python3 -m venv $(UV_BOOT) && $(UV_BOOT)/bin/pip install --quiet --disable-pip-version-check uv

$(BIN)/anomalake: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(BIN)/anomalake ## Install what is missing: the locked Python env (uv) and the JVM jars (Maven)
	$(BIN)/anomalake install

demo: install ## Bring the stack up and run the main job on embedded defaults
	$(BIN)/anomalake demo

test: install ## Lint, type-check and run every test (starts and stops the services it needs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(BIN)/anomalake ## Lint, type-check and check the import contract only
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

up: install ## Start Kafka, MLflow and Airflow (idempotent)
	$(BIN)/anomalake up

down: ## Stop everything `make up` started
	@if [ -x $(BIN)/anomalake ]; then $(BIN)/anomalake down; fi

status: ## Each component, its URL and health
	$(BIN)/anomalake status

clean: down ## Stop the stack and delete local data (.anomalake); keeps the caches
	rm -rf .anomalake
