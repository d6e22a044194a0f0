# The two set-up commands are `make demo` and `make test`; the rest are building blocks.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo's web port: `make demo PORT=8080` when 8000 is taken.
PORT ?= 8000

.PHONY: demo test install lint serve migrate clean-db

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Run the demo shop on the embedded PostgreSQL at http://127.0.0.1:$(PORT), with a Celery worker and beat
demo: install
	@$(BIN)/python scripts/run_demo.py --check-port --port $(PORT)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py demo_shop --port $(PORT)
	$(BIN)/python scripts/run_demo.py --port $(PORT)

## Run the whole test suite (lint included) on a throwaway embedded database
test: install
	@# The browser tests drive Debian's Chromium; install it when missing and apt is usable (as root),
	@# otherwise they skip and say why.
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "Could not install Chromium: the browser tests will be skipped."; fi
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-db:
	$(BIN)/python manage.py embedded_db stop || true
	rm -rf .data/postgres
