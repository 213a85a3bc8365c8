# Tandem: `make run` sets up and starts the server with the demo project;
# `make test` sets up and runs every test. Both work on a fresh clone.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DB ?= tandem.db
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run demo test lint format bench clean chromium haproxy redis postgresql

CLIENT_SOURCES := $(shell find client_pwa/src client_pwa/public -type f 2>/dev/null) \
	client_pwa/index.html client_pwa/vite.config.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup: $(VENV)/.installed tests/node/node_modules/.installed client_pwa/dist/index.html

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

tests/node/node_modules/.installed: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

client_pwa/node_modules/.installed: client_pwa/package.json client_pwa/package-lock.json
	cd client_pwa && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# the browser app, served by the server at /
client_pwa/dist/index.html: client_pwa/node_modules/.installed $(CLIENT_SOURCES)
	cd client_pwa && npm run build --silent

# browser tests drive Debian's Chromium (Playwright for Python, no downloaded browsers)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# the load balancer of deploy/ (tests/test_deploy.py runs deploy/haproxy.cfg in front of
# three nodes): Debian's HAProxy
haproxy:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q haproxy; }

# scale-out tests start throwaway servers of Debian's redis-server (tests/conftest.py)
redis:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q redis-server; }

# storage tests also run against a real PostgreSQL server (Debian's package; the tests start
# it themselves in a temporary directory: tests/postgres_server.py)
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q postgresql; }

demo: $(VENV)/.installed
	$(BIN)/tandem demo --db $(DB)

run: setup demo
	$(BIN)/tandem serve --db $(DB) --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy  # every package, see [tool.mypy] in pyproject.toml

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup chromium haproxy redis postgresql lint
	$(BIN)/python -m pytest -q

bench/node/node_modules/.installed: bench/node/package.json bench/node/package-lock.json
	cd bench/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

bench: setup redis bench/node/node_modules/.installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) tests/node/node_modules bench/node/node_modules client_pwa/node_modules \
		client_pwa/dist *.egg-info
