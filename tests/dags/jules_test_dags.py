"""DAGs that the integration tests run with dag.test() against the simulator: one per case and mode.

The simulator's scenario is chosen by a marker in the prompt (``sim:scenario=NAME``), see docs/simulator.rst.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_jules.operators.jules import (
    JulesApprovePlanOperator,
    JulesCreateSessionOperator,
)
from airflow_provider_jules.sensors.jules import JulesSessionSensor

START = pendulum.datetime(2025, 1, 1, tz="UTC")
FAST = {"poll_interval": 0.05}

#: case -> (prompt, extra operator kwargs)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "completed": ("Fix the flaky tests", {}),
    "completed_without_changes": ("Check the retry logic sim:scenario=no_changes", {}),
    "plan_not_approved": (
        "Refactor the parser sim:scenario=silent_completion",
        {"require_plan_approval": True},
    ),
    "awaiting_user_feedback": ("Update the client sim:scenario=user_feedback", {"on_user_feedback": "fail"}),
    "reply": (
        "Update the client sim:scenario=user_feedback sim:questions=2",
        {"on_user_feedback": "reply", "auto_reply": "Yes, please update the docs too."},
    ),
    "failed": ("Upgrade the build sim:scenario=failure", {}),
    "stalled": ("Tidy the imports sim:scenario=stuck", {"stall_timeout": 2.0}),
    "deadline": ("Tidy the imports sim:scenario=stuck", {"timeout": 1.5, "on_timeout": "delete"}),
    "unknown_state": ("Make it faster sim:scenario=unknown_state", {}),
}

for mode in ("deferrable", "sync"):
    for case, (prompt, extra) in CASES.items():
        with DAG(f"jules_{case}_{mode}", schedule=None, start_date=START, catchup=False) as dag:
            JulesCreateSessionOperator(
                task_id="create",
                prompt=prompt,
                source="bobalover/boba",
                deferrable=mode == "deferrable",
                **{**FAST, **extra},
            )
        globals()[dag.dag_id] = dag

    # The plan-approval flow as a DAG: create >> sensor (awaiting approval) >> approve and wait.
    with DAG(f"jules_plan_review_{mode}", schedule=None, start_date=START, catchup=False) as dag:
        create = JulesCreateSessionOperator(
            task_id="create",
            prompt="Add a health check endpoint",
            source="bobalover/boba",
            require_plan_approval=True,
            wait_for_completion=False,
        )
        wait_plan = JulesSessionSensor(
            task_id="wait_plan",
            session_id="{{ ti.xcom_pull(task_ids='create', key='session_id') }}",
            target_states=["AWAITING_PLAN_APPROVAL"],
            deferrable=mode == "deferrable",
            poke_interval=0.05,
        )
        approve = JulesApprovePlanOperator(
            task_id="approve",
            session_id="{{ ti.xcom_pull(task_ids='create', key='session_id') }}",
            wait_for_completion=True,
            deferrable=mode == "deferrable",
            **FAST,
        )
        create >> wait_plan >> approve
    globals()[dag.dag_id] = dag


# Q25: session ids exceed int64 and must reach downstream tasks as strings.
with DAG("jules_id_types", schedule=None, start_date=START, catchup=False) as dag:
    from airflow.sdk import task

    created = JulesCreateSessionOperator(
        task_id="create", prompt="Fix it", source="bobalover/boba", deferrable=False, **FAST
    )

    @task
    def id_types(result: dict[str, Any], **context: Any) -> dict[str, str]:
        pulled = context["ti"].xcom_pull(task_ids="create", key="session_id")
        return {"pulled": type(pulled).__name__, "in_result": type(result["session_id"]).__name__}

    id_types(created.output)
globals()[dag.dag_id] = dag
