"""DAG of tests/system/test_self_healing_components.py (issue #20); parsed by the real dag-processor only.

One task fails on purpose, is retried once after a short delay, and fails again: only then (after its last
try) does ``JulesFixNotifier`` ask Jules for the fix.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_jules.notifications.jules import JulesFixNotifier

DAG_ID = "jules_self_healing_system"
TASK_ID = "load_orders"
#: A repository the simulator knows (airflow_provider_jules/simulator/catalog.py).
SOURCE = "myorg/myrepo"


def read_orders(path: str) -> list[str]:
    raise ValueError(f"no rows in {path}")


with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "system-test"],
):

    @task(
        task_id=TASK_ID,
        retries=1,
        retry_delay=timedelta(seconds=1),
        on_failure_callback=JulesFixNotifier(source=SOURCE),
    )
    def load_orders() -> None:
        read_orders("s3://bucket/orders.csv")

    load_orders()
