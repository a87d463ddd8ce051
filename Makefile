# facefactory — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := $(CURDIR)/.venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
export FACEFACTORY_HOME ?= $(CURDIR)/var
export AIRFLOW_HOME     ?= $(FACEFACTORY_HOME)/airflow
export PATH             := $(VENV)/bin:$(PATH)
IMAGE_TAG ?= dev

.PHONY: help setup demo test test-fast bench images lint docs clean-var

help:
	@echo "make demo   - install everything (ffmpeg, .venv, Airflow DB) and run the sample order end to end"
	@echo "make test   - set up, then run the whole test suite (.venv/bin/pytest)"
	@echo "make bench  - engine fps vs the ffmpeg bound, Airflow overhead, whole 60 s orders vs the bound"
	@echo "make images - build the worker and Airflow container images (docker)"
	@echo "make lint   - ruff, mypy (strict for the engine), DAG import check, Dockerfile lint"
	@echo "make docs   - regenerate docs/settings.md from the settings registry"

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test:
	@FACEFACTORY_TEST_TOOLS=1 scripts/setup.sh
	$(PYTEST)

test-fast:
	@FACEFACTORY_TEST_TOOLS=1 scripts/setup.sh
	$(PYTEST) -m "not slow"

bench: setup
	$(PY) benchmarks/engine_fps.py --seconds 2 --sizes 1280x720
	$(PY) scripts/bench_order_overhead.py
	$(PY) benchmarks/order_throughput.py --seconds 60 --sizes 1280x720,1920x1080

images:
	@command -v docker >/dev/null || { echo "docker is not installed"; exit 1; }
	docker build -t facefactory-worker:$(IMAGE_TAG) images/worker
	docker build -t facefactory-airflow:$(IMAGE_TAG) -f images/airflow/Dockerfile .

lint: setup
	$(VENV)/bin/ruff check .
	cd images/worker && $(VENV)/bin/mypy faceworker
	$(PY) scripts/mypy_airflow_side.py
	$(PY) -m compileall -q dags operators quality facefactory plugins images/worker/faceworker
	$(PYTEST) -q tests/dags/test_dagbag.py
	@for f in $$(find images -name Dockerfile); do echo "hadolint $$f"; $(VENV)/bin/hadolint $$f; done

docs:
	$(PY) -m facefactory.settings --write-docs

clean-var:
	rm -rf $(FACEFACTORY_HOME)/work $(FACEFACTORY_HOME)/published $(FACEFACTORY_HOME)/lineage
