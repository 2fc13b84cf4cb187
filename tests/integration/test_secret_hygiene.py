"""A distinctive API key, every scenario through dag.test(), then AIRFLOW_HOME is searched for it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from airflow_provider_jules.simulator import SimulatorConfig, run_simulator
from tests.integration.conftest import advance_when_created, run_dag

CASES = [
    "completed",
    "completed_without_changes",
    "plan_not_approved",
    "awaiting_user_feedback",
    "reply",
    "failed",
    "stalled",
    "deadline",
    "unknown_state",
]


def test_api_key_appears_nowhere_in_airflow_home_logs_or_output(test_dags, monkeypatch, capfd):
    key = f"jules-canary-{uuid.uuid4().hex}"
    with run_simulator(SimulatorConfig(api_key=key, speed=400.0, approval_timeout=2400.0)) as sim:
        monkeypatch.setenv("AIRFLOW_CONN_JULES_DEFAULT", sim.conn_json)
        states = {}
        for case in CASES:
            for mode in ("deferrable", "sync"):
                dag = getattr(test_dags, f"jules_{case}_{mode}")
                if case == "plan_not_approved":
                    with advance_when_created(sim, 3600):
                        states[dag.dag_id] = run_dag(dag).state
                else:
                    states[dag.dag_id] = run_dag(dag).state
                sim.reset()
        states["plan_review"] = run_dag(test_dags.jules_plan_review_deferrable).state
    # Every scenario really ran, successes and failures alike (a run that never happened proves nothing).
    assert set(states.values()) == {"success", "failed"} and len(states) == 2 * len(CASES) + 1
    output = "".join(capfd.readouterr())
    assert "Following Jules session" in output  # the captured output holds the task and trigger logs
    assert key not in output
    home = Path(os.environ["AIRFLOW_HOME"])
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)  # the metadata DB: XComs, serialized DAGs, trigger rows
    needle = key.encode()
    leaks = [str(p) for p in files if needle in p.read_bytes()]
    assert leaks == []
