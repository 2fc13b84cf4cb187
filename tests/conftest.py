"""Test-wide setup: a private AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

_REPO = Path(__file__).resolve().parent.parent
# Under pytest-xdist (make pytest runs the suite in parallel processes) each worker is a process of its own,
# imports this file itself and so gets a home (and a metadata DB) of its own: gw0, gw1, ...
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if os.environ.get("JULES_TEST_AIRFLOW_HOME"):
    _HOME = os.environ["JULES_TEST_AIRFLOW_HOME"]
    if _WORKER:
        _HOME = os.path.join(_HOME, _WORKER)  # never one SQLite file for two processes running tests
        os.makedirs(_HOME, exist_ok=True)
else:
    _HOME = tempfile.mkdtemp(prefix=f"jules-airflow-home-{_WORKER + '-' if _WORKER else ''}")
    # Ours alone (made just now): removed when the test process exits, whatever the outcome.
    atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(_REPO / "tests" / "dags"))
# dag.test() finds a DAG through the DAG bundles: the test DAGs and the example DAGs.
os.environ.setdefault(
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
    json.dumps(
        [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(_REPO / folder), "refresh_interval": 0},
            }
            for name, folder in (("test-dags", "tests/dags"), ("example-dags", "example_dags"))
        ]
    ),
)
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
os.environ.setdefault("AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES", "airflow.* airflow_provider_jules.*")
# Never let a developer's proxy settings route loopback traffic elsewhere.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


#: Tests that share one worker under pytest-xdist (make pytest): the system tests run one after another, so
#: at most one set of real Airflow components runs next to the other workers; the packaging tests' module
#: fixture builds the wheel and its virtualenv once. Every other test is scheduled on its own.
SHARED_WORKER = ("tests/system/", "tests/packaging/")


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # a pytest-xdist hook: ignored without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (pyproject.toml), grouped by the folders of :data:`SHARED_WORKER`.

    pytest-xdist's own loadgroup reads ``xdist_group`` marks by rewriting each test's node id, which pytest
    9.2 no longer allows: the marks are then silently ignored (pytest-xdist issue #1386). This scheduler
    groups by path instead, which the controller knows without collecting. Larger groups are sent first
    (pytest-xdist's loadscope order), so the long system group starts at once.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedWorkerScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((folder for folder in SHARED_WORKER if nodeid.startswith(folder)), nodeid)

    return SharedWorkerScheduling(config, log)
