"""Test-wide setup: a private AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_HOME = os.environ.get("JULES_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="jules-airflow-home-")
if "JULES_TEST_AIRFLOW_HOME" not in os.environ:
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
