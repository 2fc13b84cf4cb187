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

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf .venv .venv-* .tmp docs/_build
