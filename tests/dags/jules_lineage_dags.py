"""DAGs whose OpenLineage events tests/integration/test_lineage.py reads (docs "Lineage"), run with
dag.test() against the simulator in a process that has the OpenLineage provider's file transport set."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")
FAST = {"poll_interval": 0.05}

# The operator, deferred to the triggerer; the starting branch is the source's default one (main).
with DAG("jules_lineage_operator", schedule=None, start_date=START, catchup=False) as jules_lineage_operator:
    JulesCreateSessionOperator(
        task_id="create", prompt="Fix the flaky tests", source="bobalover/boba", deferrable=True, **FAST
    )

# @task.jules, waiting in the worker, on another branch.
with DAG("jules_lineage_taskflow", schedule=None, start_date=START, catchup=False) as jules_lineage_taskflow:

    @task.jules(source="bobalover/boba-web", starting_branch="develop", deferrable=False, **FAST)
    def fix() -> str:
        return "Make the login page faster"

    fix()

# A session that fails: the FAIL event still names the repository and the session.
with DAG("jules_lineage_failed", schedule=None, start_date=START, catchup=False) as jules_lineage_failed:
    JulesCreateSessionOperator(
        task_id="create",
        prompt="Upgrade the build sim:scenario=failure",
        source="bobalover/boba",
        deferrable=False,
        **FAST,
    )
