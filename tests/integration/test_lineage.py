"""OpenLineage end to end (issue #23 item 1, docs "Lineage"): dag.test() of a session-creating task against
the simulator, with the OpenLineage provider's file transport, writes a COMPLETE event whose input is the
repository at its starting branch and whose output is the pull request.

Each DAG runs in a process of its own: the OpenLineage provider reads its transport once, when Airflow
loads its plugin, so the test process (where other tests ran with OpenLineage off) cannot switch it on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.dagtest

DAG_FILE = REPO / "tests" / "dags" / "jules_lineage_dags.py"
RUN = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("_dags_lineage", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
run = getattr(module, sys.argv[2]).test()
print("dag run state:", json.dumps(str(getattr(run.state, "value", run.state))))
"""


def run_with_lineage(dag_id: str, folder: Path) -> tuple[str, list[dict[str, Any]]]:
    """dag.test() of ``dag_id`` with OpenLineage's file transport: the run's state and its task events."""
    events = folder / "openlineage.jsonl"
    env = {
        **os.environ,  # AIRFLOW_HOME (tests/conftest.py), the simulator's connection (the sim fixture)
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "jules-tests",
    }
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(DAG_FILE), dag_id],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    # Airflow's log lines (the OpenLineage child's too) may come after it.
    [state] = [
        json.loads(line.split(":", 1)[1])
        for line in out.stdout.splitlines()
        if line.startswith("dag run state:")
    ]
    lines = events.read_text().splitlines() if events.exists() else []
    return state, [json.loads(line) for line in lines if line.strip()]


def task_event(events: list[dict[str, Any]], job: str, event_type: str) -> dict[str, Any]:
    found = [e for e in events if e["job"]["name"] == job and e["eventType"] == event_type]
    assert len(found) == 1, [(e["job"]["name"], e["eventType"]) for e in events]
    return found[0]


def datasets(event: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[kind]]


@pytest.fixture
def lineage_home(airflow_db: None, sim: Any, tmp_path: Path) -> Path:
    sim.reset()
    return tmp_path


def test_a_deferred_operator_reports_the_repository_read_and_the_pull_request_written(lineage_home):
    state, events = run_with_lineage("jules_lineage_operator", lineage_home)
    assert state == "success"
    complete = task_event(events, "jules_lineage_operator.create", "COMPLETE")
    assert datasets(complete, "inputs") == [("https://github.com", "bobalover/boba/tree/main")]
    [(namespace, name)] = datasets(complete, "outputs")
    assert namespace == "https://github.com" and name.startswith("bobalover/boba/pull/")
    session = complete["run"]["facets"]["julesSession"]
    assert session["pullRequestUrl"] == f"{namespace}/{name}"  # the output is the pull request
    assert session["outcome"] == "completed" and session["state"] == "COMPLETED"
    assert session["url"] == f"https://jules.google.com/session/{session['sessionId']}"
    assert session["filesChanged"]
    assert complete["run"]["facets"]["externalQuery"]["externalQueryId"] == session["sessionId"]
    assert complete["job"]["namespace"] == "jules-tests"


def test_task_jules_reports_its_branch_and_pull_request(lineage_home):
    state, events = run_with_lineage("jules_lineage_taskflow", lineage_home)
    assert state == "success"
    complete = task_event(events, "jules_lineage_taskflow.fix", "COMPLETE")
    assert datasets(complete, "inputs") == [("https://github.com", "bobalover/boba-web/tree/develop")]
    [(_, name)] = datasets(complete, "outputs")
    assert name.startswith("bobalover/boba-web/pull/")
    assert complete["run"]["facets"]["julesSession"]["outcome"] == "completed"


def test_a_failed_session_is_in_the_fail_event(lineage_home):
    state, events = run_with_lineage("jules_lineage_failed", lineage_home)
    assert state == "failed"
    fail = task_event(events, "jules_lineage_failed.create", "FAIL")
    assert datasets(fail, "inputs") == [("https://github.com", "bobalover/boba/tree/main")]
    assert fail["outputs"] == []
    assert fail["run"]["facets"]["julesSession"]["outcome"] == "failed"
