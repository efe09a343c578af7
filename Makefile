# make demo  — set up and run the service on the built-in simulated PBX
# make test  — set up and run every test (ruff + pytest)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_LISTEN ?= tcp:8080:interface=127.0.0.1
DEMO_REDIS_PORT ?= 6379

.PHONY: setup system npm test lint demo bench clean

setup: $(STAMP) npm

system:
	@bash scripts/setup-system.sh redis-server chromium nodejs

$(STAMP): setup.cfg pyproject.toml requirements-dev.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: installing python3-venv"; \
	  bash scripts/setup-system.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . -r requirements-dev.txt
	@touch $(STAMP)

npm: static/node_modules/.installed

static/node_modules/.installed: static/package.json static/package-lock.json
	cd static && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: system setup lint
	$(PY) -m pytest -q

demo: system setup
	@bash scripts/demo.sh

# make bench — every benchmark, by hand (figures and method: docs/performance.md)
bench: system setup
	$(PY) benchmarks/ami_throughput.py
	$(PY) benchmarks/redis_state.py
	$(PY) benchmarks/restore.py
	$(PY) benchmarks/dashboard_fanout.py
	$(PY) benchmarks/realistic_load.py
	$(PY) benchmarks/simulator_rate.py

clean:
	rm -rf $(VENV) static/node_modules var .pytest_cache .ruff_cache
