# make setup — .venv with the project (editable) and the test tools, and the page's npm packages
# make demo  — set up and run the service on the built-in simulated PBX
# make test  — set up and run every test (ruff + pytest)
# make wheel — build dist/callcenter-*.whl (carries the page; needs npm here only)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Twisted finds `twistd callcenter` in twisted/plugins/ directories on
# sys.path, which an editable install's import hook does not provide: a .pth
# file puts the checkout itself there, so the venv's twistd works from any
# directory, with no PYTHONPATH.  (setuptools' deprecated "compat" editable
# mode would do the same.)
CHECKOUT_PTH := import pathlib, sysconfig; pathlib.Path(sysconfig.get_path("purelib"), "callcenter-checkout.pth").write_text(str(pathlib.Path.cwd()) + "\n")

.PHONY: setup system npm test lint demo wheel bench clean

setup: $(STAMP) npm

system:
	@bash scripts/setup-system.sh redis-server chromium nodejs promtool

$(STAMP): setup.cfg setup.py pyproject.toml requirements-dev.txt Makefile
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: installing python3-venv"; \
	  bash scripts/setup-system.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . -r requirements-dev.txt
	$(PY) -c '$(CHECKOUT_PTH)'
	@touch $(STAMP)

npm: static/node_modules/.installed

static/node_modules/.installed: static/package.json static/package-lock.json
	cd static && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: system setup lint
	$(PY) -m pytest -q

# DEMO_LISTEN (dashboard endpoint) and DEMO_REDIS_URL (default: a private
# Redis) pass through the environment to scripts/demo.sh.
demo: system setup
	@bash scripts/demo.sh

wheel: $(STAMP)
	@bash scripts/setup-system.sh nodejs
	$(PY) -m pip wheel -q --no-deps -w dist .

# make bench — every benchmark, by hand (figures and method: docs/performance.md)
bench: system setup
	$(PY) benchmarks/ami_throughput.py
	$(PY) benchmarks/redis_state.py
	$(PY) benchmarks/restore.py
	$(PY) benchmarks/dashboard_fanout.py
	$(PY) benchmarks/realistic_load.py
	$(PY) benchmarks/simulator_rate.py

clean:
	rm -rf $(VENV) static/node_modules var build dist .pytest_cache .ruff_cache
