# Everything sets itself up from nothing: uv, the virtualenv, the package, Airflow's DB (in tests).
SHELL := /bin/bash
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
BIN := $(VENV)/bin
# uv, installed with pip when it is missing (the version the locks were written with).
UV_VERSION ?= 0.13.9
export UV_LINK_MODE := copy
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The Airflow versions CI tests (.ci/run), oldest and newest supported; `make lock` and `make test-latest`
# take them all unless AIRFLOW_VERSIONS says otherwise.
AIRFLOW_VERSIONS ?= 3.1.8 3.3.2

# Locked test environments (issue #18, docs/contributing.rst): every test venv installs the versions that
# constraints/airflow-<version>.txt names, so that `make test` resolves the same releases on every machine
# until `make lock` refreshes them on purpose. LOCK=none resolves the newest releases instead (make
# test-latest). The package's own dependency ranges (pyproject.toml) stay as wide as the code supports: the
# locks are for tests only.
LOCK ?= constraints/airflow-$(AIRFLOW_VERSION).txt
ifeq ($(LOCK),none)
  PINS := --upgrade
  LOCK_TAG := latest
  LOCK_FILE :=
else ifneq ($(wildcard $(LOCK)),)
  PINS := --constraint $(LOCK)
  LOCK_TAG := locked
  LOCK_FILE := $(LOCK)
else
  $(warning No lock file $(LOCK) for Airflow $(AIRFLOW_VERSION): resolving the newest releases. `make lock AIRFLOW_VERSIONS=$(AIRFLOW_VERSION)` writes one.)
  PINS := --upgrade
  LOCK_TAG := latest
  LOCK_FILE :=
endif
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)-$(LOCK_TAG)

.PHONY: venv test lint typecheck pytest demo demo-self-healing bench docs clean lock test-latest uv

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml $(LOCK_FILE) | uv
	@test -x $(BIN)/python || uv venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install --quiet $(PINS) -e '.[test,docs,system]' "apache-airflow==$(AIRFLOW_VERSION)"
	@if [ "$(LOCK_TAG)" = latest ] && [ -f constraints/airflow-$(AIRFLOW_VERSION).txt ]; then \
		$(BIN)/python constraints/diff.py constraints/airflow-$(AIRFLOW_VERSION).txt; fi
	@if [ "$(LOCK_TAG)" = locked ]; then $(BIN)/python constraints/diff.py --check $(LOCK); fi
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_jules tests example_dags benchmarks docs/images
	$(BIN)/ruff format --check airflow_provider_jules tests example_dags benchmarks docs/images

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest's own tmp_path folders go under .tmp/ (one per venv: the two CI runs never share one), not into
# the system temp folder; pytest clears the folder at the start of each run.
# Issue #21: the tests run in PYTEST_WORKERS parallel processes (pytest-xdist, `--dist loadgroup` from
# pyproject.toml: the system tests share one worker, the packaging tests another; tests/conftest.py). Many
# tests wait on the simulator's clock or on Airflow's own processes, so a worker more than the 2 cores of CI
# keeps both busy. PYTEST_WORKERS=0 runs everything in one process, as before. Every run prints its 15
# slowest tests (--durations=15), so a CI log shows where the time goes.
PYTEST_WORKERS ?= 3
pytest: $(STAMP)
	@mkdir -p .tmp  # pytest makes --basetemp itself, not its parent (a fresh clone has no .tmp/)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15 --basetemp=.tmp/pytest-$(notdir $(VENV)) $(PYTEST_ARGS)

test: lint typecheck docs pytest

# Refresh the locks on purpose (then run `make test` on each version and commit both files together):
# constraints/airflow-<version>.in names Airflow and any deliberate pin; uv resolves it with the
# provider's dependencies and extras for every Python the package supports (--universal).
lock: uv
	@for v in $(AIRFLOW_VERSIONS); do \
		test -f constraints/airflow-$$v.in || printf 'apache-airflow==%s\n' "$$v" > constraints/airflow-$$v.in; \
		echo "make lock: constraints/airflow-$$v.txt"; \
		uv pip compile --quiet --universal --python-version 3.10 --upgrade --custom-compile-command "make lock" \
			pyproject.toml --extra test --extra docs --extra simulator --extra system constraints/airflow-$$v.in \
			-o constraints/airflow-$$v.txt || exit 1; \
	done

# The suite against the newest releases of everything (not in .ci/run): each version of AIRFLOW_VERSIONS,
# plus the newest Airflow release when it is not among them, each in .venv-latest-<version>, resolved
# afresh on every call. It prints where the newest releases differ from the lock, then runs `make test`.
test-latest: uv
	@newest=$$(echo apache-airflow | uv pip compile --quiet --no-deps --no-header --no-annotate - \
		| sed -n 's/^apache-airflow==//p'); \
	versions="$(AIRFLOW_VERSIONS)"; \
	case " $$versions " in *" $$newest "*) ;; *) versions="$$versions $$newest";; esac; \
	failed=""; \
	for v in $$versions; do \
		echo "=== make test-latest: Airflow $$v with the newest releases of everything else ==="; \
		rm -f .venv-latest-$$v/.installed-*; \
		$(MAKE) --no-print-directory test AIRFLOW_VERSION=$$v VENV=.venv-latest-$$v LOCK=none || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test-latest: FAILED on Airflow$$failed"; exit 1; fi; \
	echo "make test-latest: passed on Airflow $$versions"

clean:
	rm -rf .venv .venv-* .tmp docs/_build

# Benchmarks (issue #7): a bench-only venv, so the dbt Cloud provider (the import-cost yardstick) and
# aiohttp never become dependencies of the package or of `make test`.
BENCH_VENV ?= .venv-bench
DBT_CLOUD_VERSION ?= 4.11.1
BENCH_STAMP := $(BENCH_VENV)/.installed-$(AIRFLOW_VERSION)-$(DBT_CLOUD_VERSION)-$(LOCK_TAG)

$(BENCH_STAMP): pyproject.toml $(LOCK_FILE) | uv
	@test -x $(BENCH_VENV)/bin/python || uv venv --quiet --python $(PYTHON) $(BENCH_VENV)
	VIRTUAL_ENV=$(BENCH_VENV) uv pip install --quiet $(PINS) -e . "apache-airflow==$(AIRFLOW_VERSION)" \
		"apache-airflow-providers-dbt-cloud==$(DBT_CLOUD_VERSION)" aiohttp requests
	@rm -f $(BENCH_VENV)/.installed-* && touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.run $(BENCH_ARGS)

# Documentation (issue #6): Sphinx built-ins only (alabaster theme), warnings are errors.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

demo: $(STAMP)
	$(BIN)/python example_dags/run_demo.py

# Issue #20: example_dags/jules_self_healing.py fails on purpose; its JulesFixNotifier opens a fix session; the
# demo follows it and prints the pull request.
demo-self-healing: $(STAMP)
	$(BIN)/python example_dags/run_demo.py --self-healing
