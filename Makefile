# Two commands for a new user: `make run` and `make test` (`make test-fast` for the edit loop).
# Both create .venv (Python 3.10) if missing and install exactly what requirements.lock pins.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# pyenv reads .python-version; without pyenv, PYTHON must name a Python 3.10 interpreter.
PYTHON ?= python3.10
INSTALLED := $(VENV)/.installed-from-lock
UV := $(VENV)/bin/uv
RUN_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
# The suite runs on one pytest-xdist worker per core; a worker takes a group of tests whole (the
# tests that read one pipeline run), longest groups first (tests/conftest.py).
PYTEST_WORKERS ?= auto
XDIST := -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

.PHONY: run test test-fast bench setup lock lint clean browser databases load-clients

run: $(INSTALLED)
	$(PY) run_local.py $(RUN_ARGS)

# Everything, real parts included (pipeline runs, model servers, MariaDB, PostgreSQL, Chromium).
test: $(INSTALLED) browser databases
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The edit loop: no pipeline run and no server (markers e2e and servers), a minute or two.
test-fast: $(INSTALLED)
	$(PY) -m pytest $(XDIST) -m "not e2e and not servers" $(PYTEST_ARGS)

# The benchmark harness (not part of `make test`): TFX's own taxi example as the reference, then the
# project's cold run, re-runs, serving load, and 100k, 1M and 10M rows (each scale run stopped after 45
# minutes); writes BENCHMARKS.md and bench/results.json. About 25 minutes plus the 10M run: up to about
# 70 minutes on 2 cores. A subset: make bench BENCH_ARGS="--only reference,cold".
bench: $(INSTALLED) load-clients
	$(PY) bench/run_bench.py $(BENCH_ARGS)

# The serving load's clients (bench/serve_load.py): C programs from Debian, so that the clients are
# not what is measured: wrk for REST, h2load (nghttp2-client) for gRPC.
load-clients:
	@{ command -v wrk && command -v h2load; } >/dev/null || { echo "Installing Debian's wrk and nghttp2-client for the serving load ..."; \
	  $(SUDO) apt-get install -y -q --no-install-recommends wrk nghttp2-client >/dev/null 2>&1 || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q --no-install-recommends wrk nghttp2-client >/dev/null; }; }

# The HTML report test opens the report in Debian's headless Chromium.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the HTML report test ..."; \
	  $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null; }; }

# The shared-ML-Metadata tests start their own MariaDB and PostgreSQL servers (as an unprivileged
# user, on a free loopback port, in a temporary folder) from Debian's packages.
databases:
	@{ command -v mariadbd || command -v mysqld; } >/dev/null || { echo "Installing Debian's mariadb-server for the shared ML Metadata tests ..."; \
	  $(SUDO) apt-get install -y -q --no-install-recommends mariadb-server >/dev/null 2>&1 || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q --no-install-recommends mariadb-server >/dev/null; }; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "Installing Debian's postgresql for the shared ML Metadata tests ..."; \
	  $(SUDO) apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 || { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q --no-install-recommends postgresql >/dev/null; }; }

setup: $(INSTALLED)

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "error: '$(PYTHON)' not found. TFX 1.16 needs Python 3.10: install it (e.g. 'pyenv install 3.10.13') or run 'make PYTHON=/path/to/python3.10 ...'." >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || { echo "error: '$(PYTHON)' is $$($(PYTHON) --version 2>&1); TFX 1.16 needs Python 3.10. Run 'make PYTHON=/path/to/python3.10 ...'." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# uv installs the lock: the same hashes checked, in half a minute where pip took over two (it
# fetches, unpacks and compiles in parallel, and links from its cache). Both come hash-pinned from
# requirements-bootstrap.lock. Bytecode is compiled at install, as pip does: the pipeline's
# component processes run with -B and would otherwise compile TensorFlow's modules each time.
$(INSTALLED): requirements.lock requirements-bootstrap.lock pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-bootstrap.lock
	$(UV) pip install --python $(PY) --quiet --require-hashes --no-deps --compile-bytecode \
	  -r requirements.lock
	$(UV) pip install --python $(PY) --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

# Maintainers only: re-resolve the whole tree after changing pyproject.toml or constraints.txt.
lock: $(INSTALLED)
	$(UV) pip compile pyproject.toml --extra dev -c constraints.txt --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes --no-emit-package tfx-reference-pipeline \
	  -o requirements.lock

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .

clean:
	rm -rf outputs
