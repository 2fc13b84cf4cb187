"""DAGs that the integration tests run with dag.test() against the simulator (one per case and mode)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")

for mode in ("deferrable", "sync"):
    with DAG(f"jules_smoke_{mode}", schedule=None, start_date=START, catchup=False) as dag:
        JulesCreateSessionOperator(
            task_id="create",
            prompt="Fix the flaky tests",
            source="bobalover/boba",
            deferrable=mode == "deferrable",
            poll_interval=0.05,
        )
    globals()[dag.dag_id] = dag
