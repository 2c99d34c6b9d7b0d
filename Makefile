# Parley: `make run` serves the app, `make test` runs lint, types and the test suite. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# `make test-services`: a database name and a Redis database of the tests' own, so a run never touches the
# development data (the suite drops its test database and deletes its Redis keys at the end).
PG_URL ?= postgres://postgres@127.0.0.1:5432/parley_ci
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15
# The port of `make fake-discord`, which `make bot-dev` connects to. `make run` serves on PORT (default 8000) and
# the bot's /health listens on BOT_HEALTH_PORT (default 8080): settings read both, from the environment or .env.
FAKE_DISCORD_PORT ?= 8765
# `make bot-dev`: the bot against the fake, on a database of its own (the fake's guilds stay out of the real one).
BOT_DEV_ENV = DATABASE_URL=sqlite:///$(CURDIR)/var/bot-dev.sqlite3 DISCORD_BOT_TOKEN=fake-bot-token \
  DISCORD_API_BASE=http://127.0.0.1:$(FAKE_DISCORD_PORT)/api/v10 \
  DISCORD_GATEWAY_URL=ws://127.0.0.1:$(FAKE_DISCORD_PORT)/gateway DISCORD_CDN_HOSTS=127.0.0.1
# Compose v2 (`docker compose`) when the docker CLI has it, else docker-compose (1.29 works too).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: help run test test-services lint typecheck pytest install dev-install secrets migrate superuser \
        up prod down logs bench fake-discord bot-dev browser doctor doctor-prod deploy test-docker

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
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser tests (apt-get, about a minute)"; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: browser tests will be skipped"; }

secrets: ## write placeholder secret files under secrets/ (git-ignored)
	./setup_secrets.sh

migrate: install ## apply database migrations
	$(PY) manage.py migrate --noinput

run: install ## migrate and serve at http://127.0.0.1:8000 (PORT=8001 for another) and the bot if a token is set; reads .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	./scripts/run.sh

superuser: install ## create an operator account for /admin/
	$(PY) manage.py createsuperuser

doctor: install ## check this machine's configuration, .env included (token, login URL, database, Redis, LLM, shards)
	$(PY) manage.py parley_doctor

doctor-prod: secrets ## the same checks in the production web container (starts postgres and redis if they are down)
	$(COMPOSE) -f compose.yaml -f compose.prod.yaml up -d postgres redis
	$(COMPOSE) -f compose.yaml -f compose.prod.yaml run --rm --no-deps web python manage.py parley_doctor

lint: dev-install ## ruff check, ruff format --check, and the import rules (.importlinter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

# mypy's Django plugin loads the settings: without .env, like the tests, so the result is the same everywhere.
typecheck: dev-install ## mypy on the apps
	PARLEY_ENV_FILE= $(VENV)/bin/mypy config accounts guilds audit botcore llm

pytest: dev-install ## the test suite only (PYTEST_ARGS=... to pass options)
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest $(PYTEST_ARGS)

test: dev-install browser lint typecheck pytest ## lint, type check and the test suite on the embedded default (SQLite)

test-services: dev-install browser ## the test suite on PostgreSQL + Redis (127.0.0.1)
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) CACHE_KEY_PREFIX=parley-test-$$$$ $(PY) -m pytest $(PYTEST_ARGS)

fake-discord: dev-install ## run the local fake Discord server for development (FAKE_DISCORD_PORT=8765)
	$(PY) -m tests.fakes.discord_server --port $(FAKE_DISCORD_PORT) --guilds 2

bot-dev: install ## the bot against `make fake-discord`, on var/bot-dev.sqlite3 (FAKE_DISCORD_PORT, BOT_HEALTH_PORT=8080)
	mkdir -p var
	$(BOT_DEV_ENV) $(PY) manage.py migrate --noinput -v0
	$(BOT_DEV_ENV) $(PY) manage.py runbot

bench: dev-install ## run the benchmarks and rewrite docs/BENCHMARKS.md
	$(PY) -m bench.run_all

up: secrets ## start the development stack with docker compose
	$(COMPOSE) -f compose.yaml up -d --build

prod: secrets ## start the production stack (compose.yaml + compose.prod.yaml)
	$(COMPOSE) -f compose.yaml -f compose.prod.yaml up -d --build

deploy: secrets ## deploy on a production host: build, migrate, restart with health checks, roll back on failure
	./scripts/deploy.sh $(DEPLOY_ARGS)

down: ## stop the compose stack (the sharded bots too); the data volumes stay
	$(COMPOSE) -f compose.yaml --profile sharded down --remove-orphans

logs: ## follow the compose logs
	$(COMPOSE) -f compose.yaml --profile sharded logs -f --tail=100

test-docker: install ## run the production stack on Docker and check it, deploy and rollback too (root; installs docker)
	./scripts/test-docker.sh
