"""Test-wide setup: a private AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that must share one worker under pytest-xdist (``make pytest``: ``--dist loadgroup``).

    The system tests (marker ``system``) form one group: they run one after another, so at most one set of
    real Airflow components runs at a time next to the other workers. The packaging tests form another:
    their module fixture builds the wheel and its virtualenv once. A test already in a group keeps it.
    Without xdist the mark means nothing.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        for marker in ("system", "packaging"):
            if item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.xdist_group(marker))
                break
