# The two commands of the quick start are `make demo` and `make test`; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
# Airflow's configuration comes from the platform settings (python -m fti env)
AIRFLOW_ENV = eval "$$($(PY) -m fti env)" && export PATH="$(CURDIR)/$(VENV)/bin:$$PATH"
DAYS ?= 2013-01-01..2013-01-31

.PHONY: help install init demo up test lint clean bench rollback redeliver \
	stack-env stack-wheels stack-base stack-build stack-up stack-down stack-test stack-bench

help:
	@echo "make demo    install if needed, initialise Airflow and Feast, run the feature pipeline for $(DAYS), train once, print a summary"
	@echo "make test    install if needed, lint, run the whole test suite"
	@echo "make lint    ruff (rules, docstrings, format) and the import contracts of the layers"
	@echo "make up      Airflow (standalone) with the project's DAGs on http://localhost:8080, MLflow UI on :5000"
	@echo "make rollback  restore the previously live model version of the local service"
	@echo "make redeliver DAY=D  run a quarantined day again once its source is corrected"
	@echo "make bench   benchmarks (figures go to docs/benchmarks.md by hand)"
	@echo "make clean   remove all local state (.fti/)"
	@echo "make stack-env    write .env with generated secrets for docker-compose.yml (kept if present)"
	@echo "make stack-build  build the images (docker/); stand-ins for the base images without a registry"
	@echo "make stack-up     start the compose stack and wait until every service is healthy"
	@echo "make stack-down   stop the compose stack and remove its volumes"
	@echo "make stack-test   the stack's tests (tests/stack): build, up, drive F -> T -> I, down"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# constraints.txt is the lock: exactly the versions the tests ran with
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

init: install
	@$(AIRFLOW_ENV) && mkdir -p "$$AIRFLOW_HOME" && airflow db migrate >/dev/null 2>&1 \
		&& airflow dags reserialize >/dev/null 2>&1 && echo "Airflow initialised in $$AIRFLOW_HOME"
	@$(PY) -m fti feast-apply | tail -n 3

demo: init
	@$(AIRFLOW_ENV) && $(PY) -m fti demo --days $(DAYS)

# one warm Spark Connect server for every Spark task (tasks are its clients), the MLflow UI,
# then Airflow; the server and the UI stop when Airflow does
up: init
	@eval "$$($(PY) -m fti env --spark-connect)" && export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
		&& ($(PY) -m fti spark-connect --watch $$$$ &) && ($(PY) -m fti mlflow-ui --watch $$$$ &) \
		&& $(PY) -m fti spark-connect --wait 180 && ($(PY) -m fti login &) && exec airflow standalone

test: install lint
	$(PY) -m pytest

# ruff (rules and docstrings of public functions), ruff's formatter, and the import contracts
# of pyproject.toml (the layers: applications -> pipelines -> ground)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo --no-cache

rollback: install
	@$(PY) -m fti rollback

# a quarantined day, run again once its source is corrected (docs/validation.md)
redeliver: install
	@test -n "$(DAY)" || { echo "usage: make redeliver DAY=YYYY-MM-DD"; exit 2; }
	@$(AIRFLOW_ENV) && $(PY) -m fti redeliver --day $(DAY)

bench: install
	$(PY) bench/feature_pipeline.py

clean:
	rm -rf .fti

# --- the compose stack (docker-compose.yml, docker/, docs/deploy.md) -------------------------
STACK := python3 docker/stack.py

stack-env:
	@python3 docker/stack_env.py

# the lock's wheels as pip picks them here (torch's CPU build), for builds without an index;
# async-timeout: redis needs it on Python < 3.11.3 (Debian's 3.11.2 in the stand-in base)
stack-wheels: install
	@ls docker/wheels/torch-*.whl >/dev/null 2>&1 || { \
		$(PY) -m pip download -q -c constraints.txt -d docker/wheels . 2>&1 | grep -v '^WARNING' ; \
		$(PY) -m pip download -q --no-deps -d docker/wheels 'async-timeout>=4.0.3' 2>&1 | grep -v '^WARNING' ; true; }

stack-base:
	@$(STACK) base

stack-build: stack-wheels stack-base
	@$(STACK) build

stack-up: stack-env
	@$(STACK) up

stack-down:
	@$(STACK) down

stack-test: install
	$(PY) -m pytest -m stack tests/stack

stack-bench: install
	$(PY) bench/stack.py
