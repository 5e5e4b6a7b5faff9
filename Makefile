# radbill: `make run` to try it, `make test` to test it. Both set themselves up.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Debian packages the tests need, installed when their commands (or files: the headless browser) are missing.
TEST_PACKAGES := iproute2 postgresql freeradius-utils freeradius freeradius-postgresql openssl tcpdump systemd prometheus chromium chromium-driver

.PHONY: run test test-fast bench venv debian-packages clean

$(BIN)/activate:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) debian-packages PACKAGES=python3-venv
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate setup.cfg pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(BIN)/radbill demo
	@echo "radiusd on 127.0.0.1:1812/1813, the API on http://127.0.0.1:8080/api/v1/docs, metrics on :9812, :9813 and :9814. Ctrl-C stops all three."
	@$(BIN)/radbill billingd & billingd=$$!; $(BIN)/radbill api & api=$$!; \
		trap "kill $$billingd $$api 2>/dev/null" EXIT INT TERM; $(BIN)/radbill radiusd

test: venv
	@{ command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl; } >/dev/null 2>&1 && command -v radclient >/dev/null && command -v ip >/dev/null && command -v freeradius >/dev/null && command -v openssl >/dev/null && command -v tcpdump >/dev/null && command -v systemd-analyze >/dev/null && command -v promtool >/dev/null \
		&& test -x /usr/bin/chromedriver && test -x /usr/lib/chromium/chromium && test -e /usr/lib/freeradius/rlm_sql_postgresql.so \
		|| $(MAKE) debian-packages PACKAGES="$(TEST_PACKAGES)"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tier only: no database, no socket, no subprocess (tests/conftest.py); seconds.
test-fast: venv
	$(BIN)/python -m pytest -m unit -q $(PYTEST_ARGS)

# The README's Benchmarks table: the headline benchmarks at full size, one after the other
# (an hour or more; on a quiet machine). The benchmarks' output goes to stderr, the table to stdout.
bench: venv
	@$(BIN)/python tests/bench/table.py

debian-packages:
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $(PACKAGES)

clean:
	rm -rf $(VENV) var *.egg-info
