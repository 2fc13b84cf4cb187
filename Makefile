# Everything sets itself up from nothing: uv, the virtualenv, the package, Airflow's DB (in tests).
SHELL := /bin/bash
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
export UV_LINK_MODE := copy
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv test lint typecheck pytest demo bench docs clean

$(STAMP): pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(BIN)/python || uv venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install --quiet -e '.[test,docs]' "apache-airflow==$(AIRFLOW_VERSION)"
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_jules tests example_dags benchmarks
	$(BIN)/ruff format --check airflow_provider_jules tests example_dags benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest's own tmp_path folders go under .tmp/ (one per venv: the two CI runs never share one), not into
# the system temp folder; pytest clears the folder at the start of each run.
pytest: $(STAMP)
	@mkdir -p .tmp  # pytest makes --basetemp itself, not its parent (a fresh clone has no .tmp/)
	$(BIN)/python -m pytest --basetemp=.tmp/pytest-$(notdir $(VENV)) $(PYTEST_ARGS)

test: lint typecheck docs pytest

clean:
	rm -rf .venv .venv-* .tmp docs/_build

# Benchmarks (issue #7): a bench-only venv, so the dbt Cloud provider (the import-cost yardstick) and
# aiohttp never become dependencies of the package or of `make test`.
BENCH_VENV ?= .venv-bench
DBT_CLOUD_VERSION ?= 4.11.1
BENCH_STAMP := $(BENCH_VENV)/.installed-$(AIRFLOW_VERSION)-$(DBT_CLOUD_VERSION)

$(BENCH_STAMP): pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(BENCH_VENV)/bin/python || uv venv --quiet --python $(PYTHON) $(BENCH_VENV)
	VIRTUAL_ENV=$(BENCH_VENV) uv pip install --quiet -e . "apache-airflow==$(AIRFLOW_VERSION)" \
		"apache-airflow-providers-dbt-cloud==$(DBT_CLOUD_VERSION)" aiohttp requests
	@rm -f $(BENCH_VENV)/.installed-* && touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.run $(BENCH_ARGS)

# Documentation (issue #6): Sphinx built-ins only (alabaster theme), warnings are errors.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

demo: $(STAMP)
	$(BIN)/python example_dags/run_demo.py
