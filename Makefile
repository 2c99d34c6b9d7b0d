# Parley: `make run` serves the app, `make test` runs lint, types and the test suite. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/parley
REDIS_TEST_URL ?= redis://127.0.0.1:6379/0
COMPOSE ?= docker compose

.PHONY: help run test test-services lint typecheck pytest install dev-install secrets migrate superuser \
        up prod down logs bench fake-discord bot-dev browser doctor deploy

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed ## create .venv and install the app

dev-install: $(VENV)/.dev-installed ## install the test and lint tools

browser: ## install Debian's chromium for the browser tests (playwright cannot download browsers here)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: browser tests will be skipped"

secrets: ## write placeholder secret files under secrets/ (git-ignored)
	./setup_secrets.sh

migrate: install ## apply database migrations
	$(PY) manage.py migrate --noinput

run: install ## migrate and serve at http://127.0.0.1:8000 (and the bot, when a token is configured)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	./scripts/run.sh

superuser: install ## create an operator account for /admin/
	$(PY) manage.py createsuperuser

doctor: install ## check this environment's configuration (token, login URL, database, Redis, LLM, shards)
	$(PY) manage.py parley_doctor

lint: dev-install ## ruff check, ruff format --check, and the import rules (.importlinter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: dev-install ## mypy on the apps
	$(VENV)/bin/mypy config accounts guilds audit botcore llm

pytest: dev-install ## the test suite only (PYTEST_ARGS=... to pass options)
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest $(PYTEST_ARGS)

test: dev-install browser lint typecheck pytest ## lint, type check and the test suite on the embedded default (SQLite)

test-services: dev-install browser ## the test suite on PostgreSQL + Redis (127.0.0.1)
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) CACHE_KEY_PREFIX=parley-test-$$$$ $(PY) -m pytest $(PYTEST_ARGS)

fake-discord: dev-install ## run the local fake Discord server on :8765 for development
	$(PY) -m tests.fakes.discord_server --port 8765 --guilds 2

bot-dev: migrate ## run the bot against `make fake-discord` (it answers mentions)
	DISCORD_BOT_TOKEN=fake-bot-token DISCORD_API_BASE=http://127.0.0.1:8765/api/v10 \
	  DISCORD_GATEWAY_URL=ws://127.0.0.1:8765/gateway DISCORD_CDN_HOSTS=127.0.0.1 BOT_HEALTH_PORT=8080 $(PY) manage.py runbot

bench: dev-install ## run the benchmarks and rewrite docs/BENCHMARKS.md
	$(PY) -m bench.run_all

up: secrets ## start the development stack with docker compose
	$(COMPOSE) up -d --build

prod: secrets ## start the production stack (compose.yaml + compose.prod.yaml)
	$(COMPOSE) -f compose.yaml -f compose.prod.yaml up -d --build

deploy: ## deploy on a production host: build, migrate, restart with health checks, roll back on failure
	./scripts/deploy.sh $(DEPLOY_ARGS)

down: ## stop the compose stack (the sharded bots too)
	$(COMPOSE) down --remove-orphans

logs: ## follow the compose logs
	$(COMPOSE) logs -f --tail=100
