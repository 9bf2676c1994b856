# s3_sharing: every entry point a newcomer or CI needs.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PYTHON ?= python3

export PATH := $(BIN):$(PATH)
export S3_SHARING_DUCKDB_PATH ?= $(CURDIR)/.local/warehouse.duckdb
export DAGSTER_HOME ?= $(CURDIR)/.local/dagster_home
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
# Tests wait on subprocesses (dbt, dagster dev, moto) much of the time: two workers keep both cores busy.
PYTEST_WORKERS ?= 2
# Demo only: the platform holds the audit secret key so the tenant isolation check can sample.
export S3_SHARING_AUDIT_SECRET_KEY_FILE ?= $(CURDIR)/.local/keys/audit.sec

.PHONY: install lock prepare demo test test-fast lint dev endpoints clean

# Every install is the committed uv.lock, exactly (`uv sync --frozen` also removes what the lock does not
# list); the bootstrap uv is the version the lock itself pins.
UV_VERSION := $(shell awk '/^name = "uv"$$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' uv.lock)
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

$(VENV)/.installed: pyproject.toml uv.lock
	command -v gpg >/dev/null && test -x /usr/bin/chromium && ls /usr/lib/postgresql/*/bin/initdb >/dev/null || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends gnupg chromium postgresql)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv sync --frozen --all-extras --quiet
	touch $@

install: $(VENV)/.installed

## lock: resolve pyproject.toml's ranges again to the newest versions (an upgrade: commit it alone, after `make test`)
lock: install
	$(BIN)/uv lock --upgrade

prepare: install
	$(BIN)/s3-sharing prepare

## demo: set everything up and run the main job on the embedded default (DuckDB)
$(DAGSTER_HOME)/dagster.yaml: | $(VENV)/.installed
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -c 'from s3_sharing.devtools.dagster_dev import LOCAL_INSTANCE; print(LOCAL_INSTANCE, end="")' > $@

demo: prepare $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/s3-sharing demo

## test: set up and run the linter, the layers' contracts and the whole test suite
test: prepare
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=10

## test-fast: the inner loop: the linter and every test that needs no server and runs no dbt build of its own
test-fast: prepare
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not e2e and not ui and not dbt" --durations=5

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## dev: the demo day again, then the Dagster UI on it (webserver + daemon) with the local endpoints
dev: prepare $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/s3-sharing demo --ui

## endpoints: local S3/STS/IAM/KMS and GCS until Ctrl-C; other shells `source .local/endpoints.env`
endpoints: prepare
	$(BIN)/s3-sharing endpoints

clean:
	rm -rf .local dbt_project/target dbt_project/logs
