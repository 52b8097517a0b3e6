# fedcredit: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Offline-safe Flower: no telemetry, no update check, no per-run dependency install.
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export RAY_USAGE_STATS_ENABLED := 0
export RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO := 0

.PHONY: demo test lint typecheck install nginx bench clean

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
	$(BIN)/fedcredit simulate --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check cli coordinator credit deploy participant privacy simulations tests bench
	$(BIN)/ruff format --check cli coordinator credit deploy participant privacy simulations tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The deployment tests run the consortium's edge proxy: nginx from Debian's packages.
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
	    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx; }; } \
	  || { echo "error: the deployment tests need nginx: run 'apt-get install -y nginx' as root" >&2; exit 2; }

test: lint typecheck nginx
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python bench/quality.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
