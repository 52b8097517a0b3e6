# fedcredit: the commands a fresh machine needs are `make demo`, `make test` (fast tier)
# and `make test-all` (every test, as CI runs them).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Flower runs offline (no telemetry, update check or per-run dependency install) wherever
# fedcredit starts it: the switches are set in deploy/flower_env.py, not here.

.PHONY: demo test test-all lint typecheck install nginx chromium report-screenshot dashboard-screenshots bench clean

# Test tiers (markers in pyproject.toml): the fast tier leaves out the Simulation
# Engine (`slow`), real processes (`deployment`) and the browser (`browser`) but keeps
# one Ray run (`smoke`).
FAST_TIER := (not slow and not deployment and not browser) or smoke
# The fast tier runs on every core (pytest-xdist; `make test WORKERS=0` for one process, no workers).
# loadgroup keeps the tests that share a module-scoped fixture on one worker
# (tests/conftest.py), so a module's simulation is not run again on the other.
WORKERS ?= auto
PARALLEL := -n $(WORKERS) --dist loadgroup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# torch==2.13.0 is installed on its own first: pip then takes the CPU build from local disk.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fedcredit simulate --write-bank-files --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check cli coordinator credit deploy participant privacy serving simulations tests bench
	$(BIN)/ruff format --check cli coordinator credit deploy participant privacy serving simulations tests bench
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# The deployment tests run the consortium's edge proxy: nginx from Debian's packages.
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
	    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx; }; } \
	  || { echo "error: the deployment tests need nginx: run 'apt-get install -y nginx' as root" >&2; exit 2; }

# The browser test loads a run's report.html in headless Chromium: Debian's package
# (playwright drives it; it downloads no browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
	    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }; } \
	  || { echo "error: the browser test needs Chromium: run 'apt-get install -y chromium' as root" >&2; exit 2; }

# Fast tier: in-process tests and one Simulation Engine smoke run; needs no nginx.
test: lint typecheck
	$(BIN)/python -m pytest -q -ra $(PARALLEL) -m "$(FAST_TIER)"

# Every test, including the Simulation Engine, the deployment tests (nginx edge) and
# the browser test (Chromium): the fast tier in parallel, then the other tiers in one
# process (Ray and the deployment tests already keep both cores busy). Both runs go to
# the end; the target fails if either did.
test-all: lint typecheck nginx chromium
	$(BIN)/python -m pytest -q -ra --durations=20 $(PARALLEL) -m "$(FAST_TIER)"; fast=$$?; \
	$(BIN)/python -m pytest -q -ra --durations=20 -m "not ($(FAST_TIER))"; rest=$$?; \
	test $$fast -eq 0 && test $$rest -eq 0

# Refresh docs/report.png: the browser test's screenshot of a 3-bank, 3-round run.
report-screenshot: $(STAMP) chromium
	FEDCREDIT_REPORT_SCREENSHOT=docs/report.png $(BIN)/python -m pytest -q -m browser \
	  tests/coordinator/app/report/test_browser.py

# Refresh docs/dashboard-coordinator.png and docs/dashboard-participant.png: a real
# `simulate --dashboard` run (3 banks, 6 rounds, ε 3) watched in Chromium, both pages
# saved once it has finished: the operator's, and bank-1's from its ledger and audit log.
dashboard-screenshots: $(STAMP) chromium
	FEDCREDIT_DASHBOARD_SCREENSHOTS=docs $(BIN)/python -m pytest -q -m "slow and browser" \
	  tests/simulations/test_simulate_dashboard_browser.py

bench: $(STAMP)
	$(BIN)/python bench/quality.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
