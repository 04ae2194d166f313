# sparkify-lakehouse — `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := .cache/jars/COORDINATES
# The SQL endpoint's sign-in and read-only classes, compiled from lakehouse/endpoint/jvm/*.java (never committed as a jar).
THRIFT_JAR := .cache/jvm/lakehouse-thrift.jar
# Hadoop's local file system without a process per chmod/readlink, compiled from lakehouse/localfs/*.java.
LOCALFS_JAR := .cache/jvm/lakehouse-localfs.jar
# The driver JVM's class-data archive: classes mapped from one file at start instead of loaded from jars.
CLASS_ARCHIVE := .cache/jvm/lakehouse.jsa
# dbt (a tool environment of the tests, not a dependency of the project): the SQL endpoint's dbt test runs it.
DBT_STAMP := .cache/dbt/.installed
DEMO_DIR ?= lakehouse-data
# Airflow 3 in an environment of its own, for the DAG's end-to-end test (tests/e2e/test_scheduling.py); not a dependency
# of the project. Its home holds a migrated SQLite metadata database that each test copies.
AIRFLOW_ENV := .cache/airflow
AIRFLOW_STAMP := $(AIRFLOW_ENV)/.installed

.PHONY: setup check-java demo test test-quick lint bench clean

setup: check-java $(STAMP) $(JARS_STAMP) $(LOCALFS_JAR) $(CLASS_ARCHIVE) .cache/spark-defaults.conf $(THRIFT_JAR) $(DBT_STAMP) $(AIRFLOW_STAMP)
	@echo "setup complete: $(BIN)/lakehouse --help"

check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17+ is required (apt-get install openjdk-17-jdk-headless, or set JAVA_HOME)"; exit 1; }
	@v=$$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -1); \
	  if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then echo "error: Java 17+ is required, found: $$(java -version 2>&1 | head -1)"; exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "error: Python 3.10+ is required")'

# One line per setup step; the step's own output (pip, Ivy) only with V=1, or when the step fails.
STEP = step() { msg="$$1"; shift; echo "setup: $$msg"; if [ -n "$(V)" ]; then "$$@"; return; fi; \
	log=$$(mktemp); if "$$@" >"$$log" 2>&1; then rm -f "$$log"; else rc=$$?; cat "$$log"; rm -f "$$log"; \
	echo "error: setup step '$$msg' failed (exit $$rc; its output is above; V=1 shows every step's output)"; return $$rc; fi; }; step

$(STAMP): pyproject.toml
	@$(STEP) "Python virtual environment in $(VENV)" $(PYTHON) -m venv $(VENV)
	@$(STEP) "Python packages (pyspark, delta-spark, ...; a few minutes the first time)" \
	  sh -c "$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip && $(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'"
	@touch $@

$(JARS_STAMP): $(STAMP) lakehouse/deps.py
	@$(STEP) "JVM jars (Delta, hadoop-aws) from Maven Central into .cache/, once" $(BIN)/python -m lakehouse.deps

$(LOCALFS_JAR): $(JARS_STAMP) $(wildcard lakehouse/localfs/*.java)
	@$(STEP) "Java classes of the local file system (no process per chmod) compiled with javac" $(BIN)/python -m lakehouse.deps --local-fs

$(CLASS_ARCHIVE): $(JARS_STAMP) $(LOCALFS_JAR) $(THRIFT_JAR) lakehouse/jvm_archive.py
	@$(STEP) "JVM class-data archive for faster Spark starts (.cache/jvm, one small pipeline run, about a minute)" \
	  $(BIN)/python -m lakehouse.jvm_archive

.cache/spark-defaults.conf: $(JARS_STAMP) $(LOCALFS_JAR) $(THRIFT_JAR) $(CLASS_ARCHIVE) lakehouse/session.py
	@$(STEP) "Spark defaults for spark-submit (.cache/spark-defaults.conf)" \
	  $(BIN)/python -c 'from lakehouse.config import load_settings; from lakehouse.session import write_spark_submit_defaults as w; w(load_settings(), "$@")'

$(THRIFT_JAR): $(STAMP) $(wildcard lakehouse/endpoint/jvm/*.java) lakehouse/endpoint/security.py
	@$(STEP) "Java classes of the SQL endpoint (sign-in, write policy) compiled with javac" $(BIN)/python -m lakehouse.endpoint.security build

$(DBT_STAMP): tests/e2e/dbt/requirements.txt
	@$(STEP) "dbt for the SQL endpoint's tests (.cache/dbt, its own environment)" \
	  sh -c "rm -rf .cache/dbt && $(PYTHON) -m venv .cache/dbt && .cache/dbt/bin/pip install --quiet --disable-pip-version-check -r $<"
	@touch $@

$(AIRFLOW_STAMP): deploy/airflow/constraints.txt
	@$(STEP) "Airflow 3 in its own environment (.cache/airflow, for the DAG's test; a few minutes the first time)" \
	  sh -c "rm -rf $(AIRFLOW_ENV) && $(PYTHON) -m venv $(AIRFLOW_ENV) && \
	    $(AIRFLOW_ENV)/bin/pip install --quiet --disable-pip-version-check -c deploy/airflow/constraints.txt apache-airflow && \
	    AIRFLOW_HOME=$(abspath $(AIRFLOW_ENV))/home AIRFLOW__CORE__LOAD_EXAMPLES=False $(AIRFLOW_ENV)/bin/airflow db migrate"
	@touch $@

demo: setup
	@echo "\$$ lakehouse generate --out $(DEMO_DIR)/landing --days 14 --events-per-day 3000 --songs 2000 --users 80"
	@$(BIN)/lakehouse generate --out $(DEMO_DIR)/landing --days 14 --events-per-day 3000 --songs 2000 --users 80
	@echo "\$$ lakehouse run incremental --source $(DEMO_DIR)/landing --warehouse $(DEMO_DIR)/warehouse"
	@$(BIN)/lakehouse run incremental --source $(DEMO_DIR)/landing --warehouse $(DEMO_DIR)/warehouse
	@echo "\$$ lakehouse report --warehouse $(DEMO_DIR)/warehouse"
	@$(BIN)/lakehouse report --warehouse $(DEMO_DIR)/warehouse
	@echo "\$$ lakehouse dashboard --warehouse $(DEMO_DIR)/warehouse --out $(DEMO_DIR)/dashboard"
	@$(BIN)/lakehouse dashboard --warehouse $(DEMO_DIR)/warehouse --out $(DEMO_DIR)/dashboard >/dev/null
	@echo "dashboard: file://$(abspath $(DEMO_DIR))/dashboard/index.html"

# Two pytest-xdist workers, each test module whole on one of them (tests/conftest.py): on 2 cores the suite took
# 0.86x the time of one process (stop 42). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --durations=15

test-quick: setup
	$(BIN)/python -m pytest -m "not e2e"

lint: setup
	$(BIN)/ruff check lakehouse jobs tests benchmarks deploy
	$(BIN)/mypy lakehouse

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache

# What users run (each step a fresh process) vs the floor and a typical peer ETL; results in benchmarks/results/.
# Smoke run: make bench BENCH_ARGS=--quick; with the 365-day size: make bench BENCH_ARGS=--scale
bench: setup
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)
