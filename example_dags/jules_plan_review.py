"""Plan review: Jules proposes a plan, a person approves or rejects it in Airflow, then Jules works.

``jules_plan_review`` is the one-task form: ``review_plan="hitl"`` shows the plan on the Required Actions
page (Approve / Reject), approves it on Approve and follows Jules to the end, deferred the whole time; on
Reject the session is deleted and the task fails. The form closes after ``plan_review_timeout`` (default
8 minutes), inside the live API's approval window (about 10 minutes; past it the session completes without
doing anything, quirk Q15).

``jules_plan_review_composable`` is the same review composed from public operators: create the session with
``require_plan_approval=True`` and without waiting; a deferrable ``JulesSessionSensor`` waits for
``AWAITING_PLAN_APPROVAL`` and returns the plan; the standard provider's ``ApprovalOperator`` shows it; on
"Approve", ``JulesApprovePlanOperator`` approves it and waits for Jules to finish; on "Reject", the session
is deleted. Use it to put your own tasks between the plan and the approval.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, task

from airflow_provider_jules.operators.jules import (
    JulesApprovePlanOperator,
    JulesCreateSessionOperator,
    JulesDeleteSessionOperator,
)
from airflow_provider_jules.sensors.jules import JulesSessionSensor

POLL_INTERVAL = float(os.environ.get("JULES_EXAMPLE_POLL_INTERVAL", "10"))
SESSION_ID = "{{ ti.xcom_pull(task_ids='propose_plan', key='session_id') }}"

with DAG(
    dag_id="jules_plan_review",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
    params={"repository": "bobalover/boba"},
) as dag:
    # [START howto_jules_plan_review]
    JulesCreateSessionOperator(
        task_id="rate_limiting",
        prompt="Add rate limiting to the public API endpoints.",
        source="{{ params.repository }}",
        require_plan_approval=True,
        review_plan="hitl",  # the plan goes to Required Actions: Approve / Reject
        plan_review_timeout=timedelta(minutes=8),  # inside Jules's ~10 minute approval window (Q15)
        on_reject="delete",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_jules_plan_review]

with DAG(
    dag_id="jules_plan_review_composable",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["jules", "example"],
    params={"repository": "bobalover/boba"},
) as composable_dag:
    # [START howto_jules_plan_review_composable]
    propose = JulesCreateSessionOperator(
        task_id="propose_plan",
        prompt="Add rate limiting to the public API endpoints.",
        source="{{ params.repository }}",
        require_plan_approval=True,
        wait_for_completion=False,
    )
    # [START howto_sensor_jules_session]
    wait_for_plan = JulesSessionSensor(
        task_id="wait_for_plan",
        session_id=SESSION_ID,
        target_states=["AWAITING_PLAN_APPROVAL"],
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=timedelta(minutes=15),
    )
    # [END howto_sensor_jules_session]

    @task
    def plan_as_markdown(result: dict[str, Any]) -> str:
        steps = (result["plan"] or {}).get("steps", [])
        lines = [
            f"{s['index'] + 1}. **{s['title']}**" + (f" - {s['description']}" if s["description"] else "")
            for s in steps
        ]
        return f"Jules's plan for [{result['title']}]({result['url']}):\n\n" + "\n".join(lines)

    review = ApprovalOperator(
        task_id="review_plan",
        subject="Approve Jules's plan?",
        body="{{ ti.xcom_pull(task_ids='plan_as_markdown') }}",
        response_timeout=timedelta(minutes=9),
    )
    # [START howto_operator_jules_approve_plan]
    approve = JulesApprovePlanOperator(
        task_id="approve_plan",
        session_id=SESSION_ID,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_jules_approve_plan]
    # [START howto_operator_jules_delete_session]
    discard = JulesDeleteSessionOperator(
        task_id="discard_rejected_session",
        session_id=SESSION_ID,
        trigger_rule="all_skipped",  # runs only when the reviewer rejected (approve_plan was skipped)
    )
    # [END howto_operator_jules_delete_session]
    propose >> wait_for_plan >> review
    plan_as_markdown(wait_for_plan.output) >> review >> approve >> discard
    # [END howto_jules_plan_review_composable]
