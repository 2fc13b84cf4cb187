"""DAGs with a person in the loop (questions, change review, plan review), run with dag.test() against the
simulator by tests/integration/test_hitl_*.py. One DAG per case; the task is always ``create``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_jules.operators.jules import JulesCreateSessionOperator

START = pendulum.datetime(2025, 1, 1, tz="UTC")
FEEDBACK = "Update the client sim:scenario=user_feedback"

#: dag_id -> (prompt, operator kwargs)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "hitl_ask_one": (FEEDBACK, {"on_user_feedback": "ask"}),
    "hitl_ask_two": (FEEDBACK + " sim:questions=2", {"on_user_feedback": "ask"}),
    "hitl_ask_timeout": (
        FEEDBACK,
        {"on_user_feedback": "ask", "question_timeout": timedelta(seconds=1), "on_timeout": "keep"},
    ),
    "hitl_review": ("Fix the flaky tests", {"review": "hitl"}),
    "hitl_review_archive": ("Fix the flaky tests", {"review": "hitl", "on_reject": "archive"}),
    "hitl_review_skip": (
        "Fix the flaky tests",
        {"review": "hitl", "on_reject": "delete", "on_reject_task": "skip"},
    ),
    "hitl_review_rounds": ("Fix the flaky tests", {"review": "hitl", "max_review_rounds": 2}),
    "hitl_review_sync": ("Fix the flaky tests", {"review": "hitl", "deferrable": False}),
    "hitl_ask_and_review": (FEEDBACK, {"on_user_feedback": "ask", "review": "hitl"}),
    "hitl_plan": (
        "Add a health check endpoint",
        {"require_plan_approval": True, "review_plan": "hitl", "on_reject": "delete"},
    ),
}

for dag_id, (prompt, extra) in CASES.items():
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        JulesCreateSessionOperator(
            task_id="create",
            prompt=prompt,
            source="bobalover/boba",
            **{"deferrable": True, "poll_interval": 0.05, **extra},
        )
    globals()[dag_id] = dag


with DAG("hitl_task_decorator", schedule=None, start_date=START, catchup=False) as decorated_dag:
    from airflow_provider_jules.decorators.jules import jules_task

    @jules_task(source="bobalover/boba", deferrable=True, poll_interval=0.05, review="hitl")
    def create() -> str:
        return "Fix the flaky tests"

    create()


with DAG("hitl_send_message_review", schedule=None, start_date=START, catchup=False) as follow_up_dag:
    from airflow_provider_jules.operators.jules import JulesSendMessageOperator

    first = JulesCreateSessionOperator(
        task_id="create",
        prompt="Fix the flaky tests",
        source="bobalover/boba",
        deferrable=True,
        poll_interval=0.05,
    )
    follow_up = JulesSendMessageOperator(
        task_id="follow_up",
        session_id="{{ ti.xcom_pull(task_ids='create', key='session_id') }}",
        prompt="Please also add a regression test.",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.05,
        review="hitl",
    )
    first >> follow_up
