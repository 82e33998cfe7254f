# Two commands on a fresh machine:
#   make run    install, write .env once, migrate, load demo data, serve on http://127.0.0.1:8000
#   make test   install and run the whole test suite (PostgreSQL when it answers)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1:8000
DEMO_ADMIN_PASSWORD ?= agentwallet-demo

.PHONY: run test install install-dev lint bench bench-portal bench-reconcile bench-x402 bench-stripe clean

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	@$(BIN)/python scripts/write_local_env.py
	DEBUG=1 $(BIN)/python manage.py migrate --no-input
	DEBUG=1 DEMO_ADMIN_PASSWORD=$(DEMO_ADMIN_PASSWORD) $(BIN)/python manage.py seed_demo
	@echo "Portal:       http://$(HOST)/  (users admin, finance, lead, viewer; password $(DEMO_ADMIN_PASSWORD))"
	@echo "Admin:        http://$(HOST)/admin/  (user admin)"
	@echo "API docs:     http://$(HOST)/api/docs/"
	DEBUG=1 $(BIN)/python manage.py runserver $(HOST)

test: install-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/test.sh

lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

bench: install-dev
	command -v wrk >/dev/null || apt-get install -y -q wrk    # the HTTP load (Debian's package)
	$(BIN)/python bench/authorize.py
	$(BIN)/python bench/approvals.py
	$(BIN)/python bench/provision.py
	$(BIN)/python bench/portal.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/x402.py
	$(BIN)/python bench/mcp_tools.py
	$(BIN)/python bench/stripe_webhook.py

bench-portal: install-dev    # the portal's pages on 1,000,000 entries (the data set is kept)
	$(BIN)/python bench/portal.py

bench-x402: install-dev    # x402 pay: in process, over HTTP (wrk), round trip via the official paywall
	command -v wrk >/dev/null || apt-get install -y -q wrk
	$(BIN)/python bench/x402.py

bench-stripe: install-dev    # Stripe's real-time authorization webhook over HTTP (wrk), and a hung database
	command -v wrk >/dev/null || apt-get install -y -q wrk
	$(BIN)/python bench/stripe_webhook.py

bench-reconcile: install-dev    # exports, runaway sweep, what-if, sprint report (portal.py's data)
	$(BIN)/python bench/reconcile.py

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles
