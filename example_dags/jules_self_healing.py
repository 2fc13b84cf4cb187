"""Self-healing pipeline: a failed task asks Jules for the fix, and the failed task links to it.

``transform_orders`` fails on purpose: the upstream system renamed a column, and ``normalise()`` below
still reads the old one (``KeyError: 'amount_eur'``). ``JulesFixNotifier``, the failure callback of every
task of the DAG (``default_args``), sends Jules the failure (task, exception, traceback, the frame in this
file, the log tail) and asks for a pull request with the fix; the same failure again reuses that session.
The failed task gets the XCom ``jules_fix`` and the "Jules Fix" link. See docs/self_healing.rst.

Runs as is on the bundled simulator (``make demo-self-healing``). For the real Jules API, set ``source`` to
the repository this DAG file lives in (connected to Jules), or leave it out when the DAG comes from a git
DAG bundle on GitHub.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_jules.notifications.jules import JulesFixNotifier


def normalise(order: dict[str, str]) -> dict[str, object]:
    """One order as the warehouse wants it. The bug Jules is asked to fix: the export now calls the
    column ``amount`` (see ``extract_orders``), not ``amount_eur``."""
    return {"id": int(order["id"]), "amount": float(order["amount_eur"])}


# [START howto_notifier_jules_fix]
with DAG(
    dag_id="jules_self_healing",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
    default_args={
        "on_failure_callback": JulesFixNotifier(
            source="myorg/myrepo",  # the repository this DAG file lives in, connected to Jules
            prompt="Keep the warehouse schema unchanged; adapt the transform to the new export.",
            max_sessions_per_day=10,  # the default: a cap on fix sessions per Jules account
        ),
    },
) as dag:
    # [END howto_notifier_jules_fix]

    @task
    def extract_orders() -> list[dict[str, str]]:
        """The upstream export, as it arrives today: the column is ``amount`` now."""
        return [{"id": "1", "amount": "12.50"}, {"id": "2", "amount": "7.25"}]

    @task
    def transform_orders(orders: list[dict[str, str]]) -> list[dict[str, object]]:
        return [normalise(order) for order in orders]

    transform_orders(extract_orders())
