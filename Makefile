# Two commands do everything on a fresh machine:
#   make run   - venv, install, migrate, demo data, then serve on http://127.0.0.1:$(PORT)/
#   make test  - venv with test tools, then the whole suite (PostgreSQL + Redis, see README)
# A second `make run` reuses the installed venv and starts in seconds.

PYTHON ?= python3.11
VENV ?= .venv
PORT ?= 8000
BIN := $(VENV)/bin

# The embedded default: SQLite file, paper broker, demo data. Override any of these.
RUN_ENV := DEBUG=$${DEBUG:-true} PORT=$(PORT)
# The suite runs on PostgreSQL and Redis (local services by default).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/tradeplatform
TEST_REDIS_URL ?= redis://127.0.0.1:6379/2
PYTEST_ARGS ?= -n 2

.PHONY: run test lint check bench install install-dev chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.runtime-installed $@

install: $(VENV)/.runtime-installed
install-dev: $(VENV)/.dev-installed

run: $(VENV)/.runtime-installed
	@$(RUN_ENV) $(BIN)/python manage.py migrate --noinput -v0
	@$(RUN_ENV) $(BIN)/python manage.py seed_demo
	@$(RUN_ENV) $(BIN)/python manage.py run_platform

chromium:
	@bash scripts/ensure-chromium

test: $(VENV)/.dev-installed chromium
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check: $(VENV)/.dev-installed
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=true $(BIN)/python manage.py check

bench: $(VENV)/.dev-installed
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) staticfiles var .pytest_cache .ruff_cache
